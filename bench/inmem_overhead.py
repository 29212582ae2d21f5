"""The in-memory executor's overhead against a hand-written asyncio saga, and its growth.

Run it with `python bench/inmem_overhead.py` (add `--quick` for a short run). In one
process it measures:

1. a 10-step saga, success and failure (last step fails, 10 undos run), with steps
   that `await asyncio.sleep(0)` and with no-op async steps, on sagakit's
   `InMemoryExecutor` and on a plain try/except saga with a list of undos;
2. one saga of 1k, 10k and 100k no-op steps: time per step, and memory per step
   (tracemalloc peak over the run, divided by the steps).

Budgets:

* yielding steps (`await asyncio.sleep(0)`, the worst case for sagakit: the cheapest
  step that still yields to the event loop) are a guard, not a target: no slower
  than 4x the plain saga, on the success and the failure path;
* no-op steps: the ratio is informational (it measures sagakit's bookkeeping against
  a saga that does nothing at all), printed with no budget;
* growth from 1k to 100k steps is linear (time per step flat: largest/smallest close
  to 1; the check allows 2x for noise, where quadratic growth would show ~100x), and
  memory stays under 2 KB per step.

The budget for real I/O is in `bench/inmem_tcp.py`. (The former goals, 1.5x yielding
and 10x no-op, are retired.) Exit status 1 if a budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from _sagas import handwritten_saga
from _sagas import sagakit_saga as sagakit_side

from sagakit import RetryPolicy, SagaFailed, SagaOptions
from sagakit.inmemory import InMemoryExecutor

STEPS = 10
GUARD = 4.0  # yielding steps: sagakit no slower than this many times the plain saga
MAX_BYTES_PER_STEP = 2048
MAX_SPREAD = 2.0  # time per step, largest/smallest over the sizes: quadratic would be ~100x
NO_RETRY = SagaOptions(retry_policy=RetryPolicy(maximum_attempts=1))


class Boom(Exception):
    pass


# -- the steps ---------------------------------------------------------------


async def yield_do(i: int) -> int:
    await asyncio.sleep(0)
    return i


async def yield_undo(i: int) -> None:
    await asyncio.sleep(0)


async def yield_fail(i: int) -> int:
    await asyncio.sleep(0)
    raise Boom(i)


async def noop_do(i: int) -> int:
    return i


async def noop_undo(i: int) -> None:
    return None


async def noop_fail(i: int) -> int:
    raise Boom(i)


KINDS: dict[str, tuple[Callable[[int], Awaitable[Any]], ...]] = {
    "yielding": (yield_do, yield_undo, yield_fail),
    "no-op": (noop_do, noop_undo, noop_fail),
}


# -- the two sagas -----------------------------------------------------------


def sagakit_saga(
    kind: str, fail: bool, steps: int = STEPS
) -> Callable[..., Coroutine[Any, Any, int]]:
    return sagakit_side(*KINDS[kind], fail=fail, steps=steps)


def plain_saga(kind: str, fail: bool, steps: int = STEPS) -> Callable[[], Awaitable[int]]:
    return handwritten_saga(*KINDS[kind], fail=fail, steps=steps)


# -- measuring ---------------------------------------------------------------


async def per_run(run: Callable[[], Awaitable[Any]], n: int) -> float:
    """Mean seconds per run over `n` runs."""
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(n):
        try:  # noqa: SIM105 - contextlib.suppress costs as much as the plain saga itself
            await run()
        except (SagaFailed, RuntimeError):
            pass
    return (time.perf_counter() - t0) / n


async def compare(n: int, repeats: int, record_calls: bool) -> list[tuple[str, str, float, float]]:
    """Best-of-`repeats` per-run time of each saga, the two sides measured alternately."""
    rows = []
    for kind in KINDS:
        for fail in (False, True):
            saga, plain = sagakit_saga(kind, fail), plain_saga(kind, fail)
            sk = pl = float("inf")
            for _ in range(repeats):
                # An executor keeps every run's report: a fresh one per batch of runs.
                ex = InMemoryExecutor(NO_RETRY, record_calls=record_calls)
                sk = min(sk, await per_run(functools.partial(ex.run, saga), n))
                pl = min(pl, await per_run(plain, n))
            rows.append((kind, "failure" if fail else "success", sk, pl))
    return rows


async def growth(sizes: list[int]) -> list[tuple[int, float, float]]:
    rows = []
    for steps in sizes:
        saga = sagakit_saga("no-op", False, steps)
        elapsed = float("inf")
        for _ in range(3):
            ex = InMemoryExecutor(NO_RETRY)
            gc.collect()
            t0 = time.perf_counter()
            await ex.run(saga)
            elapsed = min(elapsed, time.perf_counter() - t0)
            del ex
        gc.collect()
        ex = InMemoryExecutor(NO_RETRY)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        await ex.run(saga)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((steps, elapsed / steps, (peak - base) / steps))
        del ex
    return rows


def machine() -> str:
    return (
        f"{platform.platform()}; {platform.machine()}; cpu_count={os.cpu_count()}; "
        f"python {platform.python_version()} ({platform.python_implementation()})"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, up to 10k steps")
    args = parser.parse_args()
    n, repeats = (300, 5) if args.quick else (1000, 15)
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]

    print(machine())
    print(f"{STEPS}-step saga, best of {repeats} x {n} runs (us per saga run)\n")
    ok = True
    for record_calls in (True, False):
        print(f"InMemoryExecutor(record_calls={record_calls})")
        print(f"  {'steps':<10} {'path':<8} {'sagakit':>9} {'plain':>9} {'ratio':>7}  budget")
        for kind, path, sk, pl in await compare(n, repeats, record_calls):
            if kind == "yielding":
                met = sk / pl <= GUARD
                ok &= met
                budget = f"<= {GUARD:g}x (guard) {'ok' if met else 'MISSED'}"
            else:
                budget = "informational"
            print(
                f"  {kind:<10} {path:<8} {sk * 1e6:9.1f} {pl * 1e6:9.1f} {sk / pl:6.2f}x  {budget}"
            )
        print()

    print("growth: one saga of N no-op steps (record_calls=True; time: best of 3)")
    print(f"  {'steps':>8} {'us/step':>9} {'bytes/step':>11}")
    rows = await growth(sizes)
    for steps, per_step, mem in rows:
        print(f"  {steps:>8} {per_step * 1e6:9.2f} {mem:11.0f}")
    spread = max(r[1] for r in rows) / min(r[1] for r in rows)
    linear = spread <= MAX_SPREAD
    ok &= linear
    print(
        f"  time per step, largest/smallest: {spread:.2f}x "
        f"(linear: <= {MAX_SPREAD:g}x {'ok' if linear else 'MISSED'})"
    )
    mem_ok = all(r[2] < MAX_BYTES_PER_STEP for r in rows)
    ok &= mem_ok
    print(f"  memory per step < {MAX_BYTES_PER_STEP} B: {'ok' if mem_ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
