"""The seam a backend author writes against: what the core hands `Backend.call`, and reads back.

Every saga here runs on `FakeBackend` (tests/core/_fake_backend.py): a backend
that runs each call once and never sets `call.attempts`, the way a backend that
cannot count attempts (Temporal, for a success) behaves.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import sagakit
from sagakit import (
    DoOutcome,
    Phase,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaOptions,
    SagaStatus,
    StepDefinitionError,
    StepStatus,
    UndoStatus,
    current_step,
)

from ._fake_backend import NOW, FakeBackend, run_saga


class Boom(Exception):
    pass


async def ok(n: int) -> int:
    return n


async def undo(n: int) -> None:
    return None


async def fail(n: int) -> int:
    await asyncio.sleep(0)
    raise Boom(f"step {n}")


async def hang(n: int) -> int:
    await asyncio.Event().wait()
    return n


async def fail_run(
    backend: FakeBackend, saga_fn: Any, options: SagaOptions | None = None
) -> SagaFailed:
    """Run `saga_fn` on `backend`; it must fail. Returns the SagaFailed."""
    saga = Saga(backend, options or SagaOptions())
    with pytest.raises(SagaFailed) as info:
        await run_saga(saga, saga_fn, ())
    return info.value


class TestUnknownAttempts:
    async def test_a_successful_run_reports_no_attempts(self) -> None:
        """When the backend never sets `call.attempts`, each step's attempts are None."""
        backend = FakeBackend()

        async def saga(s: Saga) -> list[int]:
            return [await s.step(ok, undo, 1), await s.step(ok, None, 2)]

        run = Saga(backend, SagaOptions())
        assert await run_saga(run, saga, ()) == [1, 2]
        report = run.report()
        assert report.status is SagaStatus.SUCCEEDED
        assert [(s.status, s.attempts) for s in report.steps] == [
            (StepStatus.SUCCEEDED, None),
            (StepStatus.SUCCEEDED, None),
        ]

    async def test_a_failed_run_reports_no_attempts_for_dos_or_undos(self) -> None:
        """Failed dos and the undos that ran report attempts None when the backend counts none."""
        backend = FakeBackend()

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1)
            await s.step(fail, undo, 2)

        report = (await fail_run(backend, saga)).report
        assert [(s.status, s.attempts) for s in report.steps] == [
            (StepStatus.SUCCEEDED, None),
            (StepStatus.FAILED, None),
        ]
        undos = [s.undo for s in report.steps]
        assert [(u.status, u.attempts) for u in undos if u is not None] == [
            (UndoStatus.COMPENSATED, None),
            (UndoStatus.COMPENSATED, None),
        ]


class TestUnwindThroughABackend:
    async def test_undos_run_lifo_through_the_backends_call(self) -> None:
        """Every do and every undo goes through `Backend.call`; the undos last registered first."""
        backend = FakeBackend()

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="a")
            await s.step(ok, undo, 2, name="b")
            await s.step(ok, None, 3, name="c")
            await s.step(fail, undo, 4, name="d")

        err = await fail_run(backend, saga)
        assert backend.phases() == [
            ("a", Phase.DO),
            ("b", Phase.DO),
            ("c", Phase.DO),
            ("d", Phase.DO),
            ("d", Phase.UNDO),
            ("b", Phase.UNDO),
            ("a", Phase.UNDO),
        ]
        assert [s.args for s in backend.of(Phase.UNDO)] == [(4,), (2,), (1,)]
        assert [s.fn for s in backend.of(Phase.UNDO)] == [undo, undo, undo]
        assert err.report.compensation_order == ["d", "b", "a"]
        assert err.report.status is SagaStatus.COMPENSATED
        assert isinstance(err.__cause__, Boom)

    async def test_a_body_error_unwinds_every_step_through_the_backend(self) -> None:
        """An error of the saga body itself is unwound by the backend's calls, newest first."""
        backend = FakeBackend()

        async def saga(s: Saga) -> None:
            for n in range(1, 4):
                await s.step(ok, undo, n, name=f"s{n}")
            raise Boom("body")

        await fail_run(backend, saga)
        assert [s.name for s in backend.of(Phase.UNDO)] == ["s3", "s2", "s1"]

    async def test_a_failed_undo_is_reported_and_collected(self) -> None:
        """An undo whose call raised is FAILED in the report and collected in CompensationError."""
        backend = FakeBackend()

        async def bad_undo(n: int) -> None:
            raise KeyError(n)

        async def saga(s: Saga) -> None:
            await s.step(ok, bad_undo, 1, name="a")
            await s.step(ok, undo, 2, name="b")
            raise Boom()

        err = await fail_run(backend, saga)
        assert [s.name for s in backend.of(Phase.UNDO)] == ["b", "a"]
        assert err.report.status is SagaStatus.COMPENSATION_FAILED
        assert [s.name for s in err.report.failed_undos] == ["a"]
        assert err.compensation_error is not None
        assert [type(e) for e in err.compensation_error.exceptions] == [KeyError]


class TestWhatTheBackendReads:
    async def test_phase_is_do_for_dos_and_undo_for_undos(self) -> None:
        """`StepCall.phase` is Phase.DO on every do call and Phase.UNDO on every undo call."""
        backend = FakeBackend()

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="a")
            await s.step(ok, undo, 2, name="b", start_to_close_timeout=timedelta(seconds=5))
            raise Boom()

        await fail_run(backend, saga)
        assert backend.phases() == [
            ("a", Phase.DO),
            ("b", Phase.DO),
            ("b", Phase.UNDO),
            ("a", Phase.UNDO),
        ]
        assert all(s.phase is s.context.phase for s in backend.seen)

    async def test_the_context_of_a_do(self) -> None:
        """A do's context carries the backend's saga id, the seq, the name and outcome PENDING."""
        backend = FakeBackend(saga_id="trip-9")

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1)
            await s.step(ok, undo, 2, name="second")

        await run_saga(Saga(backend, SagaOptions()), saga, ())
        assert [tuple(s.context) for s in backend.seen] == [
            ("trip-9", 1, "ok", Phase.DO, DoOutcome.PENDING, ""),
            ("trip-9", 2, "second", Phase.DO, DoOutcome.PENDING, ""),
        ]
        assert [s.context.idempotency_key for s in backend.seen] == ["trip-9#1", "trip-9#2"]

    async def test_undo_context_knows_how_its_do_ended(self) -> None:
        """An undo's `call.context.do_outcome` is SUCCEEDED, FAILED, or UNKNOWN if cancelled."""
        backend = FakeBackend()

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="done")
            await s.gather(s.step(hang, undo, 2, name="hung"), s.step(fail, undo, 3, name="bad"))

        err = await fail_run(backend, saga)
        outcomes = {s.name: s.context.do_outcome for s in backend.of(Phase.UNDO)}
        assert outcomes == {
            "done": DoOutcome.SUCCEEDED,
            "hung": DoOutcome.UNKNOWN,
            "bad": DoOutcome.FAILED,
        }
        assert err.report.step("hung").status is StepStatus.CANCELLED
        assert all(s.context.phase is Phase.UNDO for s in backend.of(Phase.UNDO))
        assert {s.name: s.context.seq for s in backend.of(Phase.UNDO)} == {
            "done": 1,
            "hung": 2,
            "bad": 3,
        }

    async def test_undo_of_a_do_cancelled_with_the_saga_sees_unknown(self) -> None:
        """Cancelling the saga mid-do: that do's undo sees UNKNOWN, an earlier one SUCCEEDED."""
        backend = FakeBackend()
        started = asyncio.Event()

        async def wait(n: int) -> int:
            started.set()
            return await hang(n)

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="done")
            await s.step(wait, undo, 2, name="hung")

        run = Saga(backend, SagaOptions())
        task = asyncio.ensure_future(run_saga(run, saga, ()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [(s.name, s.context.do_outcome) for s in backend.of(Phase.UNDO)] == [
            ("hung", DoOutcome.UNKNOWN),
            ("done", DoOutcome.SUCCEEDED),
        ]
        assert run.report().cancelled

    async def test_current_step_inside_a_call_is_the_calls_context(self) -> None:
        """Inside the function the backend runs, current_step() is the call's own context."""
        backend = FakeBackend()
        inside: list[Any] = []

        async def do(n: int) -> None:
            inside.append(current_step())

        async def undo_it(n: int) -> None:
            inside.append(current_step())

        async def saga(s: Saga) -> None:
            await s.step(do, undo_it, 1)
            raise Boom()

        await fail_run(backend, saga)
        assert inside == [s.context for s in backend.seen]
        assert [c.phase for c in inside] == [Phase.DO, Phase.UNDO]

    async def test_retry_policy_is_the_one_of_the_phase(self) -> None:
        """A do's call has the step's retry policy; an undo's has undo_retry_policy, else it."""
        backend = FakeBackend()
        do_policy = RetryPolicy(maximum_attempts=2)
        undo_policy = RetryPolicy(maximum_attempts=7)
        default = RetryPolicy(maximum_attempts=4)

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="own", retry_policy=do_policy,
                         undo_retry_policy=undo_policy)  # fmt: skip
            await s.step(ok, undo, 2, name="shared", retry_policy=do_policy)
            await s.step(ok, undo, 3, name="plain")
            raise Boom()

        await fail_run(backend, saga, SagaOptions(retry_policy=default))
        policies = {(s.name, s.phase): s.retry_policy for s in backend.seen}
        assert policies == {
            ("own", Phase.DO): do_policy,
            ("own", Phase.UNDO): undo_policy,
            ("shared", Phase.DO): do_policy,
            ("shared", Phase.UNDO): do_policy,
            ("plain", Phase.DO): default,
            ("plain", Phase.UNDO): default,
        }

    async def test_an_undo_gets_its_own_steps_options(self) -> None:
        """An undo's call has its own step's options, though the same pair also runs without."""
        backend = FakeBackend()
        timeout = timedelta(seconds=3)

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="plain1")
            await s.step(ok, undo, 2, name="timed", start_to_close_timeout=timeout)
            await s.step(ok, undo, 3, name="plain2")
            raise Boom()

        await fail_run(backend, saga)
        timeouts = {(s.name, s.phase): s.options.start_to_close_timeout for s in backend.seen}
        assert timeouts == {
            ("plain1", Phase.DO): None,
            ("timed", Phase.DO): timeout,
            ("plain2", Phase.DO): None,
            ("plain2", Phase.UNDO): None,
            ("timed", Phase.UNDO): timeout,
            ("plain1", Phase.UNDO): None,
        }

    async def test_saga_defaults_reach_the_call_options(self) -> None:
        """A saga-wide default the step does not override is in the options of both its calls."""
        backend = FakeBackend()
        default = timedelta(seconds=30)

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="a")
            await s.step(ok, undo, 2, name="b", schedule_to_close_timeout=timedelta(seconds=9))
            raise Boom()

        await fail_run(backend, saga, SagaOptions(schedule_to_close_timeout=default))
        assert {(s.name, s.phase): s.options.schedule_to_close_timeout for s in backend.seen} == {
            ("a", Phase.DO): default,
            ("b", Phase.DO): timedelta(seconds=9),
            ("b", Phase.UNDO): timedelta(seconds=9),
            ("a", Phase.UNDO): default,
        }


class TestBackendHooks:
    async def test_saga_id_and_clock_come_from_the_backend(self) -> None:
        """The report's saga id, keys and timestamps are the backend's `saga_id()` and `time()`."""
        backend = FakeBackend(saga_id="order-42", now=NOW)
        keys: list[str] = []

        async def do(n: int) -> int:
            keys.append(sagakit.idempotency_key())
            backend.now += 60
            return n

        async def saga(s: Saga) -> None:
            await s.step(do, None, 1)

        run = Saga(backend, SagaOptions())
        await run_saga(run, saga, ())
        report = run.report()
        assert report.saga_id == run.saga_id == "order-42"
        assert keys == ["order-42#1"]
        assert report.started_at == datetime.fromtimestamp(NOW, UTC)
        assert report.steps[0].started_at == datetime.fromtimestamp(NOW, UTC)
        assert report.steps[0].duration == 60.0
        assert report.ended_at == datetime.fromtimestamp(NOW + 60, UTC)

    async def test_check_sees_every_do_and_undo_before_it_runs(self) -> None:
        """`Backend.check` sees a step's do (Phase.DO) and undo (Phase.UNDO) before the do runs."""
        backend = FakeBackend()
        checked_before: list[tuple[Any, Phase]] = []

        async def do(n: int) -> None:
            checked_before.extend(backend.checked)

        async def saga(s: Saga) -> None:
            await s.step(do, undo, 1)

        await run_saga(Saga(backend, SagaOptions()), saga, ())
        assert (do, Phase.DO) in checked_before
        assert (undo, Phase.UNDO) in checked_before

    async def test_a_refusal_by_check_stops_the_step_and_unwinds_the_rest(self) -> None:
        """A StepDefinitionError from `check` fails the step before its do; earlier steps unwind."""

        class Refusing(FakeBackend):
            def check(self, do: Any, undo: Any, options: Any) -> None:
                if do is hang:
                    raise StepDefinitionError("hang cannot run here")
                super().check(do, undo, options)

        backend = Refusing()

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="a")
            await s.step(hang, undo, 2, name="never")

        err = await fail_run(backend, saga)
        assert isinstance(err.__cause__, StepDefinitionError)
        assert backend.phases() == [("a", Phase.DO), ("a", Phase.UNDO)]

    async def test_describe_error_names_errors_in_the_report_and_message(self) -> None:
        """A backend's `describe_error` gives the (type, message) of every error in the report."""

        class Describing(FakeBackend):
            def describe_error(self, exc: BaseException) -> tuple[str, str]:
                return f"Wrapped{type(exc).__name__}", f"<{exc}>"

        backend = Describing(saga_id="d-1")

        async def bad_undo(n: int) -> None:
            raise KeyError("gone")

        async def saga(s: Saga) -> None:
            await s.step(ok, bad_undo, 1, name="a")
            await s.step(fail, undo, 2, name="b")

        err = await fail_run(backend, saga)
        r = err.report
        assert (r.error.type, r.error.message) == ("WrappedBoom", "<step 2>")  # type: ignore[union-attr]
        b_error = r.step("b").error
        assert b_error is not None
        assert (b_error.type, b_error.message) == ("WrappedBoom", "<step 2>")
        a_undo = r.step("a").undo
        assert a_undo is not None
        assert a_undo.error is not None
        assert (a_undo.error.type, a_undo.error.message) == ("WrappedKeyError", "<'gone'>")
        assert "(WrappedBoom: <step 2>)" in str(err)

    async def test_passes_through_ends_the_run_without_compensation(self) -> None:
        """An error `passes_through` claims propagates as it is, and no undo runs."""

        class Evicted(BaseException):
            pass

        class PassingThrough(FakeBackend):
            def passes_through(self, exc: BaseException) -> bool:
                return isinstance(exc, Evicted)

        backend = PassingThrough()
        evicted = Evicted()

        async def evict(n: int) -> None:
            raise evicted

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="a")
            await s.step(evict, undo, 2, name="b")

        with pytest.raises(Evicted) as info:
            await run_saga(Saga(backend, SagaOptions()), saga, ())
        assert info.value is evicted
        assert backend.of(Phase.UNDO) == []

    async def test_errors_passes_through_refuses_are_compensated(self) -> None:
        """Errors `passes_through` does not claim unwind as usual, on the same backend."""

        class PassingThrough(FakeBackend):
            def passes_through(self, exc: BaseException) -> bool:
                return isinstance(exc, KeyboardInterrupt)

        backend = PassingThrough()

        async def saga(s: Saga) -> None:
            await s.step(ok, undo, 1, name="a")
            await s.step(fail, undo, 2, name="b")

        await fail_run(backend, saga)
        assert [s.name for s in backend.of(Phase.UNDO)] == ["b", "a"]
