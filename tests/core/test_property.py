"""Property: for any saga shape and failure point, the unwind undoes exactly what started."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from sagakit import Saga, SagaFailed, SagaStatus
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal, options


class Boom(Exception):
    pass


class UndoBoom(Exception):
    pass


@dataclass(frozen=True)
class StepSpec:
    name: str
    has_undo: bool
    undo_fails: bool
    yields: int
    fails: bool


@dataclass(frozen=True)
class Shape:
    groups: list[list[StepSpec]]
    """Each group runs as one step, or as concurrent steps when it has several."""
    body_fails: bool
    """The body raises after its last group."""
    plain_gather: bool
    """Concurrent groups use asyncio.gather instead of saga.gather."""
    mode: str
    """"continue", "stop" (continue_on_compensation_error=False) or "parallel"."""


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    sizes = draw(st.lists(st.integers(1, 4), max_size=6))
    total = sum(sizes)
    fail_at = draw(st.none() | st.integers(0, max(total - 1, 0))) if total else None
    counter = iter(range(total))
    groups = []
    for size in sizes:
        group = []
        for _ in range(size):
            i = next(counter)
            has_undo = draw(st.booleans() | st.just(True))
            group.append(
                StepSpec(
                    name=f"s{i}",
                    has_undo=has_undo,
                    undo_fails=has_undo and draw(st.integers(0, 4)) == 0,
                    yields=draw(st.integers(0, 3)),
                    fails=i == fail_at,
                )
            )
        groups.append(group)
    return Shape(
        groups=groups,
        body_fails=fail_at is None and draw(st.booleans()),
        plain_gather=draw(st.booleans()),
        mode=draw(st.sampled_from(["continue", "stop", "parallel"])),
    )


async def run_shape(shape: Shape, journal: Journal) -> tuple[InMemoryExecutor, SagaFailed | None]:
    executor = InMemoryExecutor(
        options(
            parallel_compensation=shape.mode == "parallel",
            continue_on_compensation_error=shape.mode != "stop",
        )
    )

    def start(spec: StepSpec, s: Saga):  # type: ignore[no-untyped-def]
        do, undo = journal.step(
            spec.name,
            fail=Boom(spec.name) if spec.fails else None,
            undo_fail=UndoBoom(spec.name) if spec.undo_fails else None,
            yields=spec.yields,
        )
        return s.step(do, undo if spec.has_undo else None)

    async def saga(s: Saga) -> str:
        for group in shape.groups:
            if len(group) == 1:
                await start(group[0], s)
            elif shape.plain_gather:
                await asyncio.gather(*(start(spec, s) for spec in group))
            else:
                await s.gather(*(start(spec, s) for spec in group))
        if shape.body_fails:
            raise Boom("body")
        return "done"

    try:
        assert await executor.run(saga) == "done"
    except SagaFailed as e:
        return executor, e
    return executor, None


class TestUnwindProperty:
    # print_blob: a failure prints the @reproduce_failure that replays it (database=None
    # keeps no example between runs, and CI's clone is fresh anyway).
    @settings(max_examples=200, deadline=None, database=None, print_blob=True)
    @given(shapes())
    def test_unwind_undoes_exactly_the_started_steps(self, shape: Shape) -> None:
        """The undos run are the registered ones whose do started: each once, LIFO, after its do."""
        journal = Journal()
        executor, failure = asyncio.run(run_shape(shape, journal))
        specs = {spec.name: spec for group in shape.groups for spec in group}
        failing_group = next(
            (i for i, g in enumerate(shape.groups) if any(s.fails for s in g)), len(shape.groups)
        )
        expected_started = [s.name for g in shape.groups[: failing_group + 1] for s in g]

        # Registered == started: every step the saga reached registered and started its do.
        registered = [s.name for s in executor.last_report.steps]
        assert registered == expected_started
        assert sorted(journal.done) == sorted(registered)
        assert len(set(journal.done)) == len(journal.done)

        if failure is None:
            assert not shape.body_fails
            assert failing_group == len(shape.groups)
            assert journal.undone == []
            return

        # No undo starts while its own do may still run, or while any do still runs.
        journal.assert_no_undo_before_its_do_ended()
        journal.assert_nothing_running_when_unwind_began()

        # Exactly the registered undos, each once, last registered first.
        with_undo = [n for n in reversed(registered) if specs[n].has_undo]
        assert len(journal.undone) == len(set(journal.undone))
        if shape.mode == "continue":
            assert journal.undone == with_undo
            ran = with_undo
        elif shape.mode == "stop":
            first_bad = next((i for i, n in enumerate(with_undo) if specs[n].undo_fails), None)
            ran = with_undo if first_bad is None else with_undo[: first_bad + 1]
            assert journal.undone == ran
        else:
            assert sorted(journal.undone) == sorted(with_undo)
            ran = with_undo
        if shape.mode != "parallel":
            assert journal.names("undo", "end") == ran  # each ended before the next started
            assert journal.most_concurrent_undos <= 1

        # Every final undo failure is collected, and only those.
        bad = [n for n in ran if specs[n].undo_fails]
        comp = failure.compensation_error
        if bad:
            assert comp is not None
            assert sorted(str(e) for e in comp.exceptions) == sorted(bad)
            assert failure.report.status is SagaStatus.COMPENSATION_FAILED
        else:
            assert comp is None
            skipped = shape.mode == "stop" and len(ran) < len(with_undo)
            assert not skipped
            assert failure.report.status is SagaStatus.COMPENSATED
        assert isinstance(failure.__cause__, Boom)
