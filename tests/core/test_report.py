"""SagaReport: what ran, what was compensated, what failed; and its renderings."""

from __future__ import annotations

import pickle

import pytest

from sagakit import (
    ErrorInfo,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaReport,
    SagaStatus,
    StepStatus,
    UndoStatus,
)
from sagakit.inmemory import Fault, InMemoryExecutor

from ._support import Journal, options


class Boom(Exception):
    pass


async def failed_run(journal: Journal) -> tuple[InMemoryExecutor, SagaFailed]:
    """Book -> reserve(no undo) -> charge(undo fails) -> ship(fails after 2 retries)."""
    executor = InMemoryExecutor(
        options(retry_policy=RetryPolicy(maximum_attempts=2)),
        faults=[Fault.fail("charge", undo=True, attempts=[1, 2])],
    )

    async def saga(s: Saga) -> None:
        await s.step(*journal.step("book"))
        await s.step(journal.step("reserve")[0], None)
        await s.step(*journal.step("charge"))
        await s.step(*journal.step("ship", fail=Boom("no truck")))

    with pytest.raises(SagaFailed) as info:
        await executor.run(saga, saga_id="order-1")
    return executor, info.value


class TestReportContent:
    async def test_statuses_attempts_and_order(self, journal: Journal) -> None:
        """The report gives each step's do and undo status, attempts and the undo order."""
        _, err = await failed_run(journal)
        r = err.report
        assert r.saga_id == "order-1"
        assert r.status is SagaStatus.COMPENSATION_FAILED
        assert r.error == ErrorInfo(type="Boom", message="no truck")
        assert not r.cancelled
        assert [(s.seq, s.name, s.status, s.attempts) for s in r.steps] == [
            (1, "book", StepStatus.SUCCEEDED, 1),
            (2, "reserve", StepStatus.SUCCEEDED, 1),
            (3, "charge", StepStatus.SUCCEEDED, 1),
            (4, "ship", StepStatus.FAILED, 2),
        ]
        assert r.step("ship").error == ErrorInfo(type="Boom", message="no truck")
        assert r.step("reserve").undo is None
        undos = {s.name: s.undo for s in r.steps if s.undo is not None}
        assert {n: (u.status, u.attempts, u.order) for n, u in undos.items()} == {
            "ship": (UndoStatus.COMPENSATED, 1, 1),
            "charge": (UndoStatus.FAILED, 2, 2),
            "book": (UndoStatus.COMPENSATED, 1, 3),
        }
        assert undos["charge"].name == "undo_charge"
        assert undos["charge"].error is not None
        assert undos["charge"].error.type == "InjectedFault"
        assert r.compensation_order == ["ship", "charge", "book"]
        assert [s.name for s in r.failed_undos] == ["charge"]
        assert r.started_at <= r.steps[0].started_at  # type: ignore[operator]
        assert r.ended_at is not None

    async def test_saga_failed_report_is_the_executors_report(self, journal: Journal) -> None:
        """SagaFailed.report equals executor.last_report and is one object on every read."""
        executor, err = await failed_run(journal)
        assert err.report == executor.last_report
        assert err.report is err.report

    async def test_report_survives_a_json_round_trip(self, journal: Journal) -> None:
        """A report serialises to JSON and back unchanged."""
        _, err = await failed_run(journal)
        r = err.report
        assert SagaReport.model_validate_json(r.model_dump_json()) == r

    async def test_saga_failed_pickles_with_its_report(self, journal: Journal) -> None:
        """SagaFailed survives pickling (process pools, test runners) with its report."""
        _, err = await failed_run(journal)
        again = pickle.loads(pickle.dumps(err))
        assert again.report == err.report
        assert str(again) == str(err)

    async def test_step_lookup_by_unknown_name_says_which_exist(self, journal: Journal) -> None:
        """report.step(name) with an unknown name raises KeyError listing the steps."""
        _, err = await failed_run(journal)
        with pytest.raises(KeyError, match="book"):
            err.report.step("nope")

    async def test_values_are_recorded_only_when_asked(self, journal: Journal) -> None:
        """Step results stay out of reports unless record_values=True."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        plain = InMemoryExecutor(options())
        await plain.run(saga)
        assert plain.last_report.steps[0].result is None
        recording = InMemoryExecutor(options(record_values=True))
        await recording.run(saga)
        assert recording.last_report.steps[0].result == "a"

    async def test_success_report(self, journal: Journal, executor: InMemoryExecutor) -> None:
        """A successful run reports SUCCEEDED, each undo PENDING and nothing compensated."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        await executor.run(saga)
        r = executor.last_report
        assert r.status is SagaStatus.SUCCEEDED
        assert r.error is None
        assert r.steps[0].undo is not None
        assert r.steps[0].undo.status is UndoStatus.PENDING
        assert r.compensation_order == []
        assert r.failed_undos == []


class TestRendering:
    async def test_timeline_lists_every_do_and_undo(self, journal: Journal) -> None:
        """report.timeline() shows each step, its undo, the cause and the saga status."""
        _, err = await failed_run(journal)
        text = err.report.timeline(color=False)
        assert "COMPENSATION_FAILED" in text
        assert "cause: Boom: no truck" in text
        for name in ("book", "reserve", "charge", "ship", "undo_charge", "undo_ship"):
            assert name in text
        assert "\033[" not in text
        assert "\033[" in err.report.timeline(color=True)

    async def test_mermaid_diagram_contains_the_steps(self, journal: Journal) -> None:
        """report.mermaid() is a sequence diagram with every step and every undo that ran."""
        _, err = await failed_run(journal)
        text = err.report.mermaid()
        assert text.startswith("sequenceDiagram")
        for name in ("book", "reserve", "charge", "ship"):
            assert f"participant {name} as {name}" in text
        assert "S->>ship: undo undo_ship" in text
        assert "charge--xS: failed InjectedFault" in text
        assert (
            text.index("undo undo_ship")
            < text.index("undo undo_charge")
            < text.index("undo undo_book")
        )
