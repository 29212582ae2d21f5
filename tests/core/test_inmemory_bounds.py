"""The in-memory executor keeps a bounded number of runs (`keep_runs`), oldest dropped first.

It used to keep every run's saga for `reports` forever: about 1.9 KB per
successful 5-step run and 10.7 KB per failed one, so a long test session or a
local service grew without bound, even with `record_calls=False`.
"""

from __future__ import annotations

import contextlib
import gc
import tracemalloc

import pytest

from sagakit import Saga, SagaFailed, SagaStatus
from sagakit.inmemory import Fault, InMemoryExecutor

from ._support import options


def do(n: int) -> int:
    return n


def undo(n: int) -> None:
    return None


async def five_steps(saga: Saga, n: int) -> list[int]:
    return [await saga.step(do, undo, n, name=f"s{i}") for i in range(5)]


async def run_many(executor: InMemoryExecutor, count: int, *, start: int = 0) -> None:
    """`count` runs numbered from `start`; every third one fails at its last step (s4)."""
    for n in range(start, start + count):
        executor.faults = [Fault.fail("s4")] if n % 3 == 0 else []
        with contextlib.suppress(SagaFailed):
            await executor.run(five_steps, n, saga_id=f"run-{n}")


class TestKeepRuns:
    async def test_keeps_only_the_newest_runs(self) -> None:
        """After keep_runs + 5 runs, the 5 oldest are gone; the order is still start order."""
        executor = InMemoryExecutor(options(), keep_runs=10)
        await run_many(executor, 15)
        reports = executor.reports
        assert len(reports) == 10
        assert [r.saga_id for r in reports] == [f"run-{n}" for n in range(5, 15)]
        assert executor.last_report.saga_id == "run-14"
        assert executor.last_report.status is SagaStatus.SUCCEEDED
        # The kept runs' reports are whole: a failed one still shows its unwind.
        failed = next(r for r in reports if r.saga_id == "run-6")
        assert failed.status is SagaStatus.COMPENSATED
        assert failed.compensation_order == ["s4", "s3", "s2", "s1", "s0"]

    async def test_last_report_is_the_newest_when_it_failed(self) -> None:
        executor = InMemoryExecutor(options(), keep_runs=1, faults=[Fault.fail("s4")])
        for n in range(3):
            with pytest.raises(SagaFailed):
                await executor.run(five_steps, n, saga_id=f"run-{n}")
        assert [r.saga_id for r in executor.reports] == ["run-2"]
        assert executor.last_report.saga_id == "run-2"
        assert executor.last_report.status is SagaStatus.COMPENSATED

    async def test_default_keeps_1000(self) -> None:
        executor = InMemoryExecutor(options(), record_calls=False)
        assert executor.keep_runs == 1000
        await run_many(executor, 1005)
        assert len(executor.reports) == 1000
        assert executor.reports[0].saga_id == "run-5"
        assert executor.last_report.saga_id == "run-1004"

    async def test_none_keeps_every_run(self) -> None:
        executor = InMemoryExecutor(options(), keep_runs=None, record_calls=False)
        await run_many(executor, 1005)
        assert len(executor.reports) == 1005

    async def test_calls_are_not_bounded_by_keep_runs(self) -> None:
        """`calls` has its own switch, record_calls; keep_runs does not touch it."""
        executor = InMemoryExecutor(options(), keep_runs=1)
        await run_many(executor, 2, start=1)  # two successful 5-step runs
        assert len(executor.reports) == 1
        assert len(executor.calls) == 10

    async def test_memory_stays_flat(self) -> None:
        """Once keep_runs runs are kept, 2,000 more (a third failing) cost next to nothing."""
        executor = InMemoryExecutor(options(), keep_runs=10, record_calls=False)
        await run_many(executor, 200)  # warm up: caches, the first keep_runs runs
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            await run_many(executor, 2_000, start=200)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        # Unbounded, this was about 8 MB (1.9 KB a successful run, 10.7 KB a failed one).
        assert grown < 200_000, f"{grown} bytes more after 2,000 runs with keep_runs=10"
        assert len(executor.reports) == 10

    @pytest.mark.parametrize("bad", [0, -1])
    def test_keep_runs_below_one_is_refused(self, bad: int) -> None:
        with pytest.raises(ValueError, match=r"keep_runs must be >= 1.*None"):
            InMemoryExecutor(keep_runs=bad)
