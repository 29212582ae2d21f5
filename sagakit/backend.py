"""For backend authors: the seam a new executor plugs into the core.

A backend subclasses `Backend` (four methods: `saga_id`, `time`, `check`,
`call`), and its executor runs a saga function with
`run_saga(Saga(backend, options), saga_fn, args)`. The core hands the backend
one `StepCall` per do and per undo; ordering, unwinding and the report stay in
the core. `sagakit.inmemory` and `sagakit.temporal` are the two backends today.
"""

from sagakit._backend import Backend, StepCall
from sagakit._saga import Saga, run_saga

__all__ = ["Backend", "Saga", "StepCall", "run_saga"]
