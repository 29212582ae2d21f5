"""What becomes of an undo that finally failed is one policy, and it can be your own.

"fail" and "park" are two `UndoFailurePolicy`s (the contract suite states
them on every backend); `SagaOptions(on_undo_failure=...)` also takes a
callable that makes a policy of one's own, with no change to the core.
"""

from __future__ import annotations

import pytest

from sagakit import (
    CompensationError,
    OptionsError,
    Saga,
    SagaFailed,
    SagaOptions,
    SagaStatus,
    UndoStatus,
)
from sagakit.backend import Record, UndoFailurePolicy, Unwind
from sagakit.inmemory import InMemoryExecutor

from ._support import NO_RETRY


class RetryOnceMore(UndoFailurePolicy):
    """Hold each undo that finally failed; once every undo ran, run each held one again."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Record] = []
        self.settling = False

    def hold(self, record: Record, error: Exception) -> bool:
        if self.settling:  # it failed again: that is final
            return False
        self.held.append(record)
        return True

    async def settle(self, unwind: Unwind, errors: list[Exception]) -> list[Exception]:
        self.settling = True
        for record in self.held:
            error = await unwind.undo(record)
            if error is not None:
                errors.append(error)
        return await super().settle(unwind, errors)


def flaky_refund(tries: list[str]) -> object:
    def refund(order: str) -> None:
        tries.append(order)
        if len(tries) == 1:
            raise ConnectionError("payment provider down")

    return refund


async def order(saga: Saga, refund: object) -> None:
    await saga.step(lambda o: f"reserved {o}", lambda o: None, "o-1", name="reserve")
    await saga.step(lambda o: f"charged {o}", refund, "o-1", name="charge")
    await saga.step(lambda o: (_ for _ in ()).throw(ValueError("no stock")), None, "o-1")


class TestAPolicyOfOnesOwn:
    async def test_it_decides_what_becomes_of_a_failed_undo(self) -> None:
        """Held during the unwind, the refund runs again after it and the saga is compensated."""
        tries: list[str] = []
        options = SagaOptions(retry_policy=NO_RETRY, on_undo_failure=RetryOnceMore)
        with pytest.raises(SagaFailed) as ei:
            await InMemoryExecutor(options).run(order, flaky_refund(tries))
        report = ei.value.report
        assert tries == ["o-1", "o-1"]
        assert report.status is SagaStatus.COMPENSATED
        charge = report.step("charge").undo
        assert charge is not None
        assert charge.status is UndoStatus.COMPENSATED
        assert report.compensation_order == ["charge", "reserve"]  # the retry keeps its place
        assert ei.value.compensation_error is None

    async def test_what_it_gives_back_fails_the_saga(self) -> None:
        """The errors `settle` returns are the saga's `CompensationError`."""
        tries: list[str] = []

        def refund(order: str) -> None:
            tries.append(order)
            raise ConnectionError("payment provider down for good")

        options = SagaOptions(retry_policy=NO_RETRY, on_undo_failure=RetryOnceMore)
        with pytest.raises(SagaFailed) as ei:
            await InMemoryExecutor(options).run(order, refund)
        assert tries == ["o-1", "o-1"]
        assert ei.value.report.status is SagaStatus.COMPENSATION_FAILED
        assert isinstance(ei.value.compensation_error, CompensationError)
        assert [type(e) for e in ei.value.compensation_error.exceptions] == [ConnectionError]

    async def test_one_that_makes_no_policy_is_refused(self) -> None:
        """A callable that makes something else is refused before any step runs."""
        ran: list[str] = []

        async def saga_fn(saga: Saga) -> None:
            await saga.step(ran.append, None, "a")

        with pytest.raises(OptionsError, match="UndoFailurePolicy"):
            await InMemoryExecutor(SagaOptions(on_undo_failure=dict)).run(saga_fn)
        assert ran == []
