"""Idempotency keys and the step context (API.md §2.4)."""

from __future__ import annotations

import asyncio

import pytest

import sagakit
from sagakit import (
    DoOutcome,
    NotInStepError,
    Phase,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaStateError,
    current_step,
)
from sagakit.inmemory import Fault, InMemoryExecutor

from ._support import options


class Boom(Exception):
    pass


class KeyLog:
    """Do and undo functions that record the idempotency key they see."""

    def __init__(self) -> None:
        self.keys: list[tuple[str, str, str]] = []

    def pair(self, name: str, *, fail: bool = False):  # type: ignore[no-untyped-def]
        async def do() -> None:
            self.keys.append((name, "do", sagakit.idempotency_key()))
            if fail:
                raise Boom()

        async def undo() -> None:
            self.keys.append((name, "undo", sagakit.idempotency_key()))

        do.__name__ = name
        return do, undo

    def of(self, name: str, phase: str) -> list[str]:
        return [k for n, p, k in self.keys if n == name and p == phase]


class TestIdempotencyKey:
    async def test_do_and_undo_of_a_step_share_one_key(self, executor: InMemoryExecutor) -> None:
        """The undo reads the same key as its do, so it can find what the do made."""
        log = KeyLog()

        async def saga(s: Saga) -> None:
            await s.step(*log.pair("a"))
            await s.step(*log.pair("b", fail=True))

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert log.of("a", "do") == log.of("a", "undo")
        assert log.of("b", "do") == log.of("b", "undo")

    async def test_keys_differ_per_step(self, executor: InMemoryExecutor) -> None:
        """Every step of a run has its own key, even two steps with the same do."""
        log = KeyLog()
        do, undo = log.pair("same")

        async def saga(s: Saga) -> None:
            for _ in range(3):
                await s.step(do, undo)

        await executor.run(saga)
        keys = log.of("same", "do")
        assert len(keys) == len(set(keys)) == 3

    async def test_keys_differ_per_run(self, executor: InMemoryExecutor) -> None:
        """The same step in two runs of the same saga gets two keys."""
        log = KeyLog()

        async def saga(s: Saga) -> None:
            await s.step(*log.pair("a"))

        await executor.run(saga)
        await InMemoryExecutor().run(saga)
        await executor.run(saga)
        keys = log.of("a", "do")
        assert len(set(keys)) == 3

    async def test_key_is_stable_across_retries(self) -> None:
        """Every attempt of a retried do reads the same key."""
        log = KeyLog()
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(maximum_attempts=4)),
            faults=[Fault.fail("a", attempts=[1, 2, 3], after_effect=True)],
        )

        async def saga(s: Saga) -> None:
            await s.step(*log.pair("a"))

        await executor.run(saga)
        keys = log.of("a", "do")
        assert len(keys) == 4
        assert len(set(keys)) == 1
        assert executor.last_report.steps[0].attempts == 4

    async def test_key_is_stable_across_retries_of_real_failures(self) -> None:
        """A do that itself fails on its first attempts sees one key on every attempt."""
        keys: list[str] = []

        async def flaky() -> None:
            keys.append(sagakit.idempotency_key())
            if len(keys) < 3:
                raise Boom()

        executor = InMemoryExecutor(options(retry_policy=RetryPolicy(maximum_attempts=5)))

        async def saga(s: Saga) -> None:
            await s.step(flaky, None)

        await executor.run(saga)
        assert len(keys) == 3
        assert len(set(keys)) == 1

    async def test_key_derives_from_the_saga_id(self, executor: InMemoryExecutor) -> None:
        """An explicit saga_id makes keys reproducible: "<saga_id>#<step seq>"."""
        log = KeyLog()

        async def saga(s: Saga) -> None:
            assert s.saga_id == "order-42"
            await s.step(*log.pair("a"))
            await s.step(*log.pair("b"))

        await executor.run(saga, saga_id="order-42")
        assert log.of("a", "do") == ["order-42#1"]
        assert log.of("b", "do") == ["order-42#2"]

    async def test_idempotency_key_outside_a_step_raises(self, executor: InMemoryExecutor) -> None:
        """idempotency_key() and current_step() outside a do or undo raise NotInStepError."""
        with pytest.raises(NotInStepError, match="outside a saga step"):
            sagakit.idempotency_key()
        with pytest.raises(NotInStepError):
            current_step()

        async def saga(s: Saga) -> None:
            sagakit.idempotency_key()  # in the saga body, not in a step

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, NotInStepError)
        assert isinstance(info.value.__cause__, SagaStateError)


class TestStepContext:
    async def test_context_in_the_do(self, executor: InMemoryExecutor) -> None:
        """Inside a do, current_step() gives saga id, seq, name, phase DO and outcome PENDING."""
        seen = []

        async def do() -> None:
            seen.append(current_step())

        async def saga(s: Saga) -> None:
            await s.step(do, None)
            await s.step(do, None, name="again")

        await executor.run(saga, saga_id="sg")
        assert [(c.saga_id, c.seq, c.name, c.phase, c.do_outcome) for c in seen] == [
            ("sg", 1, "do", Phase.DO, DoOutcome.PENDING),
            ("sg", 2, "again", Phase.DO, DoOutcome.PENDING),
        ]
        assert seen[0].idempotency_key == "sg#1"

    async def test_undo_knows_how_its_do_ended(self, executor: InMemoryExecutor) -> None:
        """An undo sees do_outcome SUCCEEDED, FAILED, or UNKNOWN for a do cancelled in flight."""
        outcomes: dict[str, DoOutcome] = {}

        async def undo() -> None:
            ctx = current_step()
            assert ctx.phase is Phase.UNDO
            outcomes[ctx.name] = ctx.do_outcome

        async def ok() -> None: ...

        async def hang() -> None:
            await asyncio.Event().wait()

        async def fail() -> None:
            await asyncio.sleep(0)
            raise Boom()

        async def saga(s: Saga) -> None:
            await s.step(ok, undo)
            await s.gather(s.step(hang, undo), s.step(fail, undo))

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert outcomes == {
            "ok": DoOutcome.SUCCEEDED,
            "hang": DoOutcome.UNKNOWN,
            "fail": DoOutcome.FAILED,
        }
