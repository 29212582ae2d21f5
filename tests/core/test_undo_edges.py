"""Undos at their edges, in memory: a step's options bound its undo; failed undos leave nothing."""

from __future__ import annotations

import asyncio
import gc
import weakref
from datetime import timedelta
from typing import Any

import pytest

from sagakit import (
    ErrorInfo,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaOptions,
    SagaStatus,
    StepStatus,
    StepTimeoutError,
    UndoStatus,
)
from sagakit._unwind import UNDO_ATTEMPTS
from sagakit.inmemory import InMemoryExecutor

from ._support import options

TIMEOUT = timedelta(milliseconds=10)
"""The step's own start_to_close_timeout."""
SLOW = 0.05
"""Real seconds the slow undo (or do) takes: well past TIMEOUT, still a short test."""


class Boom(Exception):
    pass


async def reserve(n: int) -> int:
    return n


async def slow_release(n: int) -> None:
    await asyncio.sleep(SLOW)


async def slow_reserve(n: int) -> int:
    await asyncio.sleep(SLOW)
    return n


async def run_failing(executor: InMemoryExecutor, saga_fn: Any) -> SagaFailed:
    with pytest.raises(SagaFailed) as info:
        await executor.run(saga_fn)
    return info.value


def undo_statuses(err: SagaFailed) -> list[tuple[int, UndoStatus, str | None]]:
    """(seq, undo status, undo error type) of every step with an undo."""
    return [
        (s.seq, s.undo.status, s.undo.error.type if s.undo.error else None)
        for s in err.report.steps
        if s.undo is not None
    ]


class TestAnUndoKeepsItsStepsOwnOptions:
    async def test_timed_step_after_the_same_pair_without_options(self) -> None:
        """A step's own start_to_close_timeout bounds its undo, though the pair ran without it."""
        executor = InMemoryExecutor(options())

        async def saga(s: Saga) -> None:
            await s.step(reserve, slow_release, 1)
            await s.step(reserve, slow_release, 2, start_to_close_timeout=TIMEOUT)
            raise Boom()

        err = await run_failing(executor, saga)
        assert undo_statuses(err) == [
            (1, UndoStatus.COMPENSATED, None),
            (2, UndoStatus.FAILED, "StepTimeoutError"),
        ]
        assert err.compensation_error is not None
        assert [type(e) for e in err.compensation_error.exceptions] == [StepTimeoutError]

    async def test_timed_step_before_the_same_pair_without_options(self) -> None:
        """Only the step with the timeout has its undo bounded, whichever comes first."""
        executor = InMemoryExecutor(options())

        async def saga(s: Saga) -> None:
            await s.step(reserve, slow_release, 1, start_to_close_timeout=TIMEOUT)
            await s.step(reserve, slow_release, 2)
            await s.step(reserve, slow_release, 3, start_to_close_timeout=TIMEOUT)
            raise Boom()

        err = await run_failing(executor, saga)
        assert undo_statuses(err) == [
            (1, UndoStatus.FAILED, "StepTimeoutError"),
            (2, UndoStatus.COMPENSATED, None),
            (3, UndoStatus.FAILED, "StepTimeoutError"),
        ]

    async def test_timed_step_in_a_later_run_of_the_same_executor(self) -> None:
        """A timed step bounds its undo though an earlier run used the pair without options."""
        executor = InMemoryExecutor(options())

        async def plain(s: Saga) -> None:
            await s.step(reserve, slow_release, 1)
            raise Boom()

        async def timed(s: Saga) -> None:
            await s.step(reserve, slow_release, 1, start_to_close_timeout=TIMEOUT)
            raise Boom()

        first = await run_failing(executor, plain)
        assert undo_statuses(first) == [(1, UndoStatus.COMPENSATED, None)]
        second = await run_failing(executor, timed)
        assert undo_statuses(second) == [(1, UndoStatus.FAILED, "StepTimeoutError")]
        assert second.report.status is SagaStatus.COMPENSATION_FAILED
        third = await run_failing(executor, plain)
        assert undo_statuses(third) == [(1, UndoStatus.COMPENSATED, None)]

    async def test_untimed_step_in_a_later_run_is_not_bounded(self) -> None:
        """A step without options is not bounded by another run's timeout for that pair."""
        executor = InMemoryExecutor(options())

        async def timed(s: Saga) -> None:
            await s.step(reserve, slow_release, 1, start_to_close_timeout=TIMEOUT)
            raise Boom()

        async def plain(s: Saga) -> None:
            await s.step(reserve, slow_release, 1)
            raise Boom()

        assert undo_statuses(await run_failing(executor, timed)) == [
            (1, UndoStatus.FAILED, "StepTimeoutError")
        ]
        assert undo_statuses(await run_failing(executor, plain)) == [
            (1, UndoStatus.COMPENSATED, None)
        ]

    async def test_parallel_undos_keep_their_own_timeouts(self) -> None:
        """Run at once, each undo is still bounded by its own step's options only."""
        executor = InMemoryExecutor(options(parallel_compensation=True))

        async def saga(s: Saga) -> None:
            await s.step(reserve, slow_release, 1)
            await s.step(reserve, slow_release, 2, start_to_close_timeout=TIMEOUT)
            raise Boom()

        err = await run_failing(executor, saga)
        assert undo_statuses(err) == [
            (1, UndoStatus.COMPENSATED, None),
            (2, UndoStatus.FAILED, "StepTimeoutError"),
        ]

    async def test_the_do_of_a_timed_step_is_bounded_too(self) -> None:
        """The do of a step with its own timeout is bounded, though the pair ran before without."""
        executor = InMemoryExecutor(options())

        async def saga(s: Saga) -> None:
            await s.step(slow_reserve, None, 1)
            await s.step(slow_reserve, None, 2, start_to_close_timeout=TIMEOUT)

        err = await run_failing(executor, saga)
        assert [s.status for s in err.report.steps] == [StepStatus.SUCCEEDED, StepStatus.FAILED]
        assert isinstance(err.__cause__, StepTimeoutError)


class TestAFailedUndoKeepsNothingAlive:
    @pytest.mark.parametrize(
        "saga_options",
        [
            {},
            {"parallel_compensation": True},
            {"continue_on_compensation_error": False},
        ],
        ids=["sequential", "parallel", "stop-at-first"],
    )
    @pytest.mark.parametrize(
        "step_options",
        [{}, {"start_to_close_timeout": timedelta(seconds=30)}],
        ids=["plain", "timed"],
    )
    async def test_a_failed_undo_keeps_no_exception_alive(
        self, saga_options: dict[str, Any], step_options: dict[str, Any]
    ) -> None:
        """Once the caller drops `SagaFailed`, reference counting alone frees the undos' errors.

        `SagaFailed.compensation_error` holds them while the caller holds
        `SagaFailed`; the saga, kept by the executor for `reports`, must keep
        only their descriptions, or every failed undo would keep its frames
        alive and be a reference cycle once dropped.
        """
        raised: list[weakref.ref[Boom]] = []

        def boom(n: int) -> Boom:
            error = Boom(f"undo {n}")  # made here, so no frame of the traceback holds it
            raised.append(weakref.ref(error))
            return error

        async def release(n: int) -> None:
            raise boom(n)

        async def saga(s: Saga) -> None:
            await s.step(reserve, release, 1, **step_options)
            await s.step(reserve, release, 2, **step_options)
            raise Boom("body")

        executor = InMemoryExecutor(options(**saga_options), record_calls=False)
        described: list[ErrorInfo | None] = []
        held: list[bool] = []
        gc.disable()  # only reference counting may free them
        try:
            for _ in range(3):
                try:
                    await executor.run(saga)
                except SagaFailed as e:  # not pytest.raises: its ExceptionInfo keeps frames
                    comp = e.compensation_error
                    held.append(
                        comp is not None
                        and all(any(x is r() for r in raised) for x in comp.exceptions)
                    )
                    del comp
                    undo = e.report.steps[1].undo
                    described.append(undo.error if undo is not None else None)
            alive = [r() for r in raised]
        finally:
            gc.enable()
        per_run = 1 if saga_options.get("continue_on_compensation_error") is False else 2
        assert len(raised) == 3 * per_run
        assert held == [True] * 3  # held while the caller held SagaFailed
        assert alive == [None] * len(raised)
        assert described == [ErrorInfo(type="Boom", message="undo 2")] * 3
        assert [r.steps[1].undo.error for r in executor.reports] == described  # type: ignore[union-attr]

    async def test_a_failed_undo_of_a_failed_do_keeps_neither_alive(self) -> None:
        """A do's error and its own undo's error are both freed once the caller drops SagaFailed."""
        raised: list[weakref.ref[Boom]] = []

        def boom(what: str) -> Boom:
            error = Boom(what)
            raised.append(weakref.ref(error))
            return error

        async def declined(n: int) -> int:
            raise boom(f"do {n}")

        async def release(n: int) -> None:
            raise boom(f"undo {n}")

        async def saga(s: Saga) -> None:
            await s.step(reserve, release, 1)
            await s.step(declined, release, 2)

        executor = InMemoryExecutor(options(), record_calls=False)
        held: list[bool] = []
        gc.disable()
        try:
            for _ in range(3):
                try:
                    await executor.run(saga)
                except SagaFailed as e:
                    held.append(e.compensation_error is not None)
            alive = [r() for r in raised]
        finally:
            gc.enable()
        assert len(raised) == 9  # per run: the do's error and two undos' errors
        assert held == [True] * 3
        assert alive == [None] * 9
        failed = [s.undo.status for s in executor.last_report.steps if s.undo is not None]
        assert failed == [UndoStatus.FAILED, UndoStatus.FAILED]


class TestAnUndoNothingBoundsIsBounded:
    """An undo with unlimited attempts and no schedule_to_close_timeout gets UNDO_ATTEMPTS.

    Unbounded, an undo that can never succeed (on Temporal: an activity no
    worker registered) would retry forever, and every undo after it would wait.
    """

    @staticmethod
    async def run(
        saga_options: SagaOptions | None = None, **step_options: Any
    ) -> tuple[int, SagaStatus]:
        tries = 0

        def broken_release(n: int) -> None:
            nonlocal tries
            tries += 1
            raise ConnectionError("stock service unreachable")

        async def saga_fn(saga: Saga) -> None:
            await saga.step(reserve, broken_release, 1, **step_options)
            raise Boom("the saga fails after its step")

        executor = InMemoryExecutor(saga_options or options())
        with pytest.raises(SagaFailed) as ei:
            await executor.run(saga_fn)
        return tries, ei.value.report.status

    async def test_an_unlimited_policy_inherited_from_the_do_stops_at_ten(self) -> None:
        unlimited = RetryPolicy(initial_interval=timedelta(milliseconds=1), maximum_attempts=0)
        assert await self.run(retry_policy=unlimited) == (
            UNDO_ATTEMPTS,
            SagaStatus.COMPENSATION_FAILED,
        )

    async def test_no_policy_at_all_stops_at_ten(self) -> None:
        assert (await self.run(SagaOptions()))[0] == UNDO_ATTEMPTS

    async def test_the_undos_own_unlimited_policy_is_kept(self) -> None:
        """`undo_retry_policy` says what the user wants: unlimited, to the executor's cap."""
        unlimited = RetryPolicy(initial_interval=timedelta(milliseconds=1), maximum_attempts=0)
        tries, _ = await self.run(undo_retry_policy=unlimited)
        assert tries == InMemoryExecutor().unlimited_attempts

    async def test_a_schedule_to_close_timeout_is_bound_enough(self) -> None:
        unlimited = RetryPolicy(
            initial_interval=timedelta(seconds=1), backoff_coefficient=1.0, maximum_attempts=0
        )
        tries, _ = await self.run(
            retry_policy=unlimited, schedule_to_close_timeout=timedelta(seconds=30)
        )
        assert UNDO_ATTEMPTS < tries <= 31  # 1 s apart on the virtual clock: bounded by time

    async def test_a_bounded_policy_is_kept(self) -> None:
        three = RetryPolicy(initial_interval=timedelta(milliseconds=1), maximum_attempts=3)
        assert (await self.run(retry_policy=three))[0] == 3
