"""sagakit: the saga pattern - distributed transactions with compensation - as a two-line habit.

```python
async def book_trip(saga: Saga, trip: Trip) -> Itinerary:
    car = await saga.step(book_car, cancel_car, trip)
    hotel = await saga.step(book_hotel, cancel_hotel, trip)
    return Itinerary(car=car, hotel=hotel)
```

The core here knows no backend; run a saga with `sagakit.inmemory.InMemoryExecutor`
or, inside a Temporal workflow, `sagakit.temporal.TemporalExecutor`. A new
backend plugs in through `sagakit.backend`.
"""

from sagakit._context import DoOutcome, Phase, StepContext, current_step, idempotency_key
from sagakit._exceptions import (
    CompensationError,
    NotInStepError,
    OptionsError,
    PayloadTooLargeError,
    SagaDeadlineExceeded,
    SagaDefinitionError,
    SagaError,
    SagaFailed,
    SagaStateError,
    StepDefinitionError,
    StepTimeoutError,
)
from sagakit._options import RetryPolicy, SagaOptions, StepOptions
from sagakit._plan import PlannedUndo, UndoPlan
from sagakit._report import (
    ErrorInfo,
    OmittedSteps,
    ParkedUndo,
    Resolution,
    ResolveRequest,
    SagaReport,
    SagaStatus,
    StepKind,
    StepReport,
    StepStatus,
    UndoReport,
    UndoStatus,
)
from sagakit._saga import Saga

__version__ = "0.1.0"
"""The installed sagakit version."""

__all__ = [
    "CompensationError",
    "DoOutcome",
    "ErrorInfo",
    "NotInStepError",
    "OmittedSteps",
    "OptionsError",
    "ParkedUndo",
    "PayloadTooLargeError",
    "Phase",
    "PlannedUndo",
    "Resolution",
    "ResolveRequest",
    "RetryPolicy",
    "Saga",
    "SagaDeadlineExceeded",
    "SagaDefinitionError",
    "SagaError",
    "SagaFailed",
    "SagaOptions",
    "SagaReport",
    "SagaStateError",
    "SagaStatus",
    "StepContext",
    "StepDefinitionError",
    "StepKind",
    "StepOptions",
    "StepReport",
    "StepStatus",
    "StepTimeoutError",
    "UndoPlan",
    "UndoReport",
    "UndoStatus",
    "__version__",
    "current_step",
    "idempotency_key",
]
