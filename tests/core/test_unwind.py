"""Unwinding in memory (API.md §3): the exceptions the in-memory caller holds.

What runs, in which order and what the report says is the contract suite's
(`tests/contract/test_unwind.py`, on every backend). Here: `SagaFailed` and
`CompensationError` as the Python objects `InMemoryExecutor.run` raises.
"""

from __future__ import annotations

import pytest

from sagakit import CompensationError, Saga, SagaFailed, SagaStatus
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal, options


class Boom(Exception):
    pass


async def run_failing(executor: InMemoryExecutor, saga_fn, *args) -> SagaFailed:  # type: ignore[no-untyped-def]
    with pytest.raises(SagaFailed) as info:
        await executor.run(saga_fn, *args)
    return info.value


class TestCompensationErrors:
    async def test_compensation_error_holds_each_final_undo_failure_in_run_order(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """Past failed undos, `compensation_error` is an ExceptionGroup of them, as they ran."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            await s.step(*journal.step("b"))
            await s.step(*journal.step("c", undo_fail=ValueError("c")))
            await s.step(*journal.step("d", fail=Boom()))

        err = await run_failing(executor, saga)
        comp = err.compensation_error
        assert isinstance(comp, CompensationError)
        assert isinstance(comp, ExceptionGroup)
        assert [type(e) for e in comp.exceptions] == [ValueError, KeyError]  # the order they ran

    async def test_parallel_compensation_error_holds_every_failure(self, journal: Journal) -> None:
        """In parallel mode `compensation_error` holds every undo's final failure."""
        executor = InMemoryExecutor(options(parallel_compensation=True))

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            await s.step(*journal.step("b"))
            await s.step(*journal.step("c", undo_fail=ValueError("c")))
            raise Boom()

        err = await run_failing(executor, saga)
        assert err.compensation_error is not None
        assert sorted(type(e).__name__ for e in err.compensation_error.exceptions) == [
            "KeyError",
            "ValueError",
        ]

    async def test_stopped_unwind_holds_only_the_failure_it_stopped_at(
        self, journal: Journal
    ) -> None:
        """With continue_on_compensation_error=False, only the undo that stopped it is held."""
        executor = InMemoryExecutor(options(continue_on_compensation_error=False))

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            await s.step(*journal.step("b", undo_fail=ValueError("b")))
            raise Boom()

        err = await run_failing(executor, saga)
        assert err.compensation_error is not None
        assert [type(e) for e in err.compensation_error.exceptions] == [ValueError]

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
