"""For backend and policy authors: the seams a new executor or a new policy plugs into.

A backend subclasses `Backend` (five methods, `saga_id`, `time`, `check`,
`call` and `wait`, and two with defaults), and its executor runs a saga
function with `run_saga(Saga(backend, options), saga_fn, args)`. The core
hands the backend one `StepCall` per do and per undo; ordering, unwinding and
the report stay in the core. `sagakit.inmemory` and `sagakit.temporal` are
the two backends today.

What becomes of an undo that finally failed is an `UndoFailurePolicy`, asked
by the unwind (`Unwind`) about each step's `Record` of the `Run`: "fail" is the base
class itself, "park" a subclass; `SagaOptions(on_undo_failure=MyPolicy)`
plugs in one of your own.
"""

from sagakit._backend import Backend, StepCall
from sagakit._record import Record, Run
from sagakit._saga import Saga, run_saga
from sagakit._unwind import UndoFailurePolicy, Unwind

__all__ = [
    "Backend",
    "Record",
    "Run",
    "Saga",
    "StepCall",
    "UndoFailurePolicy",
    "Unwind",
    "run_saga",
]
