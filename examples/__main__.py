"""`python -m examples`: the main job; see `examples.demo` and `python -m examples --help`."""

import sys

try:
    from examples.demo import main
except KeyboardInterrupt:  # Ctrl-C while still importing: nothing was started yet
    sys.exit(130)

sys.exit(main())
