"""The exceptions sagakit raises.

The hierarchy:

    SagaError                          root: catches everything sagakit raises
    ├── SagaFailed                     a saga failed and was unwound (`__cause__`: the error)
    ├── SagaDeadlineExceeded           its `SagaOptions.deadline` passed (a `SagaFailed`'s cause)
    ├── CompensationError              one or more undos finally failed (also an ExceptionGroup)
    ├── SagaDefinitionError            bad input, raised before anything runs
    │   ├── StepDefinitionError        (also TypeError) a do/undo a backend cannot run
    │   │   └── PayloadTooLargeError   its args encode past the payload limit
    │   └── OptionsError               (also ValueError) an option out of range or unknown
    ├── SagaStateError                 (also RuntimeError) the builder used at the wrong time
    │   └── NotInStepError             `idempotency_key()` / `current_step()` outside a step
    └── StepTimeoutError               (also TimeoutError) a step ran past its timeout (in memory)

`CompensationError` is an `ExceptionGroup` so that `except* SomeUndoError` works on it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagakit._report import SagaReport


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in `...` when cut.

    An error or a report must not carry back out a megabyte it was handed.
    """
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def describe(exc: BaseException) -> tuple[str, str]:
    """(type name, message) of an error, as reports and retry policies name it.

    An error with string `type` and `message` attributes (temporalio's
    `ApplicationError`) is named by those, as Temporal matches
    `non_retryable_error_types`: a business error reads the same on every
    backend. Any other error: its class's own name and `str()`.
    """
    kind, message = getattr(exc, "type", None), getattr(exc, "message", None)
    if isinstance(kind, str) and kind:
        return kind, message if isinstance(message, str) else str(exc)
    return type(exc).__name__, str(exc)


class SagaError(Exception):
    """Root of every exception sagakit raises."""


class SagaFailed(SagaError):
    """A saga raised and was unwound.

    Raised by every executor's `run` once all registered undos have run (or the
    unwind stopped on a failing undo). `__cause__` is the original error — the
    failing step's or the saga body's — and `report` says what ran, what was
    compensated and what failed to compensate.
    """

    def __init__(
        self,
        message: str,
        report: SagaReport | Callable[[], SagaReport],
        compensation_error: CompensationError | None = None,
    ) -> None:
        super().__init__(message)
        self._report = report
        self.compensation_error = compensation_error
        """The undos that finally failed, or `None` when every undo succeeded."""
        self._sub_of: object = None
        # The run whose sub-saga failed so (saga.sub): uncaught there, that saga fails
        # with this failure's cause rather than with the failure itself.

    @property
    def report(self) -> SagaReport:
        """What ran, in what order, and how each undo ended."""
        r = self._report
        if callable(r):  # built on first read: the run has ended, so it no longer changes
            r = self._report = r()
        return r

    @report.setter
    def report(self, value: SagaReport) -> None:
        self._report = value

    def __reduce__(self) -> tuple[Any, ...]:
        # The cause travels too (pickle leaves `__cause__` behind): a durable backend
        # stores a failed workflow's error pickled (DBOS), and the caller reading it back
        # must still see the original error. One that cannot be pickled travels described.
        cause = self.__cause__
        try:
            pickle.dumps(cause)
        except Exception:
            kind, message = describe(cause) if cause is not None else ("", "")
            cause = SagaError(f"{kind}: {cut(message, 2000)} (its own type could not be pickled)")
        args = (str(self), self.report, self.compensation_error)
        return (type(self), args, {"__cause__": cause})


class SagaDeadlineExceeded(SagaError):
    """The saga's `SagaOptions.deadline` passed before its function returned.

    The cause of the `SagaFailed` the saga then ends with: the steps in flight
    were cancelled (and awaited), and the saga was unwound, undos not cut short.
    """


class CompensationError(SagaError, ExceptionGroup[Exception]):
    """One or more undos failed after their last retry.

    An `ExceptionGroup` of the undos' final errors, in the order the undos ran,
    so `except* KeyError:` selects among them. Reach it from
    `SagaFailed.compensation_error`; `report` names the steps.
    """

    report: SagaReport | None
    """The report of the saga whose undos failed (set once the unwind ends)."""

    def __new__(
        cls, message: str, errors: list[Exception], report: SagaReport | None = None
    ) -> CompensationError:
        self = super().__new__(cls, message, errors)
        self.report = report
        return self

    def __init__(
        self, message: str, errors: list[Exception], report: SagaReport | None = None
    ) -> None:
        super().__init__(message, errors)

    def derive(self, excs: Sequence[Exception], /) -> CompensationError:  # type: ignore[override]
        """Keep the type (and report) when `except*` splits the group."""
        return CompensationError(self.message, list(excs), self.report)


class SagaDefinitionError(SagaError):
    """The saga was handed something it cannot run; raised before anything runs."""


class StepDefinitionError(SagaDefinitionError, TypeError):
    """A do or undo that the backend cannot run (not callable, a coroutine object, wrong args)."""


class PayloadTooLargeError(StepDefinitionError):
    """A do's or undo's args encode to more than the payload limit (Temporal's is 2 MB).

    Raised before the call is scheduled, so the step's undo does not run (there
    is nothing to undo); the saga unwinds the steps before it.
    """

    def __init__(
        self,
        what: str,
        size: int,
        limit: int,
        *,
        subject: str = "its args encode",
        fix: str = "pass a reference to the data (a key, a URL) instead of the data itself",
    ) -> None:
        self._what, self._subject, self._fix = what, subject, fix
        told, over = f"{size / 2**20:.1f} MiB", f"{limit / 2**20:.1f} MiB"
        if told == over:  # just past the limit: the bytes tell them apart
            told, over = f"{size:,} bytes", f"{limit:,} bytes"
        super().__init__(
            f"{what}: {subject} to {told}, over the payload limit of {over} (Temporal "
            f"refuses such a payload and retries the workflow task forever): {fix}"
        )
        self.size = size
        """The encoded size, in bytes."""
        self.limit = limit
        """The limit it went over, in bytes."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle would rebuild it from its message alone; __init__ takes what, size, limit.
        return (
            _rebuild_too_large,
            (type(self), self._what, self.size, self.limit, self._subject, self._fix),
        )


def _rebuild_too_large(
    cls: type[PayloadTooLargeError], what: str, size: int, limit: int, subject: str, fix: str
) -> PayloadTooLargeError:
    return cls(what, size, limit, subject=subject, fix=fix)


class OptionsError(SagaDefinitionError, ValueError):
    """An option that is unknown or out of range."""


class SagaStateError(SagaError, RuntimeError):
    """The `Saga` builder was used when it cannot be (after the saga ended, or while unwinding)."""


class NotInStepError(SagaStateError):
    """A step accessor (`idempotency_key()`, `current_step()`) was called outside a do or undo."""


class StepTimeoutError(SagaError, TimeoutError):
    """A step ran past its `start_to_close_timeout` or `schedule_to_close_timeout` (in memory).

    On Temporal the same situation surfaces as temporalio's own `TimeoutError`
    inside an `ActivityError`.
    """


# Users import these from `sagakit`: tracebacks, reprs and pickles name them by that
# path (`sagakit.SagaFailed`), not by this private module's. Temporal's failure
# converter and `describe` use the class's `__name__`, which stays as it is.
for _public in [v for v in list(globals().values()) if isinstance(v, type)]:
    if issubclass(_public, SagaError):  # every one is exported from `sagakit`
        _public.__module__ = "sagakit"
del _public
