"""`python -m sagakit`: the operator's command line (`sagakit --help`)."""

import sys

from sagakit._cli import main

if __name__ == "__main__":
    sys.exit(main())
