"""Operating a saga in memory: the alert hook, a parked undo's timeline and status.

`on_compensation_failed` runs once, with the report, when an undo finally
fails or parks, and its own failure never changes how the saga ends. (Where
the saga stands is shown by the Temporal adapter alone: current details, the
`SagaStatus` search attribute and metrics, tested in tests/temporal.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sagakit import (
    Saga,
    SagaFailed,
    SagaOptions,
    SagaReport,
    SagaStatus,
    StepDefinitionError,
    UndoStatus,
)
from sagakit.inmemory import InMemoryExecutor

from ._support import NO_RETRY


class Boom(Exception):
    pass


def reserve(order: str) -> str:
    return f"reserved {order}"


def release(order: str) -> None:
    pass


def charge(order: str) -> str:
    return f"charged {order}"


def refund(order: str) -> None:
    raise ConnectionError("payment provider down")


def ship(order: str) -> str:
    raise Boom("no carrier")


async def order_saga(saga: Saga, order: str) -> None:
    await saga.step(reserve, release, order)
    await saga.step(charge, refund, order)
    await saga.step(ship, None, order)


class TestTheHook:
    async def test_runs_once_with_the_final_report_when_an_undo_fails(self) -> None:
        told: list[SagaReport] = []
        ex = InMemoryExecutor(
            SagaOptions(retry_policy=NO_RETRY, on_compensation_failed=told.append)
        )
        with pytest.raises(SagaFailed):
            await ex.run(order_saga, "o-1")
        assert [r.status for r in told] == [SagaStatus.COMPENSATION_FAILED]
        assert told[0].step("charge").undo is not None

    async def test_runs_once_when_an_undo_parks_even_if_it_parks_again(self) -> None:
        told: list[SagaReport] = []
        opts = SagaOptions(
            retry_policy=NO_RETRY, on_undo_failure="park", on_compensation_failed=told.append
        )
        ex = InMemoryExecutor(opts)
        task = asyncio.create_task(ex.run(order_saga, "o-1"))
        [parked] = await ex.wait_parked()
        await ex.resolve(parked.saga_id, parked.seq, "retry")  # still down: parks again
        await ex.wait_parked()
        await ex.resolve(parked.saga_id, parked.seq, "skip", reason="refunded by phone")
        with pytest.raises(SagaFailed):
            await task
        assert [r.status for r in told] == [SagaStatus.PARKED]
        assert [p.seq for p in told[0].parked] == [2]

    async def test_not_run_when_every_undo_succeeds(self) -> None:
        told: list[SagaReport] = []
        ex = InMemoryExecutor(
            SagaOptions(retry_policy=NO_RETRY, on_compensation_failed=told.append)
        )

        async def fine(saga: Saga, order: str) -> None:
            await saga.step(reserve, release, order)
            await saga.step(ship, None, order)

        with pytest.raises(SagaFailed) as ei:
            await ex.run(fine, "o-1")
        assert ei.value.report.status is SagaStatus.COMPENSATED
        assert told == []

    async def test_its_failure_is_logged_not_raised(self, caplog: pytest.LogCaptureFixture) -> None:
        def broken_pager(report: SagaReport) -> None:
            raise RuntimeError("pager down")

        ex = InMemoryExecutor(
            SagaOptions(retry_policy=NO_RETRY, on_compensation_failed=broken_pager)
        )
        with caplog.at_level(logging.WARNING, logger="sagakit"), pytest.raises(SagaFailed) as ei:
            await ex.run(order_saga, "o-1")
        assert ei.value.report.status is SagaStatus.COMPENSATION_FAILED
        assert "on_compensation_failed failed: RuntimeError: pager down" in caplog.text

    @pytest.mark.parametrize(
        ("hook", "says"),
        [
            ("page_on_call", "not an activity name"),
            (lambda: None, "takes"),
        ],
        ids=["an activity name in memory", "a callable that takes no report"],
    )
    async def test_one_that_cannot_run_is_refused_before_anything_runs(
        self, hook: Any, says: str
    ) -> None:
        ran: list[str] = []

        def do(order: str) -> None:
            ran.append(order)

        async def saga_fn(saga: Saga) -> None:
            await saga.step(do, None, "o-1")

        ex = InMemoryExecutor(SagaOptions(on_compensation_failed=hook))
        with pytest.raises(StepDefinitionError, match=says):
            await ex.run(saga_fn)
        assert ran == []


def _async(fn: Any) -> Any:
    async def wrapper(*args: Any) -> Any:
        return fn(*args)

    return wrapper


class TestTheTimelineShowsTheParkedUndo:
    async def test_a_resolved_undo_shows_when_it_parked_and_what_was_decided(self) -> None:
        down = {"refund"}

        def flaky_refund(order: str) -> None:
            if "refund" in down:
                raise ConnectionError("payment provider down")

        async def saga_fn(saga: Saga, order: str) -> None:
            await saga.step(reserve, release, order)
            await saga.step(charge, flaky_refund, order)
            await saga.step(ship, None, order)

        ex = InMemoryExecutor(SagaOptions(retry_policy=NO_RETRY, on_undo_failure="park"))
        task = asyncio.create_task(ex.run(saga_fn, "o-1"))
        [parked] = await ex.wait_parked()
        down.clear()
        await ex.resolve(parked.saga_id, 2, "retry", reason="provider is back", by="ana")
        with pytest.raises(SagaFailed) as ei:
            await task
        lines = ei.value.report.timeline(color=False).splitlines()
        decided = next(i for i, line in enumerate(lines) if "parked, then retry" in line)
        assert lines[decided].endswith("parked, then retry by ana: provider is back")
        assert "undo   2. charge (flaky_refund)" in lines[decided]
        assert "compensated" in lines[decided + 1]  # the retry ran after the decision


class Outage:
    """Undos that fail while their service is down; back up, the `held` one waits for `done`."""

    def __init__(self, *down: str, held: str) -> None:
        self.down, self.held = set(down), held
        self.retried, self.done = asyncio.Event(), asyncio.Event()

    def undo(self, name: str) -> Callable[[str], Awaitable[None]]:
        async def undo(order: str) -> None:
            if name in self.down:
                raise ConnectionError(f"{name} service down")
            if name == self.held:
                self.retried.set()
                await self.done.wait()

        undo.__name__ = name
        return undo

    async def parked_order(self) -> tuple[InMemoryExecutor, asyncio.Task[None], list[int]]:
        """An order saga whose shipping fails, run until it waits for operators."""

        async def saga_fn(saga: Saga, order: str) -> None:
            await saga.step(reserve, self.undo("release"), order)
            await saga.step(charge, self.undo("refund"), order)
            await saga.step(ship, None, order)

        ex = InMemoryExecutor(SagaOptions(retry_policy=NO_RETRY, on_undo_failure="park"))
        task = asyncio.create_task(ex.run(saga_fn, "o-1"))
        return ex, task, [p.seq for p in await ex.wait_parked()]


class TestWhileAnOperatorsRetryRuns:
    async def test_the_saga_stays_parked_listing_the_undo_still_waiting(self) -> None:
        """Retrying one of two parked undos: PARKED, the other listed; the retried one RUNNING."""
        outage = Outage("release", "refund", held="release")
        ex, task, parked = await outage.parked_order()
        assert parked == [1, 2]
        outage.down.clear()
        await ex.resolve(ex.last_report.saga_id, 1, "retry")
        await outage.retried.wait()
        report = ex.last_report
        assert report.status is SagaStatus.PARKED
        assert [p.seq for p in report.parked] == [2] == [p.seq for p in ex.parked()]
        assert report.steps[0].undo is not None
        assert report.steps[0].undo.status is UndoStatus.RUNNING
        outage.done.set()
        await ex.resolve(report.saga_id, 2, "retry")
        with pytest.raises(SagaFailed) as ei:
            await task
        assert ei.value.report.status is SagaStatus.COMPENSATED

    async def test_retrying_the_last_parked_undo_reads_compensating(self) -> None:
        """With no other undo parked, the saga runs its undos again: COMPENSATING."""
        outage = Outage("refund", held="refund")
        ex, task, parked = await outage.parked_order()
        assert parked == [2]
        outage.down.clear()
        await ex.resolve(ex.last_report.saga_id, 2, "retry")
        await outage.retried.wait()
        assert ex.last_report.status is SagaStatus.COMPENSATING
        assert ex.last_report.parked == []
        outage.done.set()
        with pytest.raises(SagaFailed):
            await task
