"""The report a failed saga leaves in its workflow failure, without a server.

`sagakit.temporal._failure` writes it (`encode`, what `TemporalExecutor` puts
in the `SagaFailed` failure's details) and reads it back (`decode`, behind
`report_from_failure`). Each class is one rule; `TestFormat` pins the format.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from sagakit import (
    ErrorInfo,
    OmittedSteps,
    Resolution,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaOptions,
    SagaReport,
    SagaStatus,
    StepKind,
    StepReport,
    StepStatus,
    UndoReport,
    UndoStatus,
)
from sagakit.inmemory import Fault, InMemoryExecutor, VirtualClock
from sagakit.temporal import SAGA_FAILED_TYPE, report_from_failure
from sagakit.temporal._failure import SIZE_CAP, decode, encode

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
BASE = "wf-1/run-1"


class Boom(Exception):
    pass


def untimed(report: SagaReport) -> SagaReport:
    """`report` as a failure keeps it whole: no step times, the saga's to the millisecond."""
    steps = [
        s.model_copy(
            update={
                "started_at": None,
                "ended_at": None,
                "undo": None
                if s.undo is None
                else s.undo.model_copy(update={"started_at": None, "ended_at": None}),
            }
        )
        for s in report.steps
    ]
    return report.model_copy(update={"steps": steps, "omitted": OmittedSteps()})


def read_back(report: SagaReport) -> SagaReport:
    """`report` through a SagaFailed failure, as a client reads it."""
    failure = ApplicationError("saga failed", encode(report), type=SAGA_FAILED_TYPE)
    back = report_from_failure(failure, saga_id=report.saga_id)
    assert back is not None
    return back


def many(n: int, *, undo_error: str | None = None, name: str = "step") -> SagaReport:
    """`n` steps, the last failed, every undo run (LIFO), compensated unless `undo_error`."""
    undo_status = UndoStatus.COMPENSATED if undo_error is None else UndoStatus.FAILED
    steps = [
        StepReport(
            seq=i,
            name=f"{name}_{i}",
            status=StepStatus.FAILED if i == n else StepStatus.SUCCEEDED,
            error=ErrorInfo(type="Boom", message="sold out") if i == n else None,
            undo=UndoReport(
                name=f"undo_{i}",
                status=undo_status,
                order=n - i + 1,
                after=n,
                error=None if undo_error is None else ErrorInfo(type="Down", message=undo_error),
            ),
        )
        for i in range(1, n + 1)
    ]
    return SagaReport(
        saga_id="wf/run",
        status=SagaStatus.COMPENSATED if undo_error is None else SagaStatus.COMPENSATION_FAILED,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=3),
        error=ErrorInfo(type="Boom", message="sold out"),
        steps=steps,
    )


async def failed_run() -> SagaReport:
    """Book -> reserve (no undo) -> charge (undo fails twice) -> ship (fails after 2 tries)."""

    async def book() -> str:
        return "booked"

    async def unbook() -> None:
        return None

    async def reserve() -> None:
        return None

    async def charge() -> None:
        return None

    async def refund() -> None:
        return None

    async def ship() -> None:
        raise Boom("no truck")

    async def unship() -> None:
        return None

    async def saga(s: Saga) -> None:
        await s.step(book, unbook)
        await s.step(reserve, None)
        await s.step(charge, refund)
        await s.step(ship, unship)

    executor = InMemoryExecutor(
        SagaOptions(retry_policy=RetryPolicy(maximum_attempts=2), record_values=True),
        faults=[Fault.fail("charge", undo=True, attempts=[1, 2])],
    )
    with pytest.raises(SagaFailed) as info:
        await executor.run(saga, saga_id="order-1")
    return info.value.report


def parked_report() -> SagaReport:
    """Five steps: 1-2 undone, 3 parked after an operator's retry, 4 done by hand, 5 failed."""
    undone = [
        StepReport(
            seq=n,
            name=f"s{n}",
            status=StepStatus.SUCCEEDED,
            undo=UndoReport(name=f"s{n}", status=UndoStatus.COMPENSATED, order=6 - n, after=5),
        )
        for n in (1, 2)
    ]
    return SagaReport(
        saga_id=BASE,
        status=SagaStatus.PARKED,
        started_at=T0,
        error=ErrorInfo(type="Boom", message="no"),
        steps=[
            *undone,
            StepReport(
                seq=3,
                name="s3",
                status=StepStatus.SUCCEEDED,
                undo=UndoReport(
                    name="undo_s3",
                    status=UndoStatus.PARKED,
                    order=3,
                    after=5,
                    attempts=3,
                    error=ErrorInfo(type="Down", message="503"),
                    resolutions=[Resolution(action="retry", by="ops")],
                ),
            ),
            StepReport(
                seq=4,
                name="s4",
                status=StepStatus.SUCCEEDED,
                undo=UndoReport(
                    name="s4",
                    status=UndoStatus.DONE_BY_HAND,
                    order=2,
                    after=5,
                    resolutions=[Resolution(action="skip", reason="refunded by hand")],
                ),
            ),
            StepReport(
                seq=5,
                name="s5",
                status=StepStatus.FAILED,
                error=ErrorInfo(type="Boom", message="no"),
                undo=UndoReport(name="s5", status=UndoStatus.COMPENSATED, order=1, after=5),
            ),
        ],
    )


def one(step: StepReport) -> SagaReport:
    return SagaReport(saga_id="x", status=SagaStatus.COMPENSATED, started_at=T0, steps=[step])


def a_step(
    status: StepStatus = StepStatus.SUCCEEDED,
    undo: UndoStatus | None = UndoStatus.COMPENSATED,
    *,
    kind: StepKind = StepKind.COMPENSATABLE,
    resolutions: tuple[Resolution, ...] = (),
) -> StepReport:
    return StepReport(
        seq=1,
        name="s1",
        status=status,
        kind=kind,
        attempts=1,
        undo=None
        if undo is None
        else UndoReport(name="u1", status=undo, order=1, after=1, resolutions=list(resolutions)),
    )


RETRY = Resolution(action="retry", reason="provider is back", by="ops@example.com", at=T0)
SKIP = Resolution(action="skip", by="ana")

EVERY_KIND_OF_STEP = [
    pytest.param(a_step(undo=None), id="do-succeeded-no-undo"),
    pytest.param(a_step(undo=UndoStatus.PENDING), id="do-succeeded-undo-pending"),
    pytest.param(a_step(), id="do-succeeded-undo-compensated"),
    pytest.param(a_step(undo=None, kind=StepKind.RETRIABLE), id="retriable-succeeded"),
    pytest.param(a_step(StepStatus.FAILED), id="do-failed"),
    pytest.param(a_step(StepStatus.CANCELLED), id="do-cancelled"),
    pytest.param(a_step(StepStatus.RUNNING, UndoStatus.PENDING), id="do-running"),
    pytest.param(a_step(undo=UndoStatus.FAILED), id="undo-failed"),
    pytest.param(a_step(undo=UndoStatus.SKIPPED), id="undo-skipped"),
    pytest.param(a_step(undo=UndoStatus.RUNNING), id="undo-running"),
    pytest.param(a_step(undo=UndoStatus.PARKED), id="undo-parked"),
    pytest.param(a_step(resolutions=(RETRY,)), id="undo-resolved-retry"),
    pytest.param(a_step(undo=UndoStatus.DONE_BY_HAND, resolutions=(SKIP,)), id="done-by-hand"),
    pytest.param(a_step(StepStatus.FAILED, UndoStatus.NOT_NEEDED), id="undo-not-needed"),
    pytest.param(a_step(undo=None, kind=StepKind.PIVOT), id="pivot"),
]


async def resumed_run_with_subs() -> SagaReport:
    """Run 1: a, then sub-saga `hotels` (rooms nested) that succeeds; run 2, resumed: c fails."""

    async def ok(name: str) -> str:
        return name

    async def rooms(s: Saga) -> None:
        await s.step(ok, ok, "room", name="room")

    async def hotels(s: Saga) -> None:
        await s.step(ok, ok, "hotel", name="hotel")
        await s.sub(rooms, name="rooms")

    async def first(s: Saga) -> Any:
        await s.step(ok, ok, "a", name="a")
        await s.sub(hotels, name="hotels")
        return s.undo_plan()

    async def second(s: Saga) -> None:
        await s.sub(hotels, name="hotels")
        await s.step(ok, ok, "c", name="c")
        raise Boom("late")

    executor = InMemoryExecutor(clock=VirtualClock(T0))  # times to the millisecond
    plan = await executor.run(first, saga_id="wf/run-1")
    with pytest.raises(SagaFailed) as info:
        await executor.run(second, saga_id="wf/run-2", resume=plan)
    return info.value.report


class TestTheWholeStory:
    """A report read back from a failure has every step and undo the saga reported."""

    async def test_sub_sagas_and_carried_steps_read_back(self) -> None:
        """Which sub-saga each step belongs to, and the key a carried step kept, come back."""
        report = await resumed_run_with_subs()
        assert [(s.sub, s.carried) for s in report.steps] == [
            (None, "wf/run-1#1"),
            ("hotels", "wf/run-1#2"),
            ("hotels/rooms", "wf/run-1#3"),
            ("hotels", None),
            ("hotels/rooms", None),
            (None, None),
        ]
        back = read_back(report)
        assert back == untimed(report)
        assert "hotels: hotel" in back.timeline()
        assert "carried: wf/run-1#2" in back.timeline()

    async def test_a_failed_sub_sagas_undos_read_back_before_the_steps_after_it(self) -> None:
        """Without step times, the timeline still puts a caught sub-saga's undos in their place."""

        async def ok(_: str) -> None:
            return None

        async def fail(_: str) -> None:
            raise Boom("no")

        async def hotels(s: Saga) -> None:
            await s.step(ok, ok, "room", name="room")
            await s.step(fail, ok, "spa", name="spa")

        async def saga(s: Saga) -> None:
            with contextlib.suppress(SagaFailed):
                await s.sub(hotels)
            await s.step(ok, ok, "hostel", name="hostel")
            raise Boom("late")

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor().run(saga)
        back = read_back(info.value.report)
        assert [s.undo.after for s in back.steps if s.undo] == [2, 2, 3]
        lines = back.timeline(color=False).splitlines()[2:-1]  # no head, cause, "read back"
        rows = [line.split()[:3] for line in lines]
        assert rows == [
            ["✔", "do", "1."],
            ["✘", "do", "2."],
            ["↺", "undo", "2."],
            ["↺", "undo", "1."],
            ["✔", "do", "3."],
            ["↺", "undo", "3."],
        ]

    async def test_a_real_run_reads_back_whole_but_for_step_times(self) -> None:
        """Every step, undo, error, attempt count and recorded result; no step times."""
        report = await failed_run()
        back = read_back(report)
        assert report.ended_at is not None
        assert back.ended_at is not None
        assert abs(back.started_at - report.started_at) <= timedelta(milliseconds=1)
        assert abs(back.ended_at - report.ended_at) <= timedelta(milliseconds=1)
        same_times = {"started_at": report.started_at, "ended_at": report.ended_at}
        assert back.model_copy(update=same_times) == untimed(report)
        assert back.compensation_order == report.compensation_order == ["ship", "charge", "book"]
        assert [s.name for s in back.failed_undos] == ["charge"]
        assert back.step("book").result == "booked"
        assert back.step("reserve").undo is None
        assert back.omitted == OmittedSteps()

    async def test_a_three_step_failure_has_the_whole_unwind(self) -> None:
        """A saga failing at its third step reads back with compensation order [c, b, a]."""

        async def ok() -> None:
            return None

        async def fail() -> None:
            raise Boom("no")

        async def saga(s: Saga) -> None:
            await s.step(ok, ok, name="a")
            await s.step(ok, ok, name="b")
            await s.step(fail, ok, name="c")

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor().run(saga)
        back = read_back(info.value.report)
        assert back.compensation_order == ["c", "b", "a"]
        assert [back.step(n).status for n in "abc"] == [
            StepStatus.SUCCEEDED,
            StepStatus.SUCCEEDED,
            StepStatus.FAILED,
        ]

    @pytest.mark.parametrize("step", EVERY_KIND_OF_STEP)
    def test_every_kind_of_step_reads_back_as_it_was(self, step: StepReport) -> None:
        """Whatever became of a do and its undo, the step reads back equal."""
        back = decode(encode(one(step)))
        assert back.steps == [step]
        assert back.omitted == OmittedSteps()

    def test_resolutions_keep_who_why_and_when(self) -> None:
        """An operator's decision keeps its action, reason, who made it and when (ms)."""
        report = parked_report()
        back = decode(encode(report), saga_id=BASE)
        assert back == report.model_copy(update={"omitted": OmittedSteps()})
        s3 = back.step("s3").undo
        assert s3 is not None
        assert s3.resolutions == [Resolution(action="retry", by="ops")]
        at = T0 + timedelta(seconds=2, milliseconds=5)
        timed = report.model_copy(
            update={
                "steps": [
                    s.model_copy(
                        update={
                            "undo": s.undo.model_copy(  # type: ignore[union-attr]
                                update={
                                    "resolutions": [
                                        r.model_copy(update={"at": at})
                                        for r in s.undo.resolutions  # type: ignore[union-attr]
                                    ]
                                }
                            )
                        }
                    )
                    for s in report.steps
                ]
            }
        )
        s4 = decode(encode(timed)).step("s4").undo
        assert s4 is not None
        assert s4.resolutions == [Resolution(action="skip", reason="refunded by hand", at=at)]

    def test_body_error_cancelled_flag_and_values(self) -> None:
        """The saga's own error (not a step's), the cancelled flag and results read back."""
        report = many(3).model_copy(
            update={"error": ErrorInfo(type="Boom", message="body broke"), "cancelled": True}
        )
        report.steps[0].result = {"booking": 7}
        back = decode(encode(report, cause_tells=True), saga_id=report.saga_id)
        assert back == untimed(report)

    def test_the_failed_steps_error_comes_back_from_the_cause(self) -> None:
        """Left out where the cause holds it, the failed step's error is put back from it."""
        report = many(3)
        data = encode(report, cause_tells=True)
        assert "sold out" not in json.dumps(data)
        back = decode(
            data, saga_id=report.saga_id, error=ErrorInfo(type="Boom", message="sold out")
        )
        assert back == untimed(report)

    def test_long_messages_are_cut(self) -> None:
        """Error messages over 200 characters are cut to 200, ending in '...'."""
        report = many(2, undo_error="x" * 5000)
        back = decode(encode(report))
        message = back.steps[0].undo.error.message  # type: ignore[union-attr]
        assert len(message) == 200
        assert message.endswith("...")


class TestSizeCap:
    """Up to the cap the failure has every step; past it, it says what it left out."""

    @pytest.mark.parametrize("undo_error", [None, "e" * 200], ids=["compensated", "undos-failed"])
    def test_a_thousand_step_saga_reads_back_whole(self, undo_error: str | None) -> None:
        """1,000 steps read back, all of them, even when every undo failed with a long message."""
        report = many(1000, undo_error=undo_error, name="a_thirty_character_step_name")
        back = read_back(report)
        assert len(back.steps) == 1000
        assert back.omitted == OmittedSteps()
        assert back.compensation_order == [s.name for s in reversed(report.steps)]
        assert len(back.failed_undos) == (0 if undo_error is None else 1000)

    def test_past_the_cap_it_says_which_steps_it_left_out(self) -> None:
        """Cut, the report keeps the failed step first, and names and counts the others."""
        report = many(1000)
        data = encode(report, cap=10_000)
        assert len(json.dumps(data, separators=(",", ":"))) <= 10_000
        back = decode(data, saga_id=report.saga_id)
        omitted = back.omitted
        assert omitted is not None
        assert 0 < omitted.count < 1000
        assert omitted.count + len(back.steps) == 1000
        assert sorted(omitted.seqs + [s.seq for s in back.steps]) == list(range(1, 1001))
        assert omitted.undos == {UndoStatus.COMPENSATED: omitted.count}
        assert back.step("step_1000").status is StepStatus.FAILED  # what the saga failed at
        assert back.error == report.error
        for s in back.steps:
            assert s == untimed(report).steps[s.seq - 1]
        text = back.timeline(color=False)
        assert f"… {omitted.count} more steps not listed" in text
        assert "past the failure's size cap" in text
        assert f"{omitted.count} steps left out" in text

    def test_unusual_steps_are_kept_before_the_usual(self) -> None:
        """Past the cap, a step whose undo failed stays listed; steps that went as planned go."""
        report = many(1000)
        report.steps[10].undo.status = UndoStatus.FAILED  # type: ignore[union-attr]
        back = decode(encode(report, cap=10_000))
        assert back.omitted is not None
        assert 11 in [s.seq for s in back.steps]
        assert back.omitted.undos == {UndoStatus.COMPENSATED: back.omitted.count}

    def test_the_cap_leaves_room_in_temporals_limit(self) -> None:
        """The cap is a quarter of the 2 MiB Temporal allows a failure."""
        assert SIZE_CAP * 4 <= 2 * 1024 * 1024


class TestUnreadable:
    @pytest.mark.parametrize(
        "data",
        [
            {"v": 4, "s": "c", "t": 0, "n": 0},
            {"v": 2, "s": "c", "t": 0, "n": 1, "u": {"c": 1}},  # before every step was kept
            {"v": 3, "s": "c", "t": 0, "n": 1, "u": {"c": 2, "p": -1}},
            {"s": "c", "t": 0, "st": []},
            {"v": 3, "s": "c", "t": 0, "st": [[1, "a", "fc"]]},  # no n
            {"v": 3, "s": "c", "t": 0, "n": 1, "st": [[1, "a", "?c"]]},
            {"v": 3, "s": "c", "t": 0, "n": 1, "st": [[1, "a", "s?"]]},
            {"v": 3, "s": "c", "t": 0, "n": 1, "st": [[1, "a", "scz"]]},
            {"v": 3, "s": "c", "t": 0, "n": 1, "st": [[1, "a", ""]]},
            {"v": 3, "s": "c", "t": 0, "n": 2, "st": [[1, "a", "fc"]]},
            {
                "v": 3,
                "s": "c",
                "t": 0,
                "n": 2,
                "st": [[1, "a", "fc"]],
                "o": [[2, 3]],
                "u": {"c": 1},
            },
            {"v": 3, "s": "c", "t": 0, "n": 1, "e": 9, "st": [[1, "a", "fc"]]},
            {"v": 3, "s": "c", "t": "x", "n": 0},
            ["not", "a", "dict"],
        ],
    )
    def test_unreadable_input_raises_value_error(self, data: Any) -> None:
        """A wrong version or a malformed report raises ValueError, naming the problem."""
        with pytest.raises(ValueError, match="failure report"):
            decode(data)


class TestFormat:
    """Version 3, pinned: the rows are what the history holds."""

    def test_shape(self) -> None:
        report = parked_report().model_copy(update={"ended_at": T0 + timedelta(seconds=1)})
        data = encode(report, cause_tells=True)
        assert data == {
            "v": 3,
            "s": "w",
            "t": 1767323045678,
            "d": 1000,
            "n": 5,
            "e": 5,
            "st": [
                [1, "s1", "sc", 5],
                [2, "s2", "sc", 4],
                [
                    3,
                    "s3",
                    "sw",
                    3,
                    "undo_s3",
                    None,
                    None,
                    3,
                    ["Down", "503"],
                    None,
                    [["retry", None, "ops"]],
                ],
                [
                    4,
                    "s4",
                    "sh",
                    2,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    [["skip", "refunded by hand"]],
                ],
                [5, "s5", "fc", 1],
            ],
        }

    async def test_sub_sagas_and_carried_keys(self) -> None:
        """Sub-saga paths and carried runs listed once; rows point at them, trailing."""
        data = encode(await resumed_run_with_subs())
        assert data["sb"] == ["hotels", "hotels/rooms"]
        assert data["cr"] == ["wf/run-1"]
        assert [r[11:] for r in data["st"]] == [
            [None, [0, 1]],
            [0, [0, 2]],
            [1, [0, 3]],
            [0],
            [1],
            [],
        ]
        other = a_step().model_copy(update={"carried": "no-seq-here"})
        assert encode(one(other))["st"][0][11:] == [None, "no-seq-here"]
        assert decode(encode(one(other))).steps == [other]

    def test_kinds_and_no_undo(self) -> None:
        pivot = a_step(undo=None, kind=StepKind.PIVOT)
        assert encode(one(pivot))["st"] == [[1, "s1", "snp", None, None, 1]]
        retriable = a_step(undo=None, kind=StepKind.RETRIABLE)
        assert encode(one(retriable))["st"] == [[1, "s1", "snr", None, None, 1]]

    def test_past_the_cap(self) -> None:
        data = encode(many(100), cap=1_000)
        assert data["o"][-1][1] == 99
        assert sum(data["u"].values()) == 100 - len(data["st"])
