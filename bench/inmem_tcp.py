"""The in-memory executor against a hand-written saga whose steps do real network I/O.

Run it with `python bench/inmem_tcp.py` (about a minute; add `--quick` for about 10 s).

What it measures: a 10-step saga whose every do, and every undo, makes ONE asyncio
loopback TCP round-trip (send a 16-byte message, await its echo) to an echo server
running in ANOTHER PROCESS (started here with `multiprocessing`, spawn context, on
127.0.0.1 and a free port the OS picks; it stops when told, when this process goes
away, or after 10 minutes at most).

Against what: the same 10 steps in a hand-written asyncio saga, `try`/`except` and a
list of undos run `reversed` on failure. Both sides, in the same run:

* success: 10 dos, 10 round-trips;
* failure at step 10: the 10th do makes its round-trip and then raises. sagakit
  registers each undo BEFORE its do runs, so the failing step's undo runs too: 10
  undos, 20 round-trips in all. The hand-written saga appends each undo to its list
  before awaiting the do, so it also runs those same 10 undos (fair: same I/O).

sagakit side: `InMemoryExecutor(SagaOptions(retry_policy=RetryPolicy(maximum_attempts=1)))`,
otherwise defaults (`record_calls=True`): one attempt, so the failing do is not
retried (the default policy would retry it on the virtual clock). A fresh executor
per batch, as an executor keeps every run's report.

Connections: what a real client does, a connection pool. A small pool of TCP
connections is opened once, outside the timed region; every do and undo takes a
connection from the pool, makes its round-trip (write, drain, readexactly) and
gives it back. Both sides use the same pool and the same step functions.

Timing: many small batches (10 runs each), the two sides alternating batch by batch
(and which goes first alternating too), after a warm-up: on a shared machine the load
drifts, and fine-grained alternation lets both sides see the same drift. Per side,
the best and the median of the batch means, in microseconds per saga run, and the
ratios sagakit / hand-written of the bests, of the medians, and "paired": the median,
over the batch pairs, of each sagakit batch's mean over the hand-written batch next to
it (robust to the load changing during the run, which moves both batches of a pair).

CPU placement: by default the OS places the two processes (`--pin same` puts both on
CPU 0, `--pin split` the client on CPU 0 and the server on CPU 1). On a 2-vCPU VM a
round-trip takes about 30 us when both share a CPU and 35-75 us when split, so a free
run can switch between the two; the shorter the round-trip, the larger sagakit's share.

Budget: sagakit <= 1.25x the hand-written saga (the paired ratio, on the success and on
the failure path; exit status 1 if missed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

from _sagas import handwritten_saga
from _sagas import sagakit_saga as sagakit_side

from sagakit import RetryPolicy, Saga, SagaFailed, SagaOptions
from sagakit.inmemory import InMemoryExecutor

STEPS = 10
BUDGET = 1.25
POOL_SIZE = 4
SERVER_LIFETIME = 600.0  # seconds: the echo server stops by itself after this at most
OPTIONS = SagaOptions(retry_policy=RetryPolicy(maximum_attempts=1))


# -- the echo server, in another process ---------------------------------------


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def serve(conn: Connection) -> None:
    """The echo server's process: bind 127.0.0.1:0, report the port, echo until told to stop."""
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, "127.0.0.1", 0)
    conn.send(server.sockets[0].getsockname()[1])
    stop = loop.create_future()
    parent = os.getppid()

    def on_pipe() -> None:  # "stop" from the parent, or EOF when the parent has gone
        if not stop.done():
            stop.set_result(None)

    loop.add_reader(conn.fileno(), on_pipe)
    deadline = loop.time() + SERVER_LIFETIME
    async with server:
        while not stop.done() and loop.time() < deadline and os.getppid() == parent:
            await asyncio.wait([stop], timeout=1.0)
    loop.remove_reader(conn.fileno())


class EchoServer:
    """Start the echo server process; `stop()` ends it (it also ends by itself)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=serve, args=(child,), daemon=True, name="echo-server")
        self._proc.start()
        child.close()
        try:
            if not self._conn.poll(30):
                raise RuntimeError("the echo server did not start within 30 s")
            self.port: int = self._conn.recv()
        except BaseException:
            self.stop()
            raise
        self.pid = self._proc.pid

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()


# -- the client side: a connection pool and the steps --------------------------


class Pool:
    """A minimal connection pool: connections opened once, taken and given back per request."""

    def __init__(self) -> None:
        self._free: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()

    async def open(self, port: int, size: int) -> None:
        for _ in range(size):
            self._free.append(await asyncio.open_connection("127.0.0.1", port))

    async def close(self) -> None:
        while self._free:
            _, writer = self._free.pop()
            writer.close()
            await writer.wait_closed()

    async def request(self, message: bytes) -> bytes:
        reader, writer = conn = self._free.pop()
        try:
            writer.write(message)
            await writer.drain()
            reply = await reader.readexactly(len(message))
        except BaseException:
            writer.close()  # state unknown: do not give it back
            raise
        self._free.append(conn)
        if reply != message:
            raise RuntimeError(f"echo mismatch: {reply!r} != {message!r}")
        return reply


POOL = Pool()


class Rejected(Exception):
    pass


async def do(i: int) -> int:
    await POOL.request(b"do   %10d\n" % i)
    return i


async def undo(i: int) -> None:
    await POOL.request(b"undo %10d\n" % i)


async def fail(i: int) -> int:
    await POOL.request(b"do   %10d\n" % i)
    raise Rejected(i)  # the service answered, and said no


# -- the two sagas -------------------------------------------------------------


def sagakit_saga(failing: bool) -> Callable[[Saga], Coroutine[Any, Any, int]]:
    return sagakit_side(do, undo, fail, fail=failing, steps=STEPS)


def plain_saga(failing: bool) -> Callable[[], Awaitable[int]]:
    return handwritten_saga(do, undo, fail, fail=failing, steps=STEPS)


# -- measuring -----------------------------------------------------------------


async def batch(run: Callable[[], Awaitable[Any]], n: int) -> float:
    """Mean seconds per run over `n` runs."""
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        try:  # noqa: SIM105 - keep the loop's own cost minimal and equal on both sides
            await run()
        except (SagaFailed, RuntimeError):
            pass
    return (time.perf_counter() - t0) / n


async def compare(failing: bool, n: int, batches: int) -> tuple[list[float], list[float]]:
    saga, plain = sagakit_saga(failing), plain_saga(failing)

    async def sk_batch() -> float:
        ex = InMemoryExecutor(OPTIONS)  # keeps every run's report: a fresh one per batch
        return await batch(lambda: ex.run(saga), n)

    async def pl_batch() -> float:
        return await batch(plain, n)

    await sk_batch()  # warm-up, both sides
    await pl_batch()
    sk: list[float] = []
    pl: list[float] = []
    for b in range(batches):
        if b % 2:
            pl.append(await pl_batch())
            sk.append(await sk_batch())
        else:
            sk.append(await sk_batch())
            pl.append(await pl_batch())
    return sk, pl


def machine() -> str:
    return (
        f"{platform.platform()}; {platform.machine()}; cpu_count={os.cpu_count()}; "
        f"python {platform.python_version()} ({platform.python_implementation()})"
    )


async def bare_round_trip(n: int = 1000) -> float:
    """Median seconds of one round-trip with no saga around it."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await POOL.request(b"ping      ping\n")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


PINNING = {"none": None, "same": ({0}, {0}), "split": ({0}, {1})}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 batches per side, not 600")
    parser.add_argument(
        "--pin",
        choices=PINNING,
        default="none",
        help="CPU affinity: none (the OS decides), same (both on CPU 0), split (CPU 0 and 1)",
    )
    args = parser.parse_args()
    n, batches = (10, 100) if args.quick else (10, 600)

    print(machine())
    server = EchoServer()
    try:
        pinning = PINNING[args.pin]
        if pinning is not None:
            os.sched_setaffinity(0, pinning[0])
            assert server.pid is not None
            os.sched_setaffinity(server.pid, pinning[1])
        await POOL.open(server.port, POOL_SIZE)
        try:
            before = await bare_round_trip()
            results = {f: await compare(f, n, batches) for f in (False, True)}
            after = await bare_round_trip()
        finally:
            await POOL.close()
    finally:
        server.stop()

    print(
        f"echo server: another process, 127.0.0.1:{server.port}; pool of {POOL_SIZE} "
        f"connections; CPU pinning: {args.pin}\n"
        f"one bare round-trip (median of 1000): {before * 1e6:.1f} us before, "
        f"{after * 1e6:.1f} us after\n"
        f"{STEPS}-step saga, one round-trip per do and per undo; {batches} batches x {n} "
        f"runs per side, alternating (us per saga run)\n"
    )
    ok = True
    print(f"{'':<15} {'sagakit':>17} {'hand-written':>17} {'sagakit / hand-written':>24}")
    print(
        f"{'path':<9}{'trips':>6} {'best':>8}{'median':>9}{'best':>8}{'median':>9}"
        f"{'best':>8}{'median':>8}{'paired':>8}{'+us/trip':>10}"
    )
    for failing, (sk, pl) in results.items():
        paired = statistics.median(s / p for s, p in zip(sk, pl, strict=True))
        ok &= paired <= BUDGET
        trips = 2 * STEPS if failing else STEPS
        print(
            f"{'failure' if failing else 'success':<9}{trips:>6} "
            f"{min(sk) * 1e6:8.1f}{statistics.median(sk) * 1e6:9.1f}"
            f"{min(pl) * 1e6:8.1f}{statistics.median(pl) * 1e6:9.1f}"
            f"{min(sk) / min(pl):7.3f}x{statistics.median(sk) / statistics.median(pl):7.3f}x"
            f"{paired:7.3f}x"
            f"{(statistics.median(sk) - statistics.median(pl)) / trips * 1e6:10.1f}"
        )
    print(
        "\npaired: the median over batch pairs (each sagakit batch and the hand-written "
        "batch next to it);\n+us/trip: what sagakit adds per do or undo (difference of the medians)"
    )
    print(f"budget: paired ratio <= {BUDGET}x on both paths: {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
