"""The in-memory executor's records: calls, attempts, reports."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from sagakit import Phase, RetryPolicy, Saga, SagaFailed, SagaStatus
from sagakit.inmemory import Attempt, Fault, InMemoryExecutor

from ._support import Journal, options


class Boom(Exception):
    pass


class TestRecords:
    async def test_calls_record_every_attempt_in_order(self, journal: Journal) -> None:
        """executor.calls holds one Attempt per do/undo attempt, in the order they ended."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(maximum_attempts=2)), faults=[Fault.fail("b")]
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b"))
            raise Boom()

        with pytest.raises(SagaFailed):
            await executor.run(saga, saga_id="x")
        assert [(c.step, c.phase, c.attempt, c.ok) for c in executor.calls] == [
            ("a", Phase.DO, 1, True),
            ("b", Phase.DO, 1, False),
            ("b", Phase.DO, 2, True),
            ("b", Phase.UNDO, 1, True),
            ("a", Phase.UNDO, 1, True),
        ]
        assert all(isinstance(c, Attempt) and c.saga_id == "x" for c in executor.calls)
        assert [c.seq for c in executor.calls] == [1, 2, 2, 2, 1]

    async def test_attempts_are_frozen_comparable_records(self, journal: Journal) -> None:
        """An Attempt equals one built by hand, hashes, and cannot be changed."""
        executor = InMemoryExecutor(options())

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        await executor.run(saga, saga_id="r")
        (a,) = executor.calls
        assert a == Attempt("r", 1, "a", Phase.DO, 1, None)
        assert hash(a) == hash(Attempt("r", 1, "a", Phase.DO, 1, None))
        assert a.ok
        with pytest.raises(AttributeError):
            a.attempt = 2  # type: ignore[misc]

    async def test_attempts_of_filters_by_step_and_phase(self, journal: Journal) -> None:
        """attempts_of(step, phase) returns that step's attempts, across runs."""
        executor = InMemoryExecutor(options())

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            raise Boom()

        for _ in range(2):
            with pytest.raises(SagaFailed):
                await executor.run(saga)
        assert len(executor.attempts_of("a")) == 2
        assert len(executor.attempts_of("a", "undo")) == 2
        assert executor.attempts_of("nope") == []

    async def test_record_calls_off_keeps_nothing(self, journal: Journal) -> None:
        """record_calls=False leaves executor.calls empty (the reports still work)."""
        executor = InMemoryExecutor(options(), record_calls=False)

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        await executor.run(saga)
        assert executor.calls == []
        assert executor.last_report.steps[0].attempts == 1

    async def test_reports_cover_every_run_in_start_order(self, journal: Journal) -> None:
        """executor.reports has one report per run; last_report is the latest."""
        executor = InMemoryExecutor(options())

        async def ok(s: Saga) -> None:
            await s.step(*journal.step("a"))

        async def bad(s: Saga) -> None:
            raise Boom()

        await executor.run(ok, saga_id="one")
        with pytest.raises(SagaFailed):
            await executor.run(bad, saga_id="two")
        assert [(r.saga_id, r.status) for r in executor.reports] == [
            ("one", SagaStatus.SUCCEEDED),
            ("two", SagaStatus.COMPENSATED),
        ]
        assert executor.last_report.saga_id == "two"

    def test_last_report_before_any_run_raises(self) -> None:
        """last_report on an unused executor raises LookupError."""
        with pytest.raises(LookupError):
            _ = InMemoryExecutor().last_report

    async def test_default_saga_ids_are_unique(self, journal: Journal) -> None:
        """Runs without saga_id get distinct ids, also across executors."""
        executors = [InMemoryExecutor(options()), InMemoryExecutor(options())]

        async def saga(s: Saga) -> str:
            return s.saga_id

        ids = [await ex.run(saga) for ex in executors for _ in range(3)]
        assert len(set(ids)) == 6


class TestConcurrentRuns:
    async def test_one_executor_runs_sagas_concurrently_and_keeps_them_apart(self) -> None:
        """Concurrent runs on one executor unwind independently: one failing leaves the other."""
        executor = InMemoryExecutor(options())
        j1, j2 = Journal(), Journal()

        async def saga(s: Saga, journal: Journal, fail: bool) -> None:
            await s.step(*journal.step("a", yields=3))
            await s.step(*journal.step("b", fail=Boom() if fail else None, yields=3))

        results = await asyncio.gather(
            executor.run(saga, j1, True), executor.run(saga, j2, False), return_exceptions=True
        )
        assert isinstance(results[0], SagaFailed)
        assert results[1] is None
        assert j1.undone == ["b", "a"]
        assert j2.undone == []
        assert {r.status for r in executor.reports} == {
            SagaStatus.COMPENSATED,
            SagaStatus.SUCCEEDED,
        }


class TestMemory:
    async def test_a_failed_run_keeps_no_exception_alive(self) -> None:
        """Once the caller drops `SagaFailed`, reference counting alone frees the error.

        The error's traceback holds the frames that hold the saga: were the saga
        (kept by the executor for `reports`) to keep the error, every failed run
        would keep its frames alive, and be a reference cycle once dropped.
        """
        raised: list[weakref.ref[Boom]] = []

        async def reserve(n: int) -> int:
            return n

        async def release(n: int) -> None:
            return None

        def boom(n: int) -> Boom:
            error = Boom(n)  # made here, so no frame of the traceback holds it
            raised.append(weakref.ref(error))
            return error

        async def declined(n: int) -> int:
            raise boom(n)

        async def saga(s: Saga) -> None:
            await s.step(reserve, release, 1)
            await s.step(declined, release, 2)

        executor = InMemoryExecutor(options(), record_calls=False)
        described = []
        gc.disable()  # only reference counting may free it
        try:
            for _ in range(3):
                try:
                    await executor.run(saga)
                except SagaFailed as e:  # not pytest.raises: its ExceptionInfo keeps frames
                    described.append(e.report.steps[1].error)
            alive = [r() for r in raised]
        finally:
            gc.enable()
        assert len(raised) == 3
        assert alive == [None, None, None]
        assert [d.type if d else None for d in described] == ["Boom"] * 3  # described, not kept
        assert [r.steps[1].error for r in executor.reports] == described
