"""What is DBOS's own in `sagakit.dbos`; the rules every backend keeps are the contract suite's.

Each workflow here is registered on import and runs on the session's DBOS
(`tests/conftest.py`: a SQLite system database in a temporary directory).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID

import sagakit
from sagakit import (
    DoOutcome,
    RetryPolicy,
    Saga,
    SagaDeadlineExceeded,
    SagaFailed,
    SagaOptions,
    SagaStateError,
    SagaStatus,
    StepDefinitionError,
    UndoStatus,
)
from sagakit.dbos import PARKED_EVENT, RESOLVE_TOPIC, DBOSExecutor, resolve

pytestmark = [pytest.mark.dbos, pytest.mark.usefixtures("dbos_launched")]

LEDGER: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
"""(what ran, its idempotency key), by the run's label: what the steps did."""

ONCE = RetryPolicy(maximum_attempts=1)


class Boom(Exception):
    """A business error of a do: not retried (`ONCE`)."""


def book(label: str, what: str) -> str:
    LEDGER[label].append((f"do:{what}", sagakit.idempotency_key()))
    return f"booked {what}"


def cancel(label: str, what: str) -> None:
    LEDGER[label].append((f"undo:{what}", sagakit.idempotency_key()))


async def fail(label: str, what: str) -> None:
    LEDGER[label].append((f"do:{what}", sagakit.idempotency_key()))
    raise Boom(f"no {what} left")


def ran(label: str) -> list[str]:
    return [what for what, _ in LEDGER[label]]


async def car_hotel_then_flight_fails(saga: Saga, label: str) -> None:
    await saga.step(book, cancel, label, "car")
    await saga.step(book, cancel, label, "hotel")
    await saga.step(fail, None, label, "flight", retry_policy=ONCE)


@DBOS.workflow()
async def trip_workflow(label: str) -> None:
    await DBOSExecutor().run(car_hotel_then_flight_fails, label)


async def started(workflow: Any, *args: Any, workflow_id: str | None = None) -> Any:
    """The handle of `workflow(*args)`, started under `workflow_id` (default: a fresh one)."""
    with SetWorkflowID(workflow_id or f"test-{uuid.uuid4()}"):
        return await DBOS.start_workflow_async(workflow, *args)


class TestOutsideAWorkflow:
    async def test_run_is_refused_before_any_step(self) -> None:
        """Outside a DBOS workflow `run` raises SagaStateError, and no do runs."""
        label = str(uuid.uuid4())
        with pytest.raises(SagaStateError, match=r"outside a DBOS workflow: call it from a @DBOS"):
            await DBOSExecutor().run(car_hotel_then_flight_fails, label)
        assert ran(label) == []

    async def test_so_is_run_inside_a_step(self) -> None:
        """Inside a DBOS step (a do of another saga, say) it is refused the same way."""
        label = str(uuid.uuid4())
        handle = await started(step_running_a_saga, label)
        with pytest.raises(SagaStateError, match="inside one of its steps"):
            await handle.get_result()
        assert ran(label) == []


async def saga_in_a_step(label: str) -> None:
    await DBOSExecutor().run(car_hotel_then_flight_fails, label)


@DBOS.workflow()
async def step_running_a_saga(label: str) -> None:
    await DBOS.run_step_async({"name": "saga"}, saga_in_a_step, label)


class TestTheCallerCatchesSagaFailed:
    async def test_from_the_handle_with_its_cause_and_report(self) -> None:
        """`get_result()` raises SagaFailed: `__cause__` the do's error, the report compensated."""
        label = str(uuid.uuid4())
        handle = await started(trip_workflow, label)
        with pytest.raises(SagaFailed) as caught:
            await handle.get_result()
        assert type(caught.value.__cause__) is Boom
        assert str(caught.value.__cause__) == "no flight left"
        assert caught.value.report.status is SagaStatus.COMPENSATED
        assert ran(label) == ["do:car", "do:hotel", "do:flight", "undo:hotel", "undo:car"]

    async def test_read_back_from_the_system_database_too(self) -> None:
        """A handle retrieved later reads the pickled SagaFailed: cause and report kept."""
        handle = await started(trip_workflow, str(uuid.uuid4()))
        with pytest.raises(SagaFailed) as live:
            await handle.get_result()
        stored = await DBOS.retrieve_workflow_async(handle.get_workflow_id())
        with pytest.raises(SagaFailed) as read_back:
            await stored.get_result()
        assert read_back.value is not live.value
        assert repr(read_back.value.__cause__) == repr(live.value.__cause__)
        assert read_back.value.report == live.value.report


class TestEachDoAndUndoIsOneDBOSStep:
    async def test_named_by_seq_step_and_phase(self) -> None:
        """The workflow's steps are `seq.name` and `seq.name.undo`, in the order they ran."""
        handle = await started(trip_workflow, str(uuid.uuid4()))
        with pytest.raises(SagaFailed):
            await handle.get_result()
        steps = await DBOS.list_workflow_steps_async(handle.get_workflow_id())
        assert [s["function_name"] for s in steps] == [
            "1.book",
            "2.book",
            "3.fail",
            "2.book.undo",
            "1.book.undo",
        ]

    async def test_every_attempt_runs_inside_the_one_step(self) -> None:
        """A do that flakes twice is one DBOS step; the report counts its three attempts."""
        label = str(uuid.uuid4())
        handle = await started(flaky_workflow, label)
        assert await handle.get_result() == "booked on attempt 3"
        steps = await DBOS.list_workflow_steps_async(handle.get_workflow_id())
        assert [s["function_name"] for s in steps] == ["1.flaky_book"]


FLAKES: defaultdict[str, int] = defaultdict(int)


def flaky_book(label: str) -> str:
    FLAKES[label] += 1
    if FLAKES[label] < 3:
        raise ConnectionError(f"attempt {FLAKES[label]} lost the connection")
    return f"booked on attempt {FLAKES[label]}"


async def one_flaky_step(saga: Saga, label: str) -> str:
    fast = RetryPolicy(initial_interval=0.01)  # type: ignore[arg-type]
    result: str = await saga.step(flaky_book, None, label, retry_policy=fast)
    assert saga.report().steps[0].attempts == 3
    return result


@DBOS.workflow()
async def flaky_workflow(label: str) -> str:
    return await DBOSExecutor().run(one_flaky_step, label)


class TestWhatDBOSCannotCheckpoint:
    async def test_a_result_that_cannot_be_pickled_fails_the_step_and_is_undone(self) -> None:
        """The do ran, so its undo runs (outcome FAILED); the error names the checkpoint."""
        label = str(uuid.uuid4())
        handle = await started(lock_workflow, label)
        with pytest.raises(SagaFailed) as caught:
            await handle.get_result()
        cause = caught.value.__cause__
        assert isinstance(cause, StepDefinitionError)
        assert "DBOS could not checkpoint its result" in str(cause)
        assert ran(label) == ["do:lock", "undo:lock"]
        undo = caught.value.report.step("take_lock").undo
        assert undo is not None
        assert undo.status is UndoStatus.COMPENSATED


def take_lock(label: str) -> threading.Lock:
    LEDGER[label].append(("do:lock", sagakit.idempotency_key()))
    return threading.Lock()


def release_lock(label: str) -> None:
    assert sagakit.current_step().do_outcome is DoOutcome.FAILED
    LEDGER[label].append(("undo:lock", sagakit.idempotency_key()))


async def returns_a_lock(saga: Saga, label: str) -> None:
    await saga.step(take_lock, release_lock, label, retry_policy=ONCE)


@DBOS.workflow()
async def lock_workflow(label: str) -> None:
    await DBOSExecutor().run(returns_a_lock, label)


GATES: dict[str, asyncio.Event] = {}
"""Per run: set to let the do `wait_at_gate` end."""


async def wait_at_gate(label: str, what: str) -> str:
    LEDGER[label].append((f"do:{what}", sagakit.idempotency_key()))
    await GATES[label].wait()
    return f"booked {what}"


async def car_gate_hotel(saga: Saga, label: str) -> str:
    await saga.step(book, cancel, label, "car")
    await saga.step(wait_at_gate, cancel, label, "gate")
    return await saga.step(book, cancel, label, "hotel")


@DBOS.workflow()
async def gated_workflow(label: str) -> str:
    return await DBOSExecutor().run(car_gate_hotel, label)


class TestKeysAndRunningAgain:
    async def test_a_dbos_cancel_stops_at_the_next_step_and_undoes_nothing(self) -> None:
        """Cancelled in DBOS, the do in flight ends, no later step nor undo runs."""
        label = str(uuid.uuid4())
        await cancelled_at_the_gate(gated_workflow, label)
        assert ran(label) == ["do:car", "do:gate"]

    async def test_run_again_it_replays_finished_steps_with_the_same_keys(self) -> None:
        """Resumed, a finished do is read back; one cut off runs again, with the same key."""
        label = str(uuid.uuid4())
        workflow_id = f"trip-{label}"
        await cancelled_at_the_gate(gated_workflow, label, workflow_id)
        resumed = await DBOS.resume_workflow_async(workflow_id)
        assert await resumed.get_result() == "booked hotel"
        ledger = LEDGER[label]
        # The gate's do ended after the cancel: whether DBOS still wrote its outcome down
        # is timing inside DBOS (the suspected cause of one failure in four whole-directory
        # runs, not reproduced since). Unwritten, it runs again; either way with the same
        # key, and the car is read back, never run again.
        gates = ledger[1:-1]
        assert ledger[0] == ("do:car", f"{workflow_id}#1")
        assert gates in ([("do:gate", f"{workflow_id}#2")] * 2, [("do:gate", f"{workflow_id}#2")])
        assert ledger[-1] == ("do:hotel", f"{workflow_id}#3")

    async def test_a_second_saga_of_one_workflow_has_its_own_keys(self) -> None:
        """The n-th saga of a workflow is `workflow_id/n`, so its keys never meet the first's."""
        label = str(uuid.uuid4())
        workflow_id = f"two-{label}"
        handle = await started(two_sagas_workflow, label, workflow_id=workflow_id)
        await handle.get_result()
        assert [key for _, key in LEDGER[label]] == [f"{workflow_id}#1", f"{workflow_id}/2#1"]


async def one_booking(saga: Saga, label: str) -> None:
    await saga.step(book, cancel, label, "room")


@DBOS.workflow()
async def two_sagas_workflow(label: str) -> None:
    await DBOSExecutor().run(one_booking, label)
    await DBOSExecutor().run(one_booking, label)


async def cancelled_at_the_gate(workflow: Any, label: str, workflow_id: str | None = None) -> None:
    """Start `workflow`, cancel it in DBOS while the gate's do runs, and wait for CANCELLED."""
    GATES[label] = asyncio.Event()
    handle = await started(workflow, label, workflow_id=workflow_id)
    while "do:gate" not in ran(label):  # noqa: ASYNC110 - a ledger, not an event
        await asyncio.sleep(0.01)
    await DBOS.cancel_workflow_async(handle.get_workflow_id())
    GATES[label].set()
    assert await wait_for_status(handle, "CANCELLED") == "CANCELLED"


async def wait_for_status(handle: Any, status: str) -> str:
    async with asyncio.timeout(30):
        while (now := (await handle.get_status()).status) != status:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return str(now)


async def release_when_approved(label: str, what: str) -> None:
    """An inline undo: workflow code that waits for an approver's DBOS message."""
    approval = await DBOS.recv_async("approve", timeout_seconds=30)
    LEDGER[label].append((f"undo:{what} approved by {approval}", sagakit.idempotency_key()))


async def held_seat_then_payment_fails(saga: Saga, label: str) -> None:
    await saga.step(book, release_when_approved, label, "seat", inline=True)
    await saga.step(fail, None, label, "payment", retry_policy=ONCE)


@DBOS.workflow()
async def approval_workflow(label: str) -> None:
    await DBOSExecutor().run(held_seat_then_payment_fails, label)


class TestInline:
    async def test_an_inline_undo_waits_for_a_message(self) -> None:
        """Said inline, the async undo runs in the workflow body, where `DBOS.recv` works."""
        label = str(uuid.uuid4())
        handle = await started(approval_workflow, label)
        await DBOS.send_async(handle.get_workflow_id(), "ana", "approve")
        with pytest.raises(SagaFailed) as caught:
            await handle.get_result()
        assert ran(label) == ["do:seat", "do:payment", "undo:seat approved by ana"]
        assert caught.value.report.status is SagaStatus.COMPENSATED
        steps = await DBOS.list_workflow_steps_async(handle.get_workflow_id())
        # The sync do is a step; the async undo said inline is none, its recv is.
        assert [s["function_name"] for s in steps] == [
            "1.book",
            "2.fail",
            "DBOS.recv",
            "DBOS.sleep",
        ]

    async def test_a_step_with_nothing_to_run_inline_is_refused(self) -> None:
        """Said inline with only sync functions (DBOS steps, as they cannot wait): refused first."""
        label = str(uuid.uuid4())
        handle = await started(sync_inline_workflow, label)
        with pytest.raises(SagaFailed) as caught:
            await handle.get_result()
        assert isinstance(caught.value.__cause__, StepDefinitionError)
        assert "nothing would run inline" in str(caught.value.__cause__)
        assert ran(label) == []


async def sync_only_said_inline(saga: Saga, label: str) -> None:
    await saga.step(book, None, label, "car", inline=True)


@DBOS.workflow()
async def sync_inline_workflow(label: str) -> None:
    await DBOSExecutor().run(sync_only_said_inline, label)


class Aborted(Exception):
    """An operator asked the saga to stop and compensate."""


async def abort_requested(label: str) -> None:
    """Inline, between steps: raise if an operator sent `abort` (wait for none)."""
    reason = await DBOS.recv_async("abort", timeout_seconds=0)
    if reason is not None:
        raise Aborted(reason)


async def checks_for_abort_between_steps(saga: Saga, label: str) -> None:
    await saga.step(book, cancel, label, "car")
    await saga.step(wait_at_gate, cancel, label, "gate")
    await saga.step(abort_requested, None, label, inline=True, retry_policy=ONCE)
    await saga.step(book, cancel, label, "hotel")


@DBOS.workflow()
async def abortable_workflow(label: str) -> None:
    await DBOSExecutor().run(checks_for_abort_between_steps, label)


class TestCompensatingOnDemand:
    async def test_a_message_the_saga_checks_for_unwinds_it(self) -> None:
        """Instead of a DBOS cancel: an `abort` message, read between steps, compensates."""
        label = str(uuid.uuid4())
        GATES[label] = asyncio.Event()
        handle = await started(abortable_workflow, label)
        await DBOS.send_async(handle.get_workflow_id(), "the customer called", "abort")
        GATES[label].set()
        with pytest.raises(SagaFailed) as caught:
            await handle.get_result()
        assert isinstance(caught.value.__cause__, Aborted)
        assert ran(label) == ["do:car", "do:gate", "undo:gate", "undo:car"]


async def unbook_refused(label: str, what: str) -> None:
    """An undo that fails each time: it parks, and parks again when retried."""
    LEDGER[label].append((f"undo:{what}", sagakit.idempotency_key()))
    raise Boom(f"cannot cancel {what}")


async def car_stuck_then_flight_fails(saga: Saga, label: str) -> None:
    await saga.step(book, unbook_refused, label, "car", retry_policy=ONCE)
    await saga.step(fail, None, label, "flight", retry_policy=ONCE)


@DBOS.workflow()
async def stuck_workflow(label: str) -> None:
    await DBOSExecutor(SagaOptions(on_undo_failure="park")).run(car_stuck_then_flight_fails, label)


async def listing(workflow_id: str, after: int = 0) -> dict[str, Any]:
    """The saga's `sagakit.parked` event, once it lists an undo in a round past `after`."""
    async with asyncio.timeout(30):
        while True:
            listed = await DBOS.get_event_async(workflow_id, PARKED_EVENT, timeout_seconds=0)
            if listed and listed["parked"] and listed["round"] > after:
                return dict(listed)
            await asyncio.sleep(0.02)


class TestParkedUndos:
    async def test_a_decision_sent_before_the_undo_parked_again_is_refused(self) -> None:
        """A message read from an earlier listing never lands on the undo parked since."""
        label = str(uuid.uuid4())
        handle = await started(stuck_workflow, label)
        workflow_id = handle.get_workflow_id()
        first = await listing(workflow_id)
        await resolve(workflow_id, 1, "retry", by="ana")  # it fails and parks again
        again = await listing(workflow_id, after=first["round"])
        assert [p["seq"] for p in again["parked"]] == [1]
        stale = {"id": "stale", "round": first["round"], "seq": 1, "action": "skip"}
        await DBOS.send_async(workflow_id, {**stale, "reason": None, "by": "bo"}, RESOLVE_TOPIC)
        answer = await DBOS.get_event_async(workflow_id, f"{RESOLVE_TOPIC}.stale", 30)
        assert "sent before the undo parked again" in answer
        await resolve(workflow_id, 1, "skip", reason="cancelled by phone", by="ana")
        with pytest.raises(SagaFailed) as caught:
            await handle.get_result()
        assert caught.value.report.status is SagaStatus.COMPENSATED
        undo = caught.value.report.step("book").undo
        assert undo is not None
        assert [(r.action, r.by) for r in undo.resolutions] == [("retry", "ana"), ("skip", "ana")]
        assert ran(label) == ["do:car", "do:flight", "undo:car", "undo:car"]

    async def test_a_decision_the_saga_ended_on_is_taken_however_late_it_is_read(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The saga answers, then ends, between two looks for the answer: `resolve` returns."""
        label = str(uuid.uuid4())
        handle = await started(stuck_workflow, label)
        workflow_id = handle.get_workflow_id()
        await listing(workflow_id)
        read = DBOS.get_event_async
        late: list[str] = []

        async def one_look_too_early(wid: str, key: str, timeout_seconds: float = 60) -> Any:
            if key.startswith(f"{RESOLVE_TOPIC}.") and not late:
                late.append(key)  # this look times out; meanwhile the saga answers, and ends
                with pytest.raises(SagaFailed):
                    await handle.get_result()
                return None
            return await read(wid, key, timeout_seconds)

        monkeypatch.setattr(DBOS, "get_event_async", one_look_too_early)
        await resolve(workflow_id, 1, "skip", reason="cancelled by phone", by="ana")
        assert late
        status = await handle.get_status()
        assert status.status == "ERROR"  # ended: SagaFailed, compensated by hand


class TestWithoutDBOS:
    def test_importing_sagakit_dbos_names_the_extra_to_install(self) -> None:
        """`import sagakit.dbos` without the dbos package: ImportError with the pip command."""
        code = (
            "import sys\n"
            "sys.modules['dbos'] = None  # as if it were not installed\n"
            "try:\n"
            "    import sagakit.dbos\n"
            "except ImportError as e:\n"
            "    print(e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert "pip install 'sagakit[dbos]'" in out

    def test_importing_sagakit_loads_no_dbos(self) -> None:
        """`import sagakit` alone does not import dbos (only `sagakit.dbos` does)."""
        code = "import sys, sagakit, sagakit.inmemory\nprint('dbos' in sys.modules)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "False"


def test_options_reach_the_saga() -> None:
    """`DBOSExecutor(options=...)` keeps the saga-wide options it was given."""
    opts = SagaOptions(parallel_compensation=True)
    assert DBOSExecutor(options=opts).options is opts


@DBOS.workflow()
async def gated_workflow_with_deadline(label: str) -> str:
    options = SagaOptions(deadline=timedelta(seconds=1))
    return await DBOSExecutor(options=options).run(car_gate_hotel, label)


class TestDeadline:
    async def test_one_that_passed_while_stopped_lands_on_the_first_step_that_runs(self) -> None:
        """Resumed past its deadline, the saga reads its finished steps back, then unwinds."""
        label = str(uuid.uuid4())
        workflow_id = f"late-{label}"
        await cancelled_at_the_gate(gated_workflow_with_deadline, label, workflow_id)
        GATES[label] = asyncio.Event()  # the gate hangs again
        await asyncio.sleep(1.2)  # the deadline passes while the workflow is stopped
        resumed = await DBOS.resume_workflow_async(workflow_id)
        with pytest.raises(SagaFailed) as caught:
            await resumed.get_result()
        assert isinstance(caught.value.__cause__, SagaDeadlineExceeded)
        assert ran(label) == ["do:car", "do:gate", "do:gate", "undo:gate", "undo:car"]
        assert caught.value.report.status is SagaStatus.COMPENSATED


def test_sagakit_dbos_all_is_pinned() -> None:
    """sagakit.dbos.__all__ is exactly these names (ruff's order); changing it is an API change."""
    import sagakit.dbos

    assert sagakit.dbos.__all__ == [
        "PARKED_EVENT",
        "RESOLVE_TOPIC",
        "DBOSExecutor",
        "parked",
        "resolve",
    ]
