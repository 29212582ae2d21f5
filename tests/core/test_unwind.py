"""Unwinding (API.md §3): what runs, in which order, and what the failure says."""

from __future__ import annotations

import asyncio

import pytest

from sagakit import CompensationError, Saga, SagaFailed, SagaStatus, StepStatus, UndoStatus
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal, options

N = 5


class Boom(Exception):
    pass


async def run_failing(executor: InMemoryExecutor, saga_fn, *args) -> SagaFailed:  # type: ignore[no-untyped-def]
    with pytest.raises(SagaFailed) as info:
        await executor.run(saga_fn, *args)
    return info.value


class TestUnwindOrder:
    @pytest.mark.parametrize("fail_at", range(N))
    async def test_undos_run_lifo_from_any_failure_position(
        self, journal: Journal, executor: InMemoryExecutor, fail_at: int
    ) -> None:
        """Whichever step fails, the undos of it and of every earlier step run last-first."""
        names = [f"s{i}" for i in range(N)]

        async def saga(s: Saga) -> None:
            for i, name in enumerate(names):
                await s.step(*journal.step(name, fail=Boom() if i == fail_at else None))

        await run_failing(executor, saga)
        assert journal.done == names[: fail_at + 1]
        assert journal.undone == list(reversed(names[: fail_at + 1]))
        journal.assert_no_undo_before_its_do_ended()

    async def test_failed_steps_own_undo_runs(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """The undo of the step that failed runs too, first: it was registered before its do."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b", fail=Boom()))

        err = await run_failing(executor, saga)
        assert journal.undone == ["b", "a"]
        assert err.report.step("b").undo.status is UndoStatus.COMPENSATED  # type: ignore[union-attr]

    async def test_steps_without_undo_are_skipped(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A step registered with undo=None has nothing to compensate; the others still unwind."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(journal.step("b")[0], None)
            await s.step(*journal.step("c", fail=Boom()))

        err = await run_failing(executor, saga)
        assert journal.undone == ["c", "a"]
        assert err.report.step("b").undo is None
        assert err.report.compensation_order == ["c", "a"]

    async def test_body_error_after_steps_unwinds_them_all(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """An error raised by the saga body itself, after its steps succeeded, undoes them all."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b"))
            raise Boom("body")

        err = await run_failing(executor, saga)
        assert journal.undone == ["b", "a"]
        assert isinstance(err.__cause__, Boom)
        assert [st.status for st in err.report.steps] == [StepStatus.SUCCEEDED] * 2

    async def test_success_runs_no_undo(self, journal: Journal, executor: InMemoryExecutor) -> None:
        """A saga that returns normally runs no undo and returns the body's value."""

        async def saga(s: Saga) -> list[str]:
            return [await s.step(*journal.step("a")), await s.step(*journal.step("b"))]

        assert await executor.run(saga) == ["a", "b"]
        assert journal.undone == []
        assert executor.last_report.status is SagaStatus.SUCCEEDED

    async def test_each_undo_runs_exactly_once(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """No undo runs twice, even though the unwind visits several failed steps."""

        async def saga(s: Saga) -> None:
            for name in "abcd":
                await s.step(*journal.step(name))
            await s.step(*journal.step("e", fail=Boom()))

        await run_failing(executor, saga)
        assert sorted(journal.undone) == sorted(set(journal.undone)) == list("abcde")


class TestInFlightSiblings:
    async def test_saga_gather_cancels_and_awaits_siblings_before_any_undo(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """With saga.gather, siblings still running at a failure are cancelled and awaited first."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("first"))
            await s.gather(
                s.step(*journal.step("slow", block=True)),
                s.step(*journal.step("boom", fail=Boom(), yields=2)),
                s.step(*journal.step("quick", yields=1)),
            )

        err = await run_failing(executor, saga)
        assert ("do", "slow", "cancelled") in journal.events
        journal.assert_nothing_running_when_unwind_began()
        journal.assert_no_undo_before_its_do_ended()
        assert set(journal.undone) == {"first", "slow", "boom", "quick"}
        assert journal.undone[-1] == "first"
        assert err.report.step("slow").status is StepStatus.CANCELLED
        assert err.report.step("quick").status is StepStatus.SUCCEEDED

    async def test_plain_asyncio_gather_siblings_are_cancelled_before_any_undo(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """With asyncio.gather, which leaves siblings running, the unwind still stops them first."""

        async def saga(s: Saga) -> None:
            await asyncio.gather(
                s.step(*journal.step("slow", block=True)),
                s.step(*journal.step("boom", fail=Boom())),
            )

        err = await run_failing(executor, saga)
        assert ("do", "slow", "cancelled") in journal.events
        journal.assert_nothing_running_when_unwind_began()
        journal.assert_no_undo_before_its_do_ended()
        assert sorted(journal.undone) == ["boom", "slow"]
        assert err.report.step("slow").status is StepStatus.CANCELLED

    async def test_undos_of_concurrent_steps_run_in_registration_order_reversed(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """Concurrent steps are undone last-registered-first, by the order saga.step was called."""

        async def saga(s: Saga) -> None:
            await s.gather(
                s.step(*journal.step("a", yields=5)),
                s.step(*journal.step("b", yields=1)),
                s.step(*journal.step("c", yields=3)),
            )
            raise Boom()

        err = await run_failing(executor, saga)
        assert [st.name for st in err.report.steps] == ["a", "b", "c"]
        assert journal.undone == ["c", "b", "a"]

    async def test_saga_gather_returns_results_in_argument_order(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """saga.gather returns its steps' results in argument order, not completion order."""

        async def saga(s: Saga) -> list[str]:
            return await s.gather(
                s.step(*journal.step("a", yields=3)), s.step(*journal.step("b", yields=1))
            )

        assert await executor.run(saga) == ["a", "b"]


class TestCompensationModes:
    async def test_sequential_compensation_never_overlaps(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """By default each undo ends before the next one starts."""

        async def saga(s: Saga) -> None:
            for name in "abc":
                await s.step(*journal.step(name))
            raise Boom()

        await run_failing(executor, saga)
        assert journal.most_concurrent_undos == 1
        undo_events = [(n, e) for k, n, e in journal.events if k == "undo"]
        assert undo_events == [
            ("c", "start"), ("c", "end"), ("b", "start"), ("b", "end"), ("a", "start"), ("a", "end")
        ]  # fmt: skip

    async def test_parallel_compensation_runs_undos_concurrently(self, journal: Journal) -> None:
        """With parallel_compensation=True all undos are in flight at once."""
        executor = InMemoryExecutor(options(parallel_compensation=True))

        async def saga(s: Saga) -> None:
            for name in "abcd":
                await s.step(*journal.step(name))
            raise Boom()

        err = await run_failing(executor, saga)
        assert journal.most_concurrent_undos == 4
        assert sorted(journal.undone) == list("abcd")
        assert err.report.status is SagaStatus.COMPENSATED
        journal.assert_no_undo_before_its_do_ended()

    async def test_parallel_compensation_collects_every_failure(self, journal: Journal) -> None:
        """In parallel mode every undo runs and every final undo failure is collected."""
        executor = InMemoryExecutor(options(parallel_compensation=True))

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            await s.step(*journal.step("b"))
            await s.step(*journal.step("c", undo_fail=ValueError("c")))
            raise Boom()

        err = await run_failing(executor, saga)
        assert sorted(journal.undone) == ["a", "b", "c"]
        assert err.compensation_error is not None
        assert sorted(type(e).__name__ for e in err.compensation_error.exceptions) == [
            "KeyError",
            "ValueError",
        ]


class TestCompensationErrors:
    async def test_continue_on_error_runs_every_undo_and_collects_failures(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """By default an undo that finally fails does not stop the unwind; all failures are kept."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            await s.step(*journal.step("b"))
            await s.step(*journal.step("c", undo_fail=ValueError("c")))
            await s.step(*journal.step("d", fail=Boom()))

        err = await run_failing(executor, saga)
        assert journal.undone == ["d", "c", "b", "a"]
        comp = err.compensation_error
        assert isinstance(comp, CompensationError)
        assert isinstance(comp, ExceptionGroup)
        assert [type(e) for e in comp.exceptions] == [ValueError, KeyError]  # the order they ran
        assert [st.name for st in err.report.failed_undos] == ["a", "c"]
        assert err.report.status is SagaStatus.COMPENSATION_FAILED

    async def test_compensation_error_works_with_except_star(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """CompensationError is an ExceptionGroup, so except* selects among the undo failures."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            await s.step(*journal.step("b", undo_fail=ValueError("b")))
            raise Boom()

        err = await run_failing(executor, saga)
        caught: list[BaseException] = []
        groups: list[BaseException] = []
        try:
            assert err.compensation_error is not None
            raise err.compensation_error
        except* KeyError as group:
            caught.extend(group.exceptions)
            groups.append(group)
        except* ValueError as group:
            caught.extend(group.exceptions)
            groups.append(group)
        assert sorted(type(e).__name__ for e in caught) == ["KeyError", "ValueError"]
        assert all(isinstance(g, CompensationError) for g in groups)  # derive() keeps the type

    async def test_compensation_error_carries_the_report(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """The CompensationError reached from SagaFailed carries the same report."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            raise Boom()

        err = await run_failing(executor, saga)
        assert err.compensation_error is not None
        assert err.compensation_error.report == err.report

    async def test_stop_on_error_skips_the_rest(self, journal: Journal) -> None:
        """With continue_on_compensation_error=False the unwind stops at the first failed undo."""
        executor = InMemoryExecutor(options(continue_on_compensation_error=False))

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b"))
            await s.step(*journal.step("c", undo_fail=ValueError("c")))
            await s.step(*journal.step("d", fail=Boom()))

        err = await run_failing(executor, saga)
        assert journal.undone == ["d", "c"]
        r = err.report
        assert r.step("c").undo.status is UndoStatus.FAILED  # type: ignore[union-attr]
        assert r.step("b").undo.status is UndoStatus.SKIPPED  # type: ignore[union-attr]
        assert r.step("a").undo.status is UndoStatus.SKIPPED  # type: ignore[union-attr]
        assert r.step("b").undo.order is None  # type: ignore[union-attr]
        assert r.compensation_order == ["d", "c"]
        assert r.status is SagaStatus.COMPENSATION_FAILED
        assert err.compensation_error is not None
        assert [type(e) for e in err.compensation_error.exceptions] == [ValueError]

    async def test_no_compensation_error_when_every_undo_succeeds(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """SagaFailed.compensation_error is None when the unwind fully succeeded."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            raise Boom()

        err = await run_failing(executor, saga)
        assert err.compensation_error is None
        assert err.report.status is SagaStatus.COMPENSATED


class Fatal(BaseException):
    """Not an Exception, like KeyboardInterrupt and SystemExit."""


class TestSagaFailed:
    @pytest.mark.parametrize("fatal", [SystemExit(3), Fatal("stop")])
    async def test_non_exception_errors_unwind_then_propagate_unwrapped(
        self, journal: Journal, executor: InMemoryExecutor, fatal: BaseException
    ) -> None:
        """SystemExit, or any BaseException not an Exception, is unwound, then re-raised as is."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b", fail=fatal))

        with pytest.raises(type(fatal)) as info:
            await executor.run(saga)
        assert info.value is fatal
        assert journal.undone == ["b", "a"]
        assert executor.last_report.status is SagaStatus.COMPENSATED

    async def test_cause_is_the_original_error(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """SagaFailed.__cause__ is the very exception the failing step raised."""
        boom = Boom("card declined")

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("pay", fail=boom))

        err = await run_failing(executor, saga)
        assert err.__cause__ is boom
        assert "pay" in str(err)
        assert "card declined" in str(err)

    async def test_saga_failed_is_a_saga_error(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """`except SagaError` catches a failed saga."""
        from sagakit import SagaError

        async def saga(s: Saga) -> None:
            raise Boom()

        with pytest.raises(SagaError):
            await executor.run(saga)
