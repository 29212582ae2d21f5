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
    OmittedSteps,
    Resolution,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaReport,
    SagaStatus,
    StepKind,
    StepReport,
    StepStatus,
    UndoReport,
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


def compact_view(r: SagaReport, listed: list[str], undos: dict[UndoStatus, int]) -> SagaReport:
    """`r` as its compact form (version 2) reads back: no times, only `listed`, the rest counted.

    `listed` names the steps it lists, in registration order; `undos` counts the
    others by undo status.
    """
    full = without_times(r)
    steps = [s for s in full.steps if s.name in listed]
    assert [s.name for s in steps] == listed
    omitted = OmittedSteps(count=len(full.steps) - len(steps), undos=undos)
    assert omitted.count == sum(undos.values())
    return full.model_copy(update={"steps": steps, "omitted": omitted})


def step(
    seq: int,
    status: StepStatus = StepStatus.SUCCEEDED,
    undo: UndoStatus | None = UndoStatus.COMPENSATED,
    *,
    kind: StepKind = StepKind.COMPENSATABLE,
    resolutions: tuple[Resolution, ...] = (),
) -> StepReport:
    """A step as a compact report carries it: no times, resolutions without who and when."""
    return StepReport(
        seq=seq,
        name=f"s{seq}",
        status=status,
        kind=kind,
        attempts=1,
        undo=None
        if undo is None
        else UndoReport(name=f"u{seq}", status=undo, order=seq, resolutions=list(resolutions)),
    )


T0 = datetime(2026, 1, 1, tzinfo=UTC)
RETRY = Resolution(action="retry", reason="provider is back")
SKIP = Resolution(action="skip")

# (step, listed): what the compact form lists, and what it only counts.
USUAL_AND_UNUSUAL = [
    pytest.param(step(1, undo=None), False, id="do-succeeded-no-undo"),
    pytest.param(step(1, undo=UndoStatus.PENDING), False, id="do-succeeded-undo-pending"),
    pytest.param(step(1), False, id="do-succeeded-undo-compensated"),
    pytest.param(step(1, undo=None, kind=StepKind.RETRIABLE), False, id="retriable-succeeded"),
    pytest.param(step(1, StepStatus.FAILED), True, id="do-failed"),
    pytest.param(step(1, StepStatus.CANCELLED), True, id="do-cancelled"),
    pytest.param(step(1, StepStatus.RUNNING, UndoStatus.PENDING), True, id="do-running"),
    pytest.param(step(1, undo=UndoStatus.FAILED), True, id="undo-failed"),
    pytest.param(step(1, undo=UndoStatus.SKIPPED), True, id="undo-skipped"),
    pytest.param(step(1, undo=UndoStatus.RUNNING), True, id="undo-running"),
    pytest.param(step(1, undo=UndoStatus.PARKED), True, id="undo-parked"),
    pytest.param(step(1, resolutions=(RETRY,)), True, id="undo-resolved-retry"),
    pytest.param(
        step(1, undo=UndoStatus.DONE_BY_HAND, resolutions=(SKIP,)), True, id="undo-done-by-hand"
    ),
    pytest.param(step(1, StepStatus.FAILED, UndoStatus.NOT_NEEDED), True, id="undo-not-needed"),
    pytest.param(step(1, undo=None, kind=StepKind.PIVOT), True, id="pivot"),
]


class TestCompact:
    async def test_round_trip_keeps_the_unusual_steps_and_counts_the_others(
        self, journal: Journal
    ) -> None:
        """from_compact(to_compact(r)) is r untimed, its unusual steps only, the rest counted."""
        _, err = await failed_run(journal)
        r = err.report
        back = SagaReport.from_compact(r.to_compact())
        assert back == compact_view(
            r, ["charge", "ship"], {UndoStatus.COMPENSATED: 1, UndoStatus.NONE: 1}
        )
        assert back.omitted == OmittedSteps(
            count=2, undos={UndoStatus.COMPENSATED: 1, UndoStatus.NONE: 1}
        )
        assert back.started_at.tzinfo is not None
        assert back.status is r.status is SagaStatus.COMPENSATION_FAILED
        assert back.error == r.error == ErrorInfo(type="Boom", message="no truck")
        # book's undo ran third, but book went as planned: only counted.
        assert back.compensation_order == ["ship", "charge"]
        assert r.compensation_order == ["ship", "charge", "book"]
        assert [s.name for s in back.failed_undos] == ["charge"]
        assert r.omitted is None  # only a report read back from its compact form has it

    async def test_shape_is_short_keys_and_one_array_per_unusual_step(
        self, journal: Journal
    ) -> None:
        """Version 2, short keys, no times; unusual steps one array each, the rest counted."""
        _, err = await failed_run(journal)
        c = err.report.to_compact()
        assert c["v"] == 2
        assert c["id"] == "order-1"
        assert c["s"] == "f"
        assert isinstance(c["t"], int)
        assert c["n"] == 4  # steps registered: listed and counted
        assert c["e"] == 4  # the saga failed with step 4's error: not repeated
        assert "x" not in c
        charge, ship = c["st"]  # book and reserve went as planned
        assert charge == [
            3,
            "charge",
            "s",
            "undo_charge",
            "f",
            2,
            1,
            None,
            None,
            2,
            "InjectedFault",
            "injected fault: charge undo attempt 2",
        ]
        assert ship == [4, "ship", "f", "undo_ship", "c", 1, 2, "Boom", "no truck", 1]
        assert c["u"] == {"c": 1, "n": 1}  # book compensated, reserve with no undo
        assert "_at" not in json.dumps(c)
        assert "book" not in json.dumps(c)
        assert "reserve" not in json.dumps(c)

    @pytest.mark.parametrize(("one", "listed"), USUAL_AND_UNUSUAL)
    def test_only_unusual_steps_are_listed(self, one: StepReport, listed: bool) -> None:
        """Listed: a do not succeeded; an undo failed, skipped, running, parked, resolved; a pivot.

        Every other step (its do succeeded; its undo compensated, pending or
        none) is only counted, by undo status.
        """
        r = SagaReport(saga_id="x", status=SagaStatus.COMPENSATED, started_at=T0, steps=[one])
        c = r.to_compact()
        back = SagaReport.from_compact(c)
        assert c["n"] == 1
        if listed:
            assert [row[0] for row in c["st"]] == [1]
            assert "u" not in c
            assert back.steps == [one]
            assert back.omitted == OmittedSteps()
        else:
            assert "st" not in c
            code = (
                "n" if one.undo is None else {"pending": "p", "compensated": "c"}[one.undo.status]
            )
            assert c["u"] == {code: 1}
            assert back.steps == []
            assert back.omitted == OmittedSteps(
                count=1, undos={UndoStatus.NONE if one.undo is None else one.undo.status: 1}
            )

    def test_a_mixed_saga_lists_its_unusual_steps_in_order(self) -> None:
        """Every case at once: the unusual steps listed in seq order, the rest counted."""
        steps = [p.values[0] for p in USUAL_AND_UNUSUAL]
        steps = [s.model_copy(update={"seq": n, "name": f"s{n}"}) for n, s in enumerate(steps, 1)]
        r = SagaReport(
            saga_id="x", status=SagaStatus.COMPENSATION_FAILED, started_at=T0, steps=steps
        )
        c = r.to_compact()
        assert c["n"] == 15
        assert [row[0] for row in c["st"]] == list(range(5, 16))
        assert c["u"] == {"n": 2, "p": 1, "c": 1}
        # Resolutions travel as [action, reason], the reason left out when none given.
        assert c["st"][7][-1] == [["retry", "provider is back"]]
        assert c["st"][8][-1] == [["skip"]]
        back = SagaReport.from_compact(c)
        assert back.steps == steps[4:]
        assert back.omitted == OmittedSteps(
            count=4,
            undos={UndoStatus.NONE: 2, UndoStatus.PENDING: 1, UndoStatus.COMPENSATED: 1},
        )

    async def test_a_successful_saga_lists_no_step(self, journal: Journal) -> None:
        """A saga whose steps all succeeded (undos pending) is only counted: no `st`, no `e`."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b"))
            await s.step(journal.step("c")[0], None)

        executor = InMemoryExecutor(options())
        await executor.run(saga)
        r = executor.last_report
        c = r.to_compact(saga_id=False)
        assert c == {
            "v": 2,
            "s": "s",
            "t": int(r.started_at.timestamp()),
            "n": 3,
            "u": {"p": 2, "n": 1},
        }
        back = SagaReport.from_compact(c)
        assert back.status is SagaStatus.SUCCEEDED
        assert back.steps == []
        assert back.compensation_order == []
        assert back.omitted == OmittedSteps(
            count=3, undos={UndoStatus.PENDING: 2, UndoStatus.NONE: 1}
        )

    async def test_version_1_is_still_read(self, journal: Journal) -> None:
        """A version-1 dict (every step listed, no `n`) reads back whole, nothing omitted."""
        _, err = await failed_run(journal)
        r = err.report
        v1 = {
            "v": 1,
            "id": "order-1",
            "s": "f",
            "t": int(r.started_at.timestamp()),
            "e": 4,
            "st": [
                [1, "book", "s", "undo_book", "c", 3, 1, None, None, 1],
                [2, "reserve", "s", None, None, None, 1],
                [
                    3,
                    "charge",
                    "s",
                    "undo_charge",
                    "f",
                    2,
                    1,
                    None,
                    None,
                    2,
                    "InjectedFault",
                    "injected fault: charge undo attempt 2",
                ],
                [4, "ship", "f", "undo_ship", "c", 1, 2, "Boom", "no truck", 1],
            ],
        }
        back = SagaReport.from_compact(v1)
        assert back.omitted == OmittedSteps()
        assert back.model_copy(update={"omitted": None}) == without_times(r)
        assert back.compensation_order == ["ship", "charge", "book"]

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
        assert SagaReport.from_compact(c, saga_id="order-1") == compact_view(
            err.report, ["charge", "ship"], {UndoStatus.COMPENSATED: 1, UndoStatus.NONE: 1}
        )

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
        """A body error, the cancelled flag and a listed step's result round-trip too.

        A counted step's recorded result does not travel.
        """

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b"))
            raise Boom("body broke")

        executor = InMemoryExecutor(
            options(record_values=True), faults=[Fault.fail("b", undo=True)]
        )
        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        r = info.value.report.model_copy(update={"cancelled": True})
        assert [s.result for s in r.steps] == ["a", "b"]
        c = r.to_compact()
        assert c["e"] == ["Boom", "body broke"]
        assert c["x"] == 1
        [b] = c["st"]  # a went as planned: only counted, and its result not kept
        assert b[:2] == [2, "b"]
        assert b[12] == "b"  # its result
        assert c["u"] == {"c": 1}
        assert '"a"' not in json.dumps(c)
        back = SagaReport.from_compact(c)
        assert back == compact_view(r, ["b"], {UndoStatus.COMPENSATED: 1})
        assert back.cancelled
        assert back.steps[0].result == "b"

    def test_a_wrong_step_count_is_refused(self) -> None:
        """A report whose `n` is not its listed plus counted steps is refused, naming the counts."""
        data = {"v": 2, "s": "c", "t": 0, "n": 3, "st": [[1, "a", "f"]], "u": {"c": 1}}
        with pytest.raises(ValueError, match="3 steps, but 1 listed and 1 counted"):
            SagaReport.from_compact(data)
        assert SagaReport.from_compact({**data, "n": 2}).omitted == OmittedSteps(
            count=1, undos={UndoStatus.COMPENSATED: 1}
        )

    @pytest.mark.parametrize(
        "data",
        [
            {"v": 3, "s": "c", "t": 0, "n": 0},
            {"s": "c", "t": 0, "st": []},
            {"v": 2, "s": "c", "t": 0, "st": [[1, "a", "f"]]},  # no n
            {"v": 2, "s": "c", "t": 0, "n": 3, "st": [[1, "a", "f"]], "u": {"c": 1}},
            {"v": 2, "s": "c", "t": 0, "n": "2", "st": [[1, "a", "f"]], "u": {"c": 1}},
            {"v": 2, "s": "c", "t": 0, "n": 1, "u": {"?": 1}},
            {"v": 2, "s": "c", "t": 0, "n": 1, "u": {"c": "one"}},
            # Counts that add up to n, but one of them is not a count of steps.
            {"v": 2, "s": "c", "t": 0, "n": 1, "u": {"c": 2, "p": -1}},
            {"v": 2, "s": "c", "t": 0, "n": 0, "e": 9},
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
