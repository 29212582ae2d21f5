"""The refund batch across runs, specified on every backend.

On Temporal each run continues as new, the plan a `continue_as_new` arg; the
report is the last run's (the handle follows the chain).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from examples._support.running import Backend, OnTemporal, Outcome, SagaCase, run_on_temporal
from examples.refund_batch.activities import ACTIVITIES, PROVIDER
from examples.refund_batch.handoff import run_in_memory
from examples.refund_batch.models import Batch, BatchResult, Refund
from examples.refund_batch.saga import OPTIONS, process
from examples.refund_batch.services import PaymentProvider
from examples.refund_batch.workflow import RefundBatch
from sagakit import SagaFailed, SagaStatus, StepStatus
from sagakit.inmemory import InMemoryExecutor

CASE = SagaCase(saga=process, options=OPTIONS, workflow=RefundBatch, activities=ACTIVITIES)

PER_RUN = 100
SIZE = {"inmemory": 1000, "temporal": 250}
"""Refunds in a batch: on Temporal 3 runs instead of 10 (about 40 ms an activity on the
dev server, so 1,000 refunds and their reversals would take minutes)."""

Refunds = Callable[[Batch], Awaitable[Outcome[BatchResult]]]


def name(i: int) -> str:
    return f"r-{i:04d}"


def a_batch(size: int) -> Batch:
    refunds = [
        Refund(refund_id=name(i), account=f"acct-{i:04d}", amount_cents=100 + i)
        for i in range(1, size + 1)
    ]
    return Batch(batch_id="b-1", refunds=refunds, per_run=PER_RUN)


def late(size: int) -> int:
    """The refund that fails: 25 before the end, in the last run."""
    return size - 25


@pytest.fixture
def size(backend: Backend) -> int:
    return SIZE[backend.name]


@pytest.fixture
def provider(tmp_path: Path) -> PaymentProvider:
    return PaymentProvider(tmp_path / "provider.sqlite3")


@pytest.fixture
def refund(backend: Backend, provider: PaymentProvider) -> Refunds:
    async def run(batch: Batch) -> Outcome[BatchResult]:
        with PROVIDER.provide(provider):
            if isinstance(backend, OnTemporal):
                # Started with args=[batch, None]: the first run resumes no plan.
                return await run_on_temporal(
                    backend.client, CASE, batch, None, result_type=BatchResult
                )
            executor = InMemoryExecutor(options=OPTIONS)
            try:
                result = await run_in_memory(executor, batch)
            except SagaFailed as e:
                return Outcome(report=e.report)
            return Outcome(report=executor.last_report, result=result)

    return run


class TestABatchThatGoesThrough:
    async def test_issues_every_refund_100_a_run(
        self, refund: Refunds, provider: PaymentProvider, size: int
    ) -> None:
        """1,000 refunds, 100 a run: ten runs, each refund issued once under a key of its own."""
        outcome = await refund(a_batch(size))

        runs = -(-size // PER_RUN)
        assert outcome.result == BatchResult(batch_id="b-1", issued=size, runs=runs)
        rows = provider.rows()
        assert [r["refund_id"] for r in rows] == [name(i) for i in range(1, size + 1)]
        assert {r["status"] for r in rows} == {"issued"}
        assert len({r["key"] for r in rows}) == size

    async def test_the_last_run_carries_every_earlier_refund(
        self, refund: Refunds, provider: PaymentProvider, size: int
    ) -> None:
        """The last run's report lists the refunds it carries, each by the key its do saw."""
        outcome = await refund(a_batch(size))

        steps = outcome.report.steps
        assert len(steps) == size
        carried = [s.carried for s in steps if s.carried is not None]
        earlier = (size - 1) // PER_RUN * PER_RUN  # 900 of 1,000
        assert carried == [r["key"] for r in provider.rows()[:earlier]]


class TestALateRefundThatFails:
    async def test_reverses_every_refund_the_batch_issued_once(
        self, refund: Refunds, provider: PaymentProvider, size: int
    ) -> None:
        """A closed account at refund 975: all 974 earlier refunds, of every run, reversed once."""
        provider.closed = frozenset({f"acct-{late(size):04d}"})

        outcome = await refund(a_batch(size))

        assert outcome.error.type == "AccountClosed"
        assert outcome.report.status is SagaStatus.COMPENSATED
        rows = provider.rows()
        assert len(rows) == late(size) - 1
        assert {(r["status"], r["reversals"]) for r in rows} == {("reversed", 1)}

    async def test_unwinds_the_whole_plan_last_in_first_out(
        self, refund: Refunds, provider: PaymentProvider, size: int
    ) -> None:
        """The last run undoes its own refunds, then the earlier runs', the last issued first."""
        failing = late(size)
        provider.closed = frozenset({f"acct-{failing:04d}"})

        outcome = await refund(a_batch(size))

        report = outcome.report
        assert report.step(f"refund {name(failing)}").status is StepStatus.FAILED
        # 900 carried from the nine earlier runs, then this run's 75 (the failed one last)
        earlier = (failing - 1) // PER_RUN * PER_RUN
        own = failing - earlier
        assert [s.carried is not None for s in report.steps] == [True] * earlier + [False] * own
        assert report.compensation_order == [f"refund {name(i)}" for i in range(failing, 0, -1)]
