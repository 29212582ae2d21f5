"""The report of a saga whose sub-saga unwound before the saga itself unwound (API.md §10)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from sagakit import Saga, SagaFailed
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal


class Boom(Exception):
    pass


def room_then_spa_fails(journal: Journal) -> Callable[[Saga], Awaitable[None]]:
    """The sub-saga `hotels`: a room, then a spa that fails."""

    async def hotels(s: Saga) -> None:
        await s.step(*journal.step("room"))
        await s.step(*journal.step("spa", fail=Boom()))

    return hotels


class TestUndoOrderAcrossUnwinds:
    async def test_compensation_order_puts_a_failed_sub_sagas_undos_first(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A sub-saga's undos ran before the saga's: `compensation_order` keeps them first."""
        hotels = room_then_spa_fails(journal)

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("flight"))
            with pytest.raises(SagaFailed):
                await s.sub(hotels)
            await s.step(*journal.step("charge", fail=Boom()))

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)

        ran = [name for kind, name, at in journal.events if kind == "undo" and at == "start"]
        assert ran == ["spa", "room", "charge", "flight"]
        assert info.value.report.compensation_order == ran


class TestTimelineAcrossUnwinds:
    async def test_a_failed_sub_sagas_undos_come_before_the_steps_after_it(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """The timeline lists the undos of a caught sub-saga failure before the later steps."""
        hotels = room_then_spa_fails(journal)

        async def saga(s: Saga) -> None:
            with pytest.raises(SagaFailed):
                await s.sub(hotels)
            await s.step(*journal.step("hostel"))

        await executor.run(saga)

        lines = executor.last_report.timeline(color=False).splitlines()[1:]
        shown = [(line.split()[3], line.split()[5]) for line in lines]
        assert shown == [
            ("do", "hotels:"),
            ("do", "hotels:"),
            ("undo", "hotels:"),
            ("undo", "hotels:"),
            ("do", "hostel"),
        ]
