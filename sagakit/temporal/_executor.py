"""`TemporalExecutor`: run a saga function inside a Temporal workflow.

It makes the run's `TemporalBackend` (`_backend.py`) and `Saga`, serves the
report query and the operators' resolve update, and turns a failed saga into
the workflow's `SagaFailed` failure (`_failure.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import temporalio.exceptions
from temporalio import workflow

from sagakit._checks import PAYLOAD_LIMIT
from sagakit._exceptions import SagaDefinitionError, SagaFailed, SagaStateError
from sagakit._options import SagaOptions
from sagakit._parking import parking_or_refuse
from sagakit._plan import UndoPlan
from sagakit._record import failure_message
from sagakit._report import SagaReport, SagaStatus
from sagakit._saga import Saga, run_saga
from sagakit.temporal._backend import Interrupted, TemporalBackend, check_deadline, next_index
from sagakit.temporal._child import as_sub_saga, run_child
from sagakit.temporal._failure import SAGA_FAILED_TYPE, STEP_FAILURES, encode
from sagakit.temporal._operate import REPORT_QUERY, RESOLVE_UPDATE, request_fields

__all__ = ["PAYLOAD_LIMIT", "REPORT_QUERY", "TemporalExecutor"]

R = TypeVar("R")


class TemporalExecutor:
    """Runs a saga function inside a Temporal workflow: steps become activities.

    Call `run` from a `@workflow.run` method. Each do and undo runs as:

    * an activity: an `@activity.defn` function, an `ActivityRef`, or a name
      (`str`); `local=True` makes it a local activity. It needs a timeout
      (`start_to_close_timeout` or `schedule_to_close_timeout`).
    * a child workflow: a `@workflow.defn` class, its `@workflow.run` method,
      or a `ChildWorkflowRef`. `schedule_to_close_timeout` becomes its
      execution timeout and `start_to_close_timeout` its run timeout.
    * inline workflow code: an `async def` (waiting for a signal, a nested
      saga) in a step said `inline=True`; without it such a function is
      refused (a forgotten `@activity.defn`). Timeouts and retry policies do
      not apply to it.

    Run as a sub-saga of a parent's saga (`saga.sub(ThisWorkflow.run, ...)`),
    it refuses, before the do runs, a step whose undo is not an activity, and
    hands its undo plan back to the parent with its result
    (docs/temporal.md, "Child workflows as sub-sagas").

    A failed saga fails the workflow run with an `ApplicationError` of type
    `SagaFailed` (non-retryable) whose details are the report, every step
    of it (read it with `report_from_failure`), and whose cause is the
    original error. A cancelled workflow compensates, then ends cancelled.
    The live report is served by the `sagakit_report` query.

    Example:
        ```python
        @workflow.defn
        class BookTrip:
            @workflow.run
            async def run(self, trip: Trip) -> Itinerary:
                return await TemporalExecutor(options=SagaOptions()).run(book_trip, trip)
        ```

    Args:
        options: Saga-wide options; step keywords override them.
        report_query: Name of the report query; `None` registers none.
        report_in_failure: Put the report in the `SagaFailed` failure's
            details: every step and every undo (status, kind, order, errors,
            operators' resolutions), without step times, as positional rows
            (the format is in docs/temporal.md), up to 512 KiB of JSON, past
            which it keeps what fits and says what it left out. The error of
            the step the saga failed at is left out, as the failure's cause
            holds it. A step that went as planned costs 20 to 50 bytes of
            history, by the length of its names. Without it the report stays
            available through the query, which a closed workflow still
            answers.
        payload_limit: Most bytes a do's or undo's args may encode to, checked
            before the step is scheduled (`PayloadTooLargeError`): a payload
            over the namespace's limit would fail every workflow task. Raise it
            only if your namespace allows more.
    """

    def __init__(
        self,
        options: SagaOptions | None = None,
        *,
        report_query: str | None = REPORT_QUERY,
        report_in_failure: bool = True,
        payload_limit: int = PAYLOAD_LIMIT,
    ) -> None:
        self._options = options if options is not None else SagaOptions()
        self._report_query = report_query
        self._report_in_failure = report_in_failure
        if payload_limit < 1:
            raise ValueError("payload_limit must be >= 1 byte (Temporal's default is 2 MiB)")
        self._payload_limit = payload_limit

    @property
    def options(self) -> SagaOptions:
        """The saga-wide options of every run."""
        return self._options

    async def run(
        self,
        saga_fn: Callable[..., Coroutine[Any, Any, R]],
        /,
        *args: Any,
        resume: UndoPlan | Mapping[str, Any] | None = None,
    ) -> R:
        """Run `saga_fn(saga, *args)` in the current workflow and return its result.

        `resume`: an `UndoPlan` from `saga.undo_plan()` of an earlier run (passed
        through `workflow.continue_as_new`); its undos sit below this run's steps
        and run last if it unwinds, each with the idempotency key it had. Its
        JSON (a run method that takes the plan as a `dict`) is validated here: a
        malformed one fails the run before any step, like a bad saga function.

        Raises:
            temporalio.exceptions.ApplicationError: type `SagaFailed`, the saga
                failed and was unwound; details[0] is the report, every step
                (read back by `report_from_failure`; without the failed step's
                error when the cause is that step's `ActivityError` or
                `ChildWorkflowError`), and
                `__cause__` the original error.
                A step the backend cannot run (`StepDefinitionError`,
                `OptionsError`) ends the same way, before anything of that
                step is scheduled. A saga function that cannot run at all (not
                an `async def`, or not taking the Saga first) fails the run
                with a non-retryable `ApplicationError` of type
                `StepDefinitionError` before anything is scheduled.
                A `BaseException` that is not an `Exception` (`KeyboardInterrupt`,
                `SystemExit`, a subclass of your own) raised in workflow code (an
                inline step, the saga function) is not a saga failure: the saga is
                unwound, then the run fails with a non-retryable `ApplicationError`
                whose type is the exception's class name, details and cause as
                for `SagaFailed`. Re-raised, it would stop the worker's workflow
                thread, or leave the workflow hanging.
            asyncio.CancelledError: the workflow was cancelled; the saga was
                unwound first.
            SagaStateError: called outside a workflow.
        """

        def failure(
            message: str, error_type: str, report: SagaReport, cause_tells: bool = False
        ) -> temporalio.exceptions.ApplicationError:
            # The saga id is the workflow's own id, and with `cause_tells` the step's
            # error is the failure's cause: no need to repeat them in the history.
            message = message.replace(f"saga {report.saga_id} ", "saga ", 1)
            details = (encode(report, cause_tells=cause_tells),) if self._report_in_failure else ()
            return temporalio.exceptions.ApplicationError(
                message, *details, type=error_type, non_retryable=True
            )

        if not workflow.in_workflow():
            raise SagaStateError(
                "TemporalExecutor.run() was called outside a Temporal workflow: call it "
                "from a @workflow.run method (use sagakit.inmemory.InMemoryExecutor in "
                "plain Python and unit tests)"
            )
        backend = TemporalBackend(next_index(), self._payload_limit)
        backend.run_apart = run_child
        try:
            # Options a policy factory or the workflow's timeouts refuse: fail the run
            # now; raised out of the workflow task, it would be retried forever.
            saga = backend.saga = Saga(backend, self._options)
            check_deadline(self._options)
            # In a child workflow run as a sub-saga: refuse undos that cannot travel,
            # and hand the undo plan back with the result (sagakit.temporal._child).
            saga_fn = as_sub_saga(backend, saga_fn, args)
        except SagaDefinitionError as e:
            raise temporalio.exceptions.ApplicationError(
                str(e), type=type(e).__name__, non_retryable=True
            ) from None
        if self._report_query is not None:
            workflow.set_query_handler(
                self._report_query, lambda: saga.report().model_dump(mode="json")
            )

        # Operators resolve parked undos with this update. The validator checks all
        # the handler will use (shape, types, bounds, state, the operators' own rule),
        # so a refused request writes nothing and cannot fail the workflow task. Both
        # take `Any`: a request the converter could not fit to a type would be
        # refused without the validator's message.
        def resolve(request: Any) -> None:
            seq, action, reason, by = request_fields(request)
            park = parking_or_refuse(saga.policy, seq)
            park.resolve(seq, action, reason=reason, by=by)

        def validate(request: Any) -> None:
            seq, action, reason, by = request_fields(request)
            parking_or_refuse(saga.policy, seq).check_resolution(seq, action, reason, by)

        workflow.set_update_handler(RESOLVE_UPDATE, resolve, validator=validate)
        try:
            return await run_saga(saga, saga_fn, args, resume)
        except SagaDefinitionError as e:
            # Raised before the saga started (a saga function that cannot take the
            # Saga): nothing to unwind, and retrying the workflow task cannot help.
            raise temporalio.exceptions.ApplicationError(
                str(e), type=type(e).__name__, non_retryable=True
            ) from None
        except SagaFailed as e:
            cause = e.__cause__
            if (
                cause is not None
                and workflow.cancellation_reason() is not None
                and temporalio.exceptions.is_cancelled_exception(cause)
            ):
                # The do saw the workflow's cancel as its own failure; the run was
                # cancelled, so it must end cancelled, not failed.
                raise asyncio.CancelledError() from e
            # The details leave the failed step's error out only when the cause is a
            # step's failure: a client reads that back off the history as we read it.
            error = failure(str(e), SAGA_FAILED_TYPE, e.report, isinstance(cause, STEP_FAILURES))
            raise error from cause
        except workflow.ContinueAsNewError:
            # Not a failure (API.md §11): nothing unwinds; what the saga did goes on in
            # the next run, through the undo plan the saga passed it.
            done = sum(r.call.context.key == "" for r in saga._run.records)
            backend.show(SagaStatus.RUNNING, f"continued as new after {done} step(s)")
            raise
        except (Exception, asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as e:
            # run_saga re-raises a BaseException as it is, once the saga is unwound.
            # temporalio's own (eviction, continue-as-new, deadlock) must pass.
            if saga._run.backend.passes_through(e) or type(e).__module__.startswith("temporalio"):
                raise
            # Out of the workflow, KeyboardInterrupt and SystemExit stop the worker's
            # workflow thread (the worker stays up and runs nothing more), and any
            # other BaseException leaves the run hanging: fail the run instead.
            original = e.original if isinstance(e, Interrupted) else e
            name = type(original).__name__
            raise failure(
                f"{failure_message(saga._run)}; then the workflow run failed: {name} is a "
                f"BaseException, and one raised in workflow code (an inline step or "
                f"undo, or the saga function) ends the run. To fail a step or the saga, "
                f"raise an Exception subclass instead",
                name,
                saga.report(),
            ) from original
        finally:
            if saga._run.ended is not None:  # the saga ran and ended (not evicted)
                backend.show_ended(saga)
