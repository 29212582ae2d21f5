"""SagaReport: what ran, what was compensated, what failed; and its renderings."""

from __future__ import annotations

import json
import math
import pickle
from datetime import UTC, datetime
from typing import Any

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


def without_times(r: SagaReport) -> SagaReport:
    """The report as its compact form keeps it: the saga's start in whole seconds, no other time."""
    data = r.model_dump()
    data["started_at"] = datetime.fromtimestamp(math.floor(r.started_at.timestamp()), UTC)
    data["ended_at"] = None
    for step in data["steps"]:
        step["started_at"] = step["ended_at"] = None
        if step["undo"] is not None:
            step["undo"]["started_at"] = step["undo"]["ended_at"] = None
    return SagaReport.model_validate(data)


class TestCompact:
    async def test_round_trip_keeps_all_but_timestamps(self, journal: Journal) -> None:
        """from_compact(to_compact(r)) is r without its timestamps (start in whole seconds)."""
        _, err = await failed_run(journal)
        r = err.report
        back = SagaReport.from_compact(r.to_compact())
        assert back == without_times(r)
        assert back.started_at.tzinfo is not None
        assert back.compensation_order == r.compensation_order
        assert [s.name for s in back.failed_undos] == ["charge"]

    async def test_shape_is_short_keys_and_one_array_per_step(self, journal: Journal) -> None:
        """Versioned, short keys, no timestamps; trailing nulls trimmed; the saga error by seq."""
        _, err = await failed_run(journal)
        c = err.report.to_compact()
        assert c["v"] == 1
        assert c["id"] == "order-1"
        assert c["s"] == "f"
        assert isinstance(c["t"], int)
        assert c["e"] == 4  # the saga failed with step 4's error: not repeated
        assert "x" not in c
        book, reserve, charge, ship = c["st"]
        assert book == [1, "book", "s", "undo_book", "c", 3, 1, None, None, 1]
        assert reserve == [2, "reserve", "s", None, None, None, 1]
        assert charge[:7] == [3, "charge", "s", "undo_charge", "f", 2, 1]
        assert charge[10] == "InjectedFault"
        assert ship == [4, "ship", "f", "undo_ship", "c", 1, 2, "Boom", "no truck", 1]
        assert "_at" not in json.dumps(c)

    async def test_is_much_smaller_than_the_full_report(self, journal: Journal) -> None:
        """The compact JSON is a fraction of the full report's."""
        _, err = await failed_run(journal)
        r = err.report
        compact = json.dumps(r.to_compact(saga_id=False), separators=(",", ":"))
        full = r.model_dump_json(exclude_none=True)
        assert len(compact) * 3 < len(full)

    async def test_saga_id_can_be_left_out_and_filled_in(self, journal: Journal) -> None:
        """to_compact(saga_id=False) drops the id; from_compact(saga_id=...) supplies it."""
        _, err = await failed_run(journal)
        c = err.report.to_compact(saga_id=False)
        assert "id" not in c
        assert SagaReport.from_compact(c).saga_id == ""
        assert SagaReport.from_compact(c, saga_id="order-1") == without_times(err.report)

    async def test_long_messages_are_cut(self) -> None:
        """Error messages over 200 characters are cut to 200, ending in '...'."""

        def fail() -> None:
            raise Boom("x" * 5000)

        async def saga(s: Saga) -> None:
            await s.step(fail, None)

        executor = InMemoryExecutor(options())
        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        c = info.value.report.to_compact()
        message = c["st"][0][8]
        assert len(message) == 200
        assert message.endswith("...")
        assert c["e"] == 1
        back = SagaReport.from_compact(c)
        assert back.error == back.steps[0].error == ErrorInfo(type="Boom", message=message)

    async def test_body_error_cancelled_flag_and_values(self, journal: Journal) -> None:
        """An error of the saga body, the cancelled flag and recorded results round-trip too."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            raise Boom("body broke")

        executor = InMemoryExecutor(options(record_values=True))
        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        r = info.value.report.model_copy(update={"cancelled": True})
        c = r.to_compact()
        assert c["e"] == ["Boom", "body broke"]
        assert c["x"] == 1
        assert c["st"][0][-1] == "a"
        assert SagaReport.from_compact(c) == without_times(r)

    @pytest.mark.parametrize(
        "data",
        [
            {"v": 2, "s": "c", "t": 0, "st": []},
            {"s": "c", "t": 0, "st": []},
            {"v": 1, "s": "?", "t": 0, "st": []},
            {"v": 1, "s": "c", "st": []},
            {"v": 1, "s": "c", "t": 0, "st": [[1, "a", "?"]]},
            {"v": 1, "s": "c", "t": 0, "st": [[1, "a", "s", None, "?"]]},
            {"v": 1, "s": "c", "t": 0, "e": 9, "st": [[1, "a", "s"]]},
            {"v": 1, "s": "c", "t": 0, "st": 5},
            {"v": 1, "s": "c", "t": 0, "e": "Boom", "st": []},
            ["not", "a", "dict"],
        ],
    )
    def test_unreadable_input_raises_value_error(self, data: Any) -> None:
        """A wrong version or a malformed compact report raises ValueError, naming the problem."""
        with pytest.raises(ValueError, match="compact report"):
            SagaReport.from_compact(data)


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
