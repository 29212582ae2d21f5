"""Options: the retry policy, per-step options and saga-wide options.

They are pydantic models so they validate once, serialise, and show up in
reports. Field names are temporalio's own where one exists, so the Temporal
adapter maps them 1:1 and users meet no new vocabulary.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Self, TypedDict

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sagakit._exceptions import OptionsError, describe
from sagakit._report import ParkedUndo, ResolveRequest, StepKind

if TYPE_CHECKING:  # for the type of `retry_policy=` only: the core never imports temporalio
    import temporalio.common

__all__ = [
    "RetryPolicy",
    "SagaOptions",
    "StepOptions",
    "StepOptionsKw",
    "validation_to_options_error",
]


def validation_to_options_error(
    where: str, exc: ValidationError, known: Iterable[str] = ()
) -> OptionsError:
    """Turn pydantic's error into one sentence per bad field that names the fix.

    Args:
        where: What was being validated, for the message.
        exc: pydantic's error.
        known: The valid option names, for "did you mean" on an unknown one.
    """
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(options)"
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(loc, list(known), n=1)
            hint = f": did you mean {close[0]!r}?" if close else ""
            lines.append(f"unknown option {loc!r}{hint}")
        else:
            lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return OptionsError(f"invalid {where}: " + "; ".join(lines))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            name = type(self).__name__
            raise validation_to_options_error(name, e, type(self).model_fields) from None


class RetryPolicy(_Frozen):
    """How a do or undo is retried; the same fields, defaults and meaning as Temporal's.

    The in-memory executor retries with tenacity and sleeps on its virtual clock;
    the Temporal adapter hands the policy to the server unchanged.
    """

    initial_interval: timedelta = Field(default=timedelta(seconds=1), gt=timedelta(0))
    """Backoff before the first retry."""
    backoff_coefficient: float = Field(default=2.0, ge=1.0)
    """Multiplier of the backoff after each retry."""
    maximum_interval: timedelta | None = None
    """Cap on the backoff; `None` means 100 x `initial_interval`, as on Temporal."""
    maximum_attempts: int = Field(default=0, ge=0)
    """Attempts in all, the first included; 0 means unlimited (bound it with a timeout)."""
    non_retryable_error_types: tuple[str, ...] = ()
    """Error type names that are never retried (an exception's class name, or on
    Temporal an `ApplicationError.type`)."""

    def retries(self, error: Exception) -> bool:
        """Whether this policy retries `error`, exactly as Temporal decides.

        Not an `ApplicationError` marked `non_retryable`, nor an error whose type
        name (an `ApplicationError`'s `type`, else its class's own name, not its
        bases') is in `non_retryable_error_types`: a saga tested in memory
        retries as it will on Temporal.
        """
        if getattr(error, "non_retryable", False) is True:  # temporalio's ApplicationError
            return False
        return describe(error)[0] not in self.non_retryable_error_types

    @model_validator(mode="after")
    def _interval_order(self) -> RetryPolicy:
        if self.maximum_interval is not None and self.maximum_interval < self.initial_interval:
            raise ValueError("maximum_interval must be >= initial_interval")
        return self

    @property
    def effective_maximum_interval(self) -> timedelta:
        """The backoff cap actually applied."""
        return self.maximum_interval or self.initial_interval * 100


def _positive(v: timedelta | None) -> timedelta | None:
    if v is not None and v <= timedelta(0):
        raise ValueError("must be a positive timedelta")
    return v


class _StepFields(_Frozen):
    """The fields that a step may set and a saga may default."""

    start_to_close_timeout: timedelta | None = None
    """Longest a single attempt of the do (and of the undo) may run."""
    schedule_to_close_timeout: timedelta | None = None
    """Longest the do (or undo) may take in all, retries included."""
    heartbeat_timeout: timedelta | None = None
    """Longest an activity may go without heartbeating (Temporal; ignored in memory)."""
    retry_policy: RetryPolicy | None = None
    """Retry policy of the do; `None` uses the saga's, then the backend's default."""
    undo_retry_policy: RetryPolicy | None = None
    """Retry policy of the undo; `None` uses the saga's, then `retry_policy`."""
    task_queue: str | None = None
    """Task queue of the step's activities (Temporal; ignored in memory)."""

    @field_validator("retry_policy", "undo_retry_policy", mode="before")
    @classmethod
    def _from_temporal(cls, value: Any) -> Any:
        # A Temporal user's habit: temporalio.common.RetryPolicy, read by its fields
        # (the core never imports temporalio).
        if type(value).__name__ == "RetryPolicy" and type(value).__module__.startswith(
            "temporalio"
        ):
            return RetryPolicy(
                initial_interval=value.initial_interval,
                backoff_coefficient=value.backoff_coefficient,
                maximum_interval=value.maximum_interval,
                maximum_attempts=value.maximum_attempts,
                non_retryable_error_types=tuple(value.non_retryable_error_types or ()),
            )
        return value

    @model_validator(mode="after")
    def _positive_timeouts(self) -> _StepFields:
        for name in ("start_to_close_timeout", "schedule_to_close_timeout", "heartbeat_timeout"):
            try:
                _positive(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name} {e}") from None
        return self


# Fields a step inherits from the saga when it does not set them.
_INHERITED = tuple(_StepFields.model_fields)


class StepOptions(_StepFields):
    """Options of one step: the keywords of `saga.step` (the do's own args are positional)."""

    kind: StepKind = StepKind.COMPENSATABLE
    """What the step is to the unwind; see `StepKind`."""
    pass_result: bool = False
    """Call the undo as `undo(*args, result)`, `result` the do's (`None` unless it succeeded)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    """Name in reports, keys and activity ids; default: the do's `__name__`."""
    local: bool = False
    """Run the do and undo as Temporal local activities (ignored in memory)."""
    summary: str | None = Field(default=None, max_length=400)
    """One line shown next to the step in the Temporal UI (ignored in memory)."""
    inline: bool = False
    """Run the do or undo that is workflow code (an `async def` that is neither an
    activity nor a workflow) inside the workflow: on Temporal such a do or undo is
    refused without it, and a step with nothing to run inline is refused with it.
    Accepted, and changes nothing, in memory."""


class SagaOptions(_StepFields):
    """Saga-wide options: the two unwind knobs and the step defaults.

    Every field of `StepOptions` but `name`, `local`, `summary`, `kind`,
    `pass_result` and `inline` can be set
    here once as a default for all steps; a step's own keyword wins.
    """

    parallel_compensation: bool = False
    """Run the undos concurrently instead of last-registered-first."""
    continue_on_compensation_error: bool = True
    """Keep compensating past an undo that finally failed, collecting the failures
    into `CompensationError`; `False` stops the unwind at the first such undo."""
    record_values: bool = False
    """Put step results in the report. Off by default: reports travel in workflow
    histories and logs, where argument and result values must not leak."""
    # A policy factory is typed Any-returning: the policy module imports this one.
    on_undo_failure: Literal["fail", "park"] | Callable[[], Any] = "fail"
    """What an undo that finally failed does. "fail": the saga ends
    `COMPENSATION_FAILED` with a `CompensationError`. "park": the undo waits
    for an operator's "retry" or "skip" (the unwind goes on with the others
    first), and the saga ends once every parked undo is resolved, or
    `park_timeout` runs out. Or a policy of your own: a callable (a class)
    that makes one `sagakit.backend.UndoFailurePolicy` per run."""
    park_timeout: timedelta | None = None
    """With `on_undo_failure="park"`: how long the saga waits for operators
    once an undo parked; then the undos still parked fail it as with "fail".
    `None` waits as long as it takes."""
    on_compensation_failed: Callable[..., Any] | str | None = None
    """Called once with the `SagaReport` when an undo parks or finally fails:
    the place for an alert or a dead-letter entry. On Temporal an activity (run
    with the saga's default timeouts, else one minute, and at most 5 attempts);
    in memory any callable. Its own failure is logged, never raised."""
    resolve_check: Callable[[ResolveRequest, list[ParkedUndo]], object] | None = None
    """With `on_undo_failure="park"`: your rule on who may decide what. Called
    with each decision (`ResolveRequest`: seq, action, reason, by) that passed
    sagakit's own checks, and the saga's parked undos; raise (any `Exception`)
    to refuse it, and the sender gets `SagaStateError` with your message. It
    runs before the decision is delivered (on Temporal, in the update's
    validator), so a refusal writes nothing. On Temporal it is workflow code:
    a plain function, deterministic, no I/O, no await."""

    deadline: timedelta | None = None
    """How long the saga may take, from its start on the backend's clock. When it
    passes before the saga function returns, the steps in flight are cancelled
    and awaited, the saga unwinds (undos are not cut short) and fails with
    `SagaDeadlineExceeded` as its cause. No effect once a pivot succeeded; a pivot
    in flight is not cancelled. On Temporal one durable timer."""

    # Derived once from these frozen fields, not per run: a StepOptions costs 2.9 us
    # and 1.2 KiB to make, a sixth of what a cached workflow's saga adds to its heap
    # (bench/temporal_history.py). A copy starts without it (`__copy__`).
    _step_defaults: StepOptions | None = PrivateAttr(default=None)

    def step_defaults(self) -> StepOptions:
        """The options of a step that sets none of its own: these defaults."""
        private = self.__pydantic_private__
        assert private is not None
        made: StepOptions | None = private["_step_defaults"]
        if made is None:
            made = private["_step_defaults"] = _NO_OPTIONS.model_copy(
                update={f: getattr(self, f) for f in _INHERITED}
            )
        return made

    def __copy__(self) -> Self:
        """A copy (as `model_copy` makes, then updates) derives its own step defaults."""
        copied = super().__copy__()
        assert copied.__pydantic_private__ is not None
        copied.__pydantic_private__["_step_defaults"] = None
        return copied

    def __eq__(self, other: object) -> bool:
        """Equal fields, whether either has derived its step defaults yet."""
        if not isinstance(other, SagaOptions):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = _StepFields.__hash__

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """As `__copy__`."""
        copied = super().__deepcopy__(memo)
        assert copied.__pydantic_private__ is not None
        copied.__pydantic_private__["_step_defaults"] = None
        return copied

    @model_validator(mode="after")
    def _park_options(self) -> SagaOptions:
        for name in ("park_timeout", "deadline"):
            try:
                _positive(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name} {e}") from None
        if self.park_timeout is not None and self.on_undo_failure != "park":
            raise ValueError('park_timeout applies only with on_undo_failure="park"')
        if self.resolve_check is not None:
            if self.on_undo_failure == "fail":  # "park", or a policy of one's own (a Park?)
                raise ValueError('resolve_check applies only with on_undo_failure="park"')
            if inspect.iscoroutinefunction(self.resolve_check):
                raise ValueError(
                    "resolve_check must be a plain function, not an async def: it runs in "
                    "the resolve update's validator, which cannot await"
                )
        return self


class StepOptionsKw(TypedDict, total=False):
    """The keywords of `saga.step`, for type checkers (a misspelled one is an error)."""

    name: str
    kind: StepKind | Literal["compensatable", "pivot", "retriable"]
    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    heartbeat_timeout: timedelta
    retry_policy: RetryPolicy | temporalio.common.RetryPolicy
    undo_retry_policy: RetryPolicy | temporalio.common.RetryPolicy
    task_queue: str
    local: bool
    summary: str
    inline: bool


_NO_OPTIONS = StepOptions()


def merge(saga: SagaOptions, step: StepOptions | None) -> StepOptions:
    """The options a step runs with: its own, then the saga's defaults."""
    if step is None:
        return saga.step_defaults()
    inherited = {f: getattr(saga, f) for f in _INHERITED if getattr(step, f) is None}
    return step.model_copy(update=inherited) if inherited else step
