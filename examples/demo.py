"""The main job: the flagship on a real Temporal server: shipped, compensated, parked and resumed.

    python -m examples                    # starts a dev server from the installed `temporal`
    python -m examples --keep-server      # ... and keeps it (and its Web UI) up until Ctrl-C
    python -m examples --backend inmemory # the same saga, no server
    python -m examples --backend dbos     # the same saga on DBOS Transact: SQLite, no server
    python -m examples --address HOST:PORT --namespace NS [--tls] [--api-key KEY]

It runs the order saga three times: an order that ships; an order to an
address no carrier serves, whose fulfilment fails and which is unwound (the
payment provider also loses the first refund reply, so the refund is retried
and must still refund exactly once); and the same order while the provider's
refunds are down, so the refund fails for good and parks, until the demo (the
operator) fixes the provider and resolves it with "retry". On Temporal a line
shows each do and undo attempt as the worker ends it. After each run it prints
the saga's timeline and the fake services' SQLite state. A run is one
`Scenario` in `SCENARIOS`, with the check that says whether it ended as designed.

Every failure is one line on stderr; the exit status is 0 when every run ended
as designed, 1 when one did not or the job could not run, 2 for a bad command
line, 130 when stopped by Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from examples._support.client import Unreachable, connect, quiet_runtime
from examples._support.devserver import DevServerError, dev_server
from examples._support.glitches import Glitch, Glitches
from examples._support.progress import StepProgress
from examples._support.running import (
    Operate,
    Outcome,
    ReportUnavailable,
    Resolve,
    SagaCase,
    find_binary,
    operate_on_temporal,
    outcome_of,
    run_in_memory,
)
from examples.order_fulfilment.activities import ACTIVITIES, SHOP
from examples.order_fulfilment.models import Address, LineItem, Order, Receipt
from examples.order_fulfilment.saga import OPTIONS, place_order
from examples.order_fulfilment.services import Shop
from examples.order_fulfilment.workflow import PlaceOrder
from sagakit import (
    ErrorInfo,
    ParkedUndo,
    Phase,
    SagaReport,
    SagaStatus,
    StepContext,
    StepStatus,
)
from sagakit.inmemory import VirtualClock
from sagakit.temporal import SagakitPlugin, saga_search_attributes

CASE = SagaCase(saga=place_order, options=OPTIONS, workflow=PlaceOrder, activities=ACTIVITIES)

PROG = "python -m examples"

DEFAULT_TIMEOUT = 30.0
"""Seconds the job waits for the server, by default: to start, to connect, to answer a query."""

RunOrder = Callable[[Order, Operate | None], Awaitable[Outcome[Receipt]]]
T = TypeVar("T")


@dataclass(frozen=True)
class Scenario:
    """One run of the demo: the order it places, and what "as designed" means for it."""

    title: str
    order: Order
    check: Callable[[Outcome[Receipt], Shop, Order], list[str]]
    """What went other than designed (an empty list: all as expected)."""
    designed: str
    """What happened when all went as designed, for the closing line."""
    outage: str | None = None
    """A service operation down for good during the run (`Shop.outages`): its undo
    parks, and the demo, as the operator, fixes the service and says "retry"."""


def _order(order_id: str, country: str, city: str) -> Order:
    return Order(
        order_id=order_id,
        customer="ada@example.com",
        items=[
            LineItem(sku="BOOK", quantity=2, unit_price_cents=2500),
            LineItem(sku="MUG", quantity=1, unit_price_cents=1200),
        ],
        ship_to=Address(name="Ada Lovelace", street="12 St James's Sq", city=city, country=country),
    )


def _refunds(shop: Shop, order: Order) -> list[int]:
    """The number of refunds of each charge of `order`."""
    return [c["refunds"] for c in shop.charges() if c["order_id"] == order.order_id]


def _ships(outcome: Outcome[Receipt], shop: Shop, order: Order) -> list[str]:
    problems = []
    if outcome.failed:
        problems.append(f"expected success, got {outcome.error.type}: {outcome.error.message}")
    if _refunds(shop, order) != [0]:
        problems.append(f"expected one charge, not refunded; got refunds {_refunds(shop, order)}")
    return problems


def _compensates(outcome: Outcome[Receipt], shop: Shop, order: Order) -> list[str]:
    problems = []
    report = outcome.report
    if not outcome.failed or outcome.error.type != "Undeliverable":
        problems.append(f"expected the saga to fail with Undeliverable; got {report.status}")
    if report.status is not SagaStatus.COMPENSATED:
        problems.append(f"expected every undo to succeed; status {report.status}")
    if _refunds(shop, order) != [1]:
        problems.append(f"expected one charge refunded once; got refunds {_refunds(shop, order)}")
    if any(s.status is StepStatus.RUNNING for s in report.steps):
        problems.append("a step was still running")
    return problems


def _parks_then_compensates(outcome: Outcome[Receipt], shop: Shop, order: Order) -> list[str]:
    problems = _compensates(outcome, shop, order)
    undo = outcome.report.step("charge_payment").undo
    actions = [r.action for r in undo.resolutions] if undo is not None else []
    if actions != ["retry"]:
        problems.append(f"expected the parked refund to be retried once; decisions {actions}")
    return problems


SCENARIOS = (
    Scenario(
        "an order that ships",
        _order("o-1001", "GB", "London"),
        _ships,
        "the first order shipped",
    ),
    # The failure is in the order's data: no carrier ships to Antarctica.
    Scenario(
        "an order to Antarctica: fulfilment fails, the saga compensates",
        _order("o-1002", "AQ", "McMurdo Station"),
        _compensates,
        "the second failed at fulfilment and was compensated, its charge refunded exactly once",
    ),
    # The refund cannot succeed while the payment provider is down: it parks, and a
    # person (here the demo) fixes the provider and retries it.
    Scenario(
        "Antarctica again, while the payment provider's refunds are down: the refund parks",
        _order("o-1003", "AQ", "McMurdo Station"),
        _parks_then_compensates,
        "the third parked its refund until the provider was fixed, then retried and refunded it",
        outage="refund",
    ),
)
"""The runs, in order; each places its order in the same shop."""


class JobFailed(Exception):
    """The job failed; `str()` is the one line it prints (exit status 1).

    `keep`: the temp directory holds what shows why (the SQLite file of runs
    that did not end as designed), so it is kept, and its path printed.
    """

    def __init__(self, message: str, *, keep: bool = False) -> None:
        super().__init__(message)
        self.keep = keep


def _one_line(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _undo_label(step: str, undo: str) -> str:
    """An undo's name as the timeline shows it: the step's, and the undo's if it differs."""
    return step if undo == step else f"{step} ({undo})"


def _describe(error: BaseException) -> str:
    """`Type: message`, as a report's `ErrorInfo` names it."""
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    if isinstance(error, ApplicationError):
        return f"{error.type or type(error).__name__}: {error.message}"
    return f"{type(error).__name__}: {error}"


class Console:
    """Progress and results on stdout, flushed per line so a pipe (CI) sees them live."""

    def __init__(self, *, color: bool) -> None:
        self.color = color
        self._t0 = time.monotonic()

    def say(self, text: str = "") -> None:
        """Print a line."""
        print(text, flush=True)

    def progress(self, text: str) -> None:
        """A progress line, stamped with the seconds since start."""
        stamp = f"[{time.monotonic() - self._t0:6.2f}s]"
        self.say(f"{self.dim(stamp)} {text}")

    def attempt(
        self, step: StepContext, fn: str, attempt: int, error: BaseException | None
    ) -> None:
        """A live line for a do or undo attempt that just ended, named as in the timeline."""
        if step.phase is Phase.DO:
            label, mark, done = step.name, "✔", "succeeded"
        else:
            label, mark, done = _undo_label(step.name, fn), "↺", "compensated"
        if error is None:
            text = done if attempt == 1 else f"{done} on attempt {attempt}"
        else:
            mark, text = "✘", f"attempt {attempt} failed: {_one_line(_describe(error), 100)}"
        self.progress(f"  {mark} {step.phase.value:<4} {step.seq:>3}. {label}  {text}")

    def dim(self, text: str) -> str:
        """`text` dimmed, when colouring."""
        return f"\033[2m{text}\033[0m" if self.color else text

    def bold(self, text: str) -> str:
        """`text` in bold, when colouring."""
        return f"\033[1m{text}\033[0m" if self.color else text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the usage is in --help.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600: {text!r}")
    return value


_EPILOG = """\
exit status:
  0    every run ended as designed
  1    a run did not, or the job could not run (one line on stderr says why)
  2    a bad command line
  130  stopped by Ctrl-C (or SIGTERM) before the end
"""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(
        prog=PROG,
        description="Run the order-fulfilment saga three times (success, compensation, a "
        "parked refund an operator retries) and print each run's timeline and the services' "
        "SQLite state.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backend",
        choices=("temporal", "inmemory", "dbos"),
        default="temporal",
        help="temporal (default): a real server; inmemory: InMemoryExecutor, no server; "
        "dbos: DBOSExecutor on DBOS Transact, durable on a SQLite file, no server "
        "(pip install 'sagakit[dbos]')",
    )
    p.add_argument(
        "--keep-server",
        action="store_true",
        help="keep the dev server, its Web UI and the worker up after the runs, until Ctrl-C",
    )
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="use this Temporal cluster instead of starting a dev server (the worker runs here)",
    )
    p.add_argument("--namespace", default="default", help="namespace (default: default)")
    p.add_argument("--tls", action="store_true", help="connect to --address with TLS")
    p.add_argument(
        "--api-key", metavar="KEY", help="API key for --address (Temporal Cloud); implies TLS"
    )
    p.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help="how long to wait for the server: to start, to connect (retrying while it "
        "is unreachable or still starting) and to answer each run's report query "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--db",
        metavar="PATH",
        type=Path,
        help="new SQLite file for the fake services (default: one in a temp directory, "
        "removed at the end)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="keep the worker's log of failed activity attempts (tracebacks and all), the "
        "Temporal core's warnings, and the traceback of an unexpected error",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output: auto (default) when stdout is a TTY and NO_COLOR is unset",
    )
    args = p.parse_args(argv)
    if args.backend != "temporal" and (args.address or args.keep_server):
        p.error("--address and --keep-server need --backend temporal")
    if args.address and args.keep_server:
        p.error(
            "--keep-server keeps the dev server this command starts; with --address there is none"
        )
    if args.db is not None:
        if args.db.exists():
            p.error(f"--db {args.db} exists: give a new file (each run starts from a fresh shop)")
        if not args.db.parent.is_dir():
            p.error(f"--db {args.db}: there is no directory {args.db.parent}")
    if (args.tls or args.api_key) and not args.address:
        p.error("--tls and --api-key apply to --address")
    return args


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


@dataclass
class Server:
    """What the runs talk to."""

    client: Client
    address: str
    ui_url: str | None = None
    ours: bool = False
    """Started by this job: it has the `SagaStatus` search attribute registered."""


@asynccontextmanager
async def _dev_server(
    console: Console, *, ui: bool, log: Path, deadline: float, runtime: Runtime
) -> AsyncIterator[Server]:
    """A dev server from the installed `temporal` binary, stopped (process and all) on exit."""
    console.progress(f"starting a Temporal dev server ({find_binary('temporal')}; log {log}) ...")
    t0 = time.monotonic()
    try:
        async with dev_server(log=log, ui=ui, startup_timeout=deadline) as server:
            try:
                client = await connect(
                    server.address,
                    namespace="default",
                    runtime=runtime,
                    deadline=deadline,
                    on_retry=lambda why: console.progress(
                        f"  not ready yet: {why}; retrying for up to {deadline:g}s"
                    ),
                    data_converter=pydantic_data_converter,
                )
                console.progress(
                    f"dev server up at {server.address} (pid {server.pid}) "
                    f"in {time.monotonic() - t0:.1f}s"
                )
                yield Server(client, server.address, server.ui_url, ours=True)
            finally:
                console.progress("stopping the dev server ...")
    finally:
        console.progress("dev server stopped")


async def _cluster(console: Console, args: argparse.Namespace, runtime: Runtime) -> Server:
    """A client of an existing cluster, whose namespace exists."""
    console.progress(f"connecting to {args.address} (namespace {args.namespace}) ...")
    client = await connect(
        args.address,
        namespace=args.namespace,
        runtime=runtime,
        deadline=args.timeout,
        on_retry=lambda why: console.progress(
            f"  not reachable yet: {why}; retrying for up to {args.timeout:g}s"
        ),
        api_key=args.api_key,
        tls=True if args.tls else None,
        data_converter=pydantic_data_converter,
    )
    console.progress("connected")
    return Server(client, args.address)


@asynccontextmanager
async def _running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """The worker, run as a task (see `_unless_stopped`); shut down and awaited on exit."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        if not task.done():
            await worker.shutdown()
        with contextlib.suppress(Exception):  # its failure, if any, was reported
            await task


async def _unless_stopped(worker: asyncio.Task[None], job: Awaitable[T]) -> T:
    """`job`'s result; or, if the worker stops first (a fatal error of its own), `JobFailed`."""
    task = asyncio.ensure_future(job)
    try:
        await asyncio.wait({task, worker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled():
        return task.result()
    error = None if worker.cancelled() else worker.exception()
    reason = _one_line(_describe(error), 300) if error is not None else "it stopped"
    raise JobFailed(f"the worker stopped: {reason}")


@asynccontextmanager
async def _on_dbos(console: Console, workdir: Path, *, verbose: bool) -> AsyncIterator[RunOrder]:
    """DBOS launched on a SQLite system database in `workdir`; each order one workflow."""
    try:
        import sagakit.dbos  # noqa: F401 - its ImportError says what to install
    except ImportError as e:
        raise JobFailed(str(e)) from None
    # Imported only here: importing the workflow registers it with DBOS.
    from examples._support.on_dbos import launched, run_on_dbos
    from examples.order_fulfilment.dbos_workflow import REPORTS, place_order_workflow

    system_db = workdir / "dbos.sqlite3"
    console.progress(
        f"backend: DBOS Transact (DBOSExecutor, no server; system database {system_db})"
    )

    async def on_dbos(order: Order, operate: Operate | None) -> Outcome[Receipt]:
        workflow_id = f"order-{order.order_id}-{uuid.uuid4().hex[:8]}"
        console.progress(f"started workflow {workflow_id}")
        return await run_on_dbos(
            place_order_workflow, order, workflow_id=workflow_id, reports=REPORTS, operate=operate
        )

    async with launched(system_db, verbose=verbose):
        console.progress("DBOS launched")
        yield on_dbos
    console.progress("DBOS shut down")


_RESOLVE_HINTS = {
    "temporal": "sagakit resolve WORKFLOW_ID SEQ retry does the same from a shell",
    "inmemory": "InMemoryExecutor.resolve does the same in a test",
    "dbos": 'await sagakit.dbos.resolve(WORKFLOW_ID, SEQ, "retry") does the same in code',
}
"""How the operator's decision is given on each backend, outside the demo."""


def _operator(shop: Shop, console: Console, backend: str) -> Operate:
    """The demo's on-call person: reads what parked, fixes the provider, says "retry"."""

    async def operate(parked: list[ParkedUndo], resolve: Resolve) -> None:
        for p in parked:
            error = f"{p.error.type}: {p.error.message}" if p.error else "?"
            console.progress(f"  ‖ parked: undo {p.seq}. {p.name} ({p.undo}) waits: {error}")
        console.progress(
            "  operator: the payment provider is fixed; resolving with retry "
            f"({_RESOLVE_HINTS[backend]})"
        )
        shop.outages.clear()
        for p in parked:
            await resolve(p.seq, "retry", "the payment provider is fixed")

    return operate


async def _run_on_temporal(
    server: Server,
    task_queue: str,
    order: Order,
    console: Console,
    *,
    deadline: float,
    operate: Operate | None = None,
) -> Outcome[Receipt]:
    workflow_id = f"order-{order.order_id}-{uuid.uuid4().hex[:8]}"
    handle = await server.client.start_workflow(
        PlaceOrder.run,
        order,
        id=workflow_id,
        task_queue=task_queue,
        # Our dev server has the SagaStatus search attribute; a cluster may not.
        search_attributes=saga_search_attributes() if server.ours else None,
    )
    where = f"workflow {workflow_id}"
    if server.ui_url:
        where += f"  {server.ui_url}/namespaces/{server.client.namespace}/workflows/{workflow_id}"
    console.progress(f"started {where}")
    if operate is not None:
        await operate_on_temporal(handle, operate)
    return await outcome_of(handle, report_deadline=deadline)


def _fit_errors(report: SagaReport, width: int) -> tuple[SagaReport, list[str]]:
    """`report` with each do's and undo's error cut so its timeline row fits `width` columns.

    Also returns the errors that were cut, whole (but for the saga's own error,
    which the timeline's `cause:` line shows whole). A row is at least wide
    enough for 40 characters of error.
    """
    cut: list[str] = []

    def fit(where: str, error: ErrorInfo, room: int) -> ErrorInfo:
        message = _one_line(error.message, max(room - len(error.type) - 2, 10))
        if message != error.message and error != report.error:
            cut.append(f"{where}: {error.type}: {error.message}")
        return error.model_copy(update={"message": message})

    def with_errors(room: int | None) -> SagaReport:
        steps = []
        for s in report.steps:
            update: dict[str, object] = {}
            if s.error is not None:
                update["error"] = (
                    None if room is None else fit(f"do {s.seq}. {s.name}", s.error, room)
                )
            if s.undo is not None and s.undo.error is not None:
                label = f"undo {s.seq}. {_undo_label(s.name, s.undo.name)}"
                error = None if room is None else fit(label, s.undo.error, room)
                update["undo"] = s.undo.model_copy(update={"error": error})
            steps.append(s.model_copy(update=update) if update else s)
        cause = report.error if room is not None else None  # bare: no cause line either
        return report.model_copy(update={"steps": steps, "error": cause})

    rows = with_errors(None).timeline(color=False).splitlines()[1:]  # [0]: the saga's head
    room = max(40, width - max(map(len, rows), default=0) - 2)
    return with_errors(room), cut


def _money(cents: int) -> str:
    return f"£{cents / 100:,.2f}"


def _print_state(shop: Shop, console: Console) -> None:
    console.say(console.bold(f"  SQLite state ({shop.path})"))
    for c in shop.charges():
        refunded = (
            f"refunded {_money(c['refunded_cents'])} in {c['refunds']} refund(s)"
            if c["refunds"]
            else "not refunded"
        )
        console.say(
            f"    charge   #{c['id']}  {c['order_id']}  {_money(c['amount_cents'])}  {refunded}"
        )
    for r in shop.refunds():
        console.say(
            f"    refund   #{r['id']}  of charge #{r['charge_id']}  {_money(r['amount_cents'])}"
        )
    for s in shop.shipments():
        console.say(f"    shipment #{s['id']}  {s['order_id']}  to {s['country']}  {s['status']}")
    stock = ", ".join(f"{sku} {shop.available(sku)}" for sku in ("BOOK", "MUG"))
    console.say(f"    on shelf {stock}")
    lost = shop.glitches.fired("refund")
    if lost:
        console.say(
            f"    (the payment provider lost {lost} refund reply: the refund was retried, "
            f"and its idempotency key made the retry a no-op)"
        )


async def _demo(
    args: argparse.Namespace, console: Console, workdir: Path, runtime: Runtime | None
) -> int:
    db = args.db or workdir / "shop.sqlite3"
    try:
        # The provider loses the first refund reply: the undo is retried after it took effect.
        shop = Shop(db, glitches=Glitches(Glitch("refund", times=1, after_effect=True)))
    except sqlite3.Error as e:
        raise JobFailed(f"cannot create the SQLite file {db}: {e}") from None
    shop.add_stock("BOOK", 10)
    shop.add_stock("MUG", 5)
    console.progress(f"fake services' state: {db}")

    async with AsyncExitStack() as stack:
        stack.enter_context(SHOP.provide(shop))
        server: Server | None = None
        if args.backend == "inmemory":
            console.progress("backend: in memory (InMemoryExecutor, no server)")
            clock = VirtualClock(follow_real_time=True)

            async def in_memory(order: Order, operate: Operate | None) -> Outcome[Receipt]:
                return await run_in_memory(CASE, order, clock=clock, operate=operate)

            run: RunOrder = in_memory

        elif args.backend == "dbos":
            run = await stack.enter_async_context(_on_dbos(console, workdir, verbose=args.verbose))

        else:
            assert runtime is not None
            if args.address:
                server = await _cluster(console, args, runtime)
            else:
                log = workdir / "temporal.log"
                server = await stack.enter_async_context(
                    _dev_server(
                        console,
                        ui=args.keep_server,
                        log=log,
                        deadline=args.timeout,
                        runtime=runtime,
                    )
                )
            task_queue = f"sagakit-examples-{uuid.uuid4().hex[:8]}"
            worker = Worker(
                server.client,
                task_queue=task_queue,
                workflows=[PlaceOrder],
                activities=list(ACTIVITIES),
                # After SagakitPlugin: StepProgress reads the step that sagakit's interceptor sets.
                plugins=[SagakitPlugin(), StepProgress(console.attempt)],
            )
            worker_run = await stack.enter_async_context(_running(worker))
            console.progress(f"worker polling task queue {task_queue}")

            async def on_temporal(order: Order, operate: Operate | None) -> Outcome[Receipt]:
                assert server is not None
                return await _unless_stopped(
                    worker_run,
                    _run_on_temporal(
                        server, task_queue, order, console, deadline=args.timeout, operate=operate
                    ),
                )

            run = on_temporal

        problems: list[str] = []
        failed_runs = 0
        # A terminal's width; in a pipe (a log, CI) nothing wraps, but a viewer may.
        width = shutil.get_terminal_size((200, 24)).columns
        for n, scenario in enumerate(SCENARIOS, 1):
            console.say()
            console.say(console.bold(f"== run {n}: {scenario.title}"))
            console.progress(
                f"placing order {scenario.order.order_id} "
                f"(ships to {scenario.order.ship_to.country})"
            )
            operate = None
            if scenario.outage is not None:
                shop.outages.add(scenario.outage)
                operate = _operator(shop, console, args.backend)
            try:
                outcome = await run(scenario.order, operate)
            finally:
                shop.outages.clear()
            verdict = "succeeded" if not outcome.failed else f"failed ({outcome.error.type})"
            console.progress(f"saga {verdict}; report status {outcome.report.status.value}")
            console.say()
            report, cut = _fit_errors(outcome.report, width - 2)
            console.say("  " + report.timeline(color=console.color).replace("\n", "\n  "))
            if cut:
                console.say("  errors in full:")
                for line in cut:
                    console.say(f"    {line}")
            console.say()
            _print_state(shop, console)
            found = scenario.check(outcome, shop, scenario.order)
            problems += [f"run {n}: {p}" for p in found]
            failed_runs += bool(found)
            console.say(
                f"  {'as designed' if not found else 'NOT as designed: ' + '; '.join(found)}"
            )

        console.say()
        if problems:
            console.say("some runs did not end as designed:")
            for p in problems:
                console.say(f"  - {p}")
        else:
            runs = "both runs" if len(SCENARIOS) == 2 else f"all {len(SCENARIOS)} runs"
            console.say(f"{runs} ended as designed: {'; '.join(s.designed for s in SCENARIOS)}.")
        if server is not None and args.keep_server:
            console.say()
            console.say(console.bold(f"Temporal Web UI: {server.ui_url}"))
            console.say(f"Server: {server.address} (namespace {server.client.namespace})")
            console.say(f"The sagas by status: sagakit list --address {server.address}")
            console.say(
                "The server and the worker stay up (queries work in the UI). "
                "Press Ctrl-C to stop them."
            )
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                # Ctrl-C is how --keep-server ends: not an interruption.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
        if problems:
            raise JobFailed(
                f"{failed_runs} of {len(SCENARIOS)} runs did not end as designed (see above)",
                keep=True,
            )
        return 0


async def _main(
    args: argparse.Namespace, console: Console, workdir: Path, runtime: Runtime | None
) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    interrupted = False

    def stop(name: str) -> None:
        nonlocal interrupted
        interrupted = True
        console.progress(f"{name}: stopping the worker and the server ...")
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows; there Ctrl-C still raises KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop, sig.name)
    try:
        return await _demo(args, console, workdir, runtime)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        print(f"{PROG}: interrupted; nothing left running", file=sys.stderr, flush=True)
        return 130


def _quiet_logs(*, verbose: bool) -> None:
    if verbose:
        return
    # The worker logs every failed activity attempt with its traceback (the lost
    # refund reply is staged here; the live lines and the SQLite state show it),
    # and a fatal error of its own, which the job reports in one line.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    logging.getLogger("temporalio.worker._worker").setLevel(logging.CRITICAL)


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return code


def _run(args: argparse.Namespace, console: Console, workdir: Path) -> tuple[int, bool]:
    """The job in its event loop: its exit status, and whether to keep `workdir`.

    Each failure is one line on stderr. `workdir` is worth keeping when the
    job failed and it holds what shows why: the dev server's log, or the
    SQLite file of runs that did not end as designed.
    """
    runtime = quiet_runtime(verbose=args.verbose) if args.backend == "temporal" else None
    log = workdir / "temporal.log"
    try:
        return asyncio.run(_main(args, console, workdir, runtime)), False
    except (JobFailed, Unreachable, DevServerError, FileNotFoundError, ReportUnavailable) as e:
        return _fail(str(e)), (isinstance(e, JobFailed) and e.keep) or log.exists()
    except KeyboardInterrupt:  # Ctrl-C before the job's own handler was in place
        return _fail("interrupted", 130), False
    except (Exception, asyncio.CancelledError) as e:
        if args.verbose:
            traceback.print_exc()
        message = f"unexpected {type(e).__name__}: {_one_line(str(e), 300)}"
        return _fail(f"{message} (--verbose shows the traceback)"), True
    finally:
        # Free temporalio's runtime, and with it the Rust core's threads, now, while
        # Python runs: left to the interpreter's exit, a thread still busy aborts the
        # process (Fatal Python error: PyGILState_Release). Tracebacks and clients
        # hold it in reference cycles that only a collection breaks.
        del runtime
        gc.collect()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; the exit status says how it ended (see the module's docstring)."""
    args = _parse(argv)
    console = Console(color=_use_color(args.color))
    _quiet_logs(verbose=args.verbose)
    workdir = Path(tempfile.mkdtemp(prefix="sagakit-examples-"))
    code, keep = 1, True
    try:
        code, keep = _run(args, console, workdir)
    finally:
        if keep:
            files = ", ".join(sorted(p.name for p in workdir.iterdir()))
            console.progress(f"kept {workdir} ({files}) to show what happened")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            console.progress(f"removed {workdir}")
    return code
