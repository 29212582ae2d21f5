"""The main job: the flagship on a real Temporal server, one order shipped, one compensated.

    python -m examples                    # starts a dev server from the installed `temporal`
    python -m examples --keep-server      # ... and keeps it (and its Web UI) up until Ctrl-C
    python -m examples --backend inmemory # the same saga, no server
    python -m examples --address HOST:PORT --namespace NS [--tls] [--api-key KEY]

It runs the order saga twice: an order that ships, and an order to an address
no carrier serves, whose fulfilment fails and which is unwound (the payment
provider also loses the first refund reply, so the refund is retried and must
still refund exactly once). After each run it prints the saga's timeline and
the fake services' SQLite state. Exit status 0 means both runs ended as
designed; 1 means they did not; 130 means interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from examples._support.devserver import DevServerError, dev_server
from examples._support.glitches import Glitch, Glitches
from examples._support.running import (
    Outcome,
    SagaCase,
    find_binary,
    outcome_of,
    run_in_memory,
)
from examples.order_fulfilment.activities import ACTIVITIES, SHOP
from examples.order_fulfilment.models import Address, LineItem, Order, Receipt
from examples.order_fulfilment.saga import OPTIONS, place_order
from examples.order_fulfilment.services import Shop
from examples.order_fulfilment.workflow import PlaceOrder
from sagakit import SagaReport, SagaStatus, StepStatus
from sagakit.inmemory import VirtualClock
from sagakit.temporal import REPORT_QUERY, SagakitPlugin

CASE = SagaCase(saga=place_order, options=OPTIONS, workflow=PlaceOrder, activities=ACTIVITIES)

RunOrder = Callable[[Order], Awaitable[Outcome[Receipt]]]


@dataclass(frozen=True)
class Scenario:
    """One run of the demo and what it is expected to do."""

    title: str
    order: Order
    should_succeed: bool


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


SCENARIOS = (
    Scenario("an order that ships", _order("o-1001", "GB", "London"), should_succeed=True),
    # The failure is in the order's data: no carrier ships to Antarctica.
    Scenario(
        "an order to Antarctica: fulfilment fails, the saga compensates",
        _order("o-1002", "AQ", "McMurdo Station"),
        should_succeed=False,
    ),
)


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

    def dim(self, text: str) -> str:
        """`text` dimmed, when colouring."""
        return f"\033[2m{text}\033[0m" if self.color else text

    def bold(self, text: str) -> str:
        """`text` in bold, when colouring."""
        return f"\033[1m{text}\033[0m" if self.color else text


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m examples",
        description="Run the order-fulfilment saga twice (success, then compensation) and "
        "print each run's timeline and the services' SQLite state.",
    )
    p.add_argument(
        "--backend",
        choices=("temporal", "inmemory"),
        default="temporal",
        help="temporal (default): a real server; inmemory: InMemoryExecutor, no server",
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
        "--db",
        metavar="PATH",
        type=Path,
        help="new SQLite file for the fake services (default: one in a new temp directory)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="keep the worker's log of failed activity attempts (tracebacks and all)",
    )
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output: auto (default) when stdout is a TTY and NO_COLOR is unset",
    )
    args = p.parse_args(argv)
    if args.backend == "inmemory" and (args.address or args.keep_server):
        p.error("--address and --keep-server need --backend temporal")
    if args.address and args.keep_server:
        p.error(
            "--keep-server keeps the dev server this command starts; with --address there is none"
        )
    if args.db is not None and args.db.exists():
        p.error(f"--db {args.db} exists: give a new file (each run starts from a fresh shop)")
    if (args.tls or args.api_key) and not args.address:
        p.error("--tls and --api-key apply to --address")
    return args


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


class _CannotStart(Exception):
    """No server to run on: not installed, did not start, or unreachable."""


@dataclass
class Server:
    """What the runs talk to."""

    client: Client
    address: str
    ui_url: str | None = None


@asynccontextmanager
async def _dev_server(console: Console, *, ui: bool, log: Path) -> AsyncIterator[Server]:
    """A dev server from the installed `temporal` binary, stopped (process and all) on exit."""
    console.progress(f"starting a Temporal dev server ({find_binary('temporal')}; log {log}) ...")
    t0 = time.monotonic()
    try:
        async with dev_server(log=log, ui=ui) as server:
            try:
                client = await Client.connect(
                    server.address, data_converter=pydantic_data_converter
                )
                console.progress(
                    f"dev server up at {server.address} (pid {server.pid}) "
                    f"in {time.monotonic() - t0:.1f}s"
                )
                yield Server(client, server.address, server.ui_url)
            finally:
                console.progress("stopping the dev server ...")
    finally:
        console.progress("dev server stopped")


@asynccontextmanager
async def _cluster(console: Console, args: argparse.Namespace) -> AsyncIterator[Server]:
    """A client of an existing cluster."""
    console.progress(f"connecting to {args.address} (namespace {args.namespace}) ...")
    try:
        client = await Client.connect(
            args.address,
            namespace=args.namespace,
            api_key=args.api_key,
            tls=True if args.tls else None,
            data_converter=pydantic_data_converter,
        )
    except RuntimeError as e:  # temporalio's bridge reports connect failures as RuntimeError
        raise _CannotStart(f"cannot connect to {args.address}: {e}") from e
    console.progress("connected")
    yield Server(client, args.address)


async def _watch(handle: WorkflowHandle[Any, Any], console: Console, done: asyncio.Event) -> None:
    """Print each do and undo as the live report query shows it change, until `done`."""
    seen: set[tuple[str, int, str]] = set()
    # Stopped by an event, not cancelled: a query cancelled in flight makes the
    # worker log a warning when its answer finds no one waiting.
    while not done.is_set():
        with contextlib.suppress(Exception):  # not started yet, or the query raced the end
            report = await handle.query(REPORT_QUERY, result_type=SagaReport)
            events = [("do", s.seq, s.name, s.status.value) for s in report.steps]
            ran = [(s.seq, s.undo) for s in report.steps if s.undo is not None]
            ran.sort(key=lambda p: p[1].order or 0)
            events += [("undo", seq, u.name, u.status.value) for seq, u in ran if u.order]
            for phase, seq, name, status in events:
                if (phase, seq, status) not in seen:
                    seen.add((phase, seq, status))
                    console.progress(f"  {phase:<4} {seq}. {name}: {status}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.2)


async def _run_on_temporal(
    server: Server, task_queue: str, order: Order, console: Console
) -> Outcome[Receipt]:

    workflow_id = f"order-{order.order_id}-{uuid.uuid4().hex[:8]}"
    handle = await server.client.start_workflow(
        PlaceOrder.run, order, id=workflow_id, task_queue=task_queue
    )
    where = f"workflow {workflow_id}"
    if server.ui_url:
        where += f"  {server.ui_url}/namespaces/{server.client.namespace}/workflows/{workflow_id}"
    console.progress(f"started {where}")
    done = asyncio.Event()
    watcher = asyncio.create_task(_watch(handle, console, done))
    try:
        return await outcome_of(handle)
    finally:
        done.set()
        try:
            await watcher
        except asyncio.CancelledError:
            watcher.cancel()
            raise


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


def _check(scenario: Scenario, outcome: Outcome[Receipt], shop: Shop) -> list[str]:
    """What went other than designed (empty: all as expected)."""
    problems = []
    report = outcome.report
    charges = [c for c in shop.charges() if c["order_id"] == scenario.order.order_id]
    if scenario.should_succeed:
        if outcome.failed:
            problems.append(f"expected success, got {outcome.error.type}: {outcome.error.message}")
        if [c["refunds"] for c in charges] != [0]:
            problems.append(f"expected one charge, not refunded; got {[dict(c) for c in charges]}")
    else:
        if not outcome.failed or outcome.error.type != "Undeliverable":
            problems.append(f"expected the saga to fail with Undeliverable; got {report.status}")
        if report.status is not SagaStatus.COMPENSATED:
            problems.append(f"expected every undo to succeed; status {report.status}")
        if [c["refunds"] for c in charges] != [1]:
            problems.append(f"expected one charge refunded once; got {[dict(c) for c in charges]}")
        if any(s.status is StepStatus.RUNNING for s in report.steps):
            problems.append("a step was still running")
    return problems


async def _demo(args: argparse.Namespace, console: Console) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sagakit-examples-"))
    db = args.db or workdir / "shop.sqlite3"
    # The provider loses the first refund reply: the undo is retried after it took effect.
    shop = Shop(db, glitches=Glitches(Glitch("refund", times=1, after_effect=True)))
    shop.add_stock("BOOK", 10)
    shop.add_stock("MUG", 5)
    console.progress(f"fake services' state: {db}")

    async with AsyncExitStack() as stack:
        stack.enter_context(SHOP.provide(shop))
        server: Server | None = None
        if args.backend == "inmemory":
            console.progress("backend: in memory (InMemoryExecutor, no server)")
            clock = VirtualClock(follow_real_time=True)

            async def in_memory(order: Order) -> Outcome[Receipt]:
                return await run_in_memory(CASE, order, clock=clock)

            run: RunOrder = in_memory

        else:
            server = await stack.enter_async_context(
                _cluster(console, args)
                if args.address
                else _dev_server(console, ui=args.keep_server, log=workdir / "temporal.log")
            )
            task_queue = f"sagakit-examples-{uuid.uuid4().hex[:8]}"
            worker = Worker(
                server.client,
                task_queue=task_queue,
                workflows=[PlaceOrder],
                activities=list(ACTIVITIES),
                plugins=[SagakitPlugin()],
            )
            await stack.enter_async_context(worker)
            console.progress(f"worker polling task queue {task_queue}")

            async def on_temporal(order: Order) -> Outcome[Receipt]:
                assert server is not None
                return await _run_on_temporal(server, task_queue, order, console)

            run = on_temporal

        problems: list[str] = []
        for n, scenario in enumerate(SCENARIOS, 1):
            console.say()
            console.say(console.bold(f"== run {n}: {scenario.title}"))
            console.progress(
                f"placing order {scenario.order.order_id} "
                f"(ships to {scenario.order.ship_to.country})"
            )
            outcome = await run(scenario.order)
            verdict = "succeeded" if not outcome.failed else f"failed ({outcome.error.type})"
            console.progress(f"saga {verdict}; report status {outcome.report.status.value}")
            console.say()
            console.say("  " + outcome.report.timeline(color=console.color).replace("\n", "\n  "))
            console.say()
            _print_state(shop, console)
            found = _check(scenario, outcome, shop)
            problems += [f"run {n}: {p}" for p in found]
            console.say(
                f"  {'as designed' if not found else 'NOT as designed: ' + '; '.join(found)}"
            )

        console.say()
        if problems:
            console.say("some runs did not end as designed:")
            for p in problems:
                console.say(f"  - {p}")
        else:
            console.say(
                "both runs ended as designed: the first order shipped; the second failed "
                "at fulfilment and was compensated, its charge refunded exactly once."
            )
        if server is not None and args.keep_server:
            console.say()
            console.say(console.bold(f"Temporal Web UI: {server.ui_url}"))
            console.say(f"Server: {server.address} (namespace {server.client.namespace})")
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
        return 1 if problems else 0


async def _main(args: argparse.Namespace) -> int:
    console = Console(color=_use_color(args.color))
    if not args.verbose:
        # The worker logs every failed activity attempt with its traceback; the lost
        # refund reply is staged here, and the SQLite state shows what it did.
        logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def stop(name: str) -> None:
        console.progress(f"{name}: stopping the worker and the server ...")
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows; there Ctrl-C still raises KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop, sig.name)
    return await _demo(args, console)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; the exit status says whether both runs ended as designed."""
    args = _parse(argv)
    try:
        return asyncio.run(_main(args))
    except (_CannotStart, DevServerError, FileNotFoundError) as e:
        print(f"python -m examples: error: {e}", file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; nothing left running", file=sys.stderr, flush=True)
        return 130
