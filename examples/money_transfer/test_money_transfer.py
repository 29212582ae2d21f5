"""The transfer saga, specified on every backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from examples._support.glitches import Glitch, Glitches
from examples._support.running import Backend, Outcome, SagaCase
from examples.money_transfer.activities import ACTIVITIES, BANK
from examples.money_transfer.models import Transfer, TransferReceipt
from examples.money_transfer.saga import OPTIONS, transfer_money
from examples.money_transfer.services import Bank
from examples.money_transfer.workflow import TransferMoney
from sagakit import SagaStatus, StepStatus

CASE = SagaCase(saga=transfer_money, options=OPTIONS, workflow=TransferMoney, activities=ACTIVITIES)

Send = Callable[[Transfer], Awaitable[Outcome[TransferReceipt]]]


def a_transfer(amount_cents: int = 40_00, fee_cents: int = 1_50) -> Transfer:
    return Transfer(
        transfer_id="tx-1",
        source="alice",
        target="bob",
        amount_cents=amount_cents,
        fee_cents=fee_cents,
    )


@pytest.fixture
def bank(tmp_path: Path) -> Bank:
    bank = Bank(tmp_path / "bank.sqlite3")
    bank.open_account("alice", 100_00)
    bank.open_account("bob", 0)
    return bank


@pytest.fixture
def send(backend: Backend, bank: Bank) -> Send:
    async def run(t: Transfer) -> Outcome[TransferReceipt]:
        with BANK.provide(bank):
            return await backend.run(CASE, t, result_type=TransferReceipt)

    return run


def balances(bank: Bank) -> tuple[int, int]:
    return bank.balance("alice"), bank.balance("bob")


class TestATransfer:
    async def test_moves_the_money_and_charges_the_fee(self, send: Send, bank: Bank) -> None:
        """A covered transfer moves the amount and charges the fee, once each."""
        outcome = await send(a_transfer())

        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert balances(bank) == (100_00 - 40_00 - 1_50, 40_00)
        assert len(bank.entries()) == 3


class TestFlakyConnections:
    async def test_retries_until_the_bank_answers(self, send: Send, bank: Bank) -> None:
        """Calls refused twice before taking effect are retried, and the transfer succeeds."""
        bank.glitches = Glitches(Glitch("withdraw", times=2))

        outcome = await send(a_transfer())

        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert bank.glitches.calls("withdraw") == 3
        assert balances(bank) == (58_50, 40_00)

    async def test_a_deposit_retried_after_it_took_effect_posts_once(
        self, send: Send, bank: Bank
    ) -> None:
        """A deposit whose reply was lost is retried without crediting the target twice."""
        bank.glitches = Glitches(Glitch("deposit", after_effect=True))

        outcome = await send(a_transfer())

        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert bank.glitches.calls("deposit") == 2
        assert balances(bank) == (58_50, 40_00)


class TestInsufficientFunds:
    async def test_fails_without_retrying(self, send: Send, bank: Bank) -> None:
        """A fee the drained source cannot pay fails with InsufficientFunds on the first attempt."""
        outcome = await send(a_transfer(amount_cents=100_00))

        assert outcome.error.type == "InsufficientFunds"
        assert outcome.report.step("charge_fee").status is StepStatus.FAILED
        assert bank.glitches.calls("charge_fee") == 1, "non-retryable: attempted once"

    async def test_reverses_the_deposit_then_the_withdrawal(self, send: Send, bank: Bank) -> None:
        """The deposit is reversed before the withdrawal, and both balances are as before."""
        outcome = await send(a_transfer(amount_cents=100_00))

        assert outcome.report.status is SagaStatus.COMPENSATED
        assert outcome.report.compensation_order == ["charge_fee", "deposit", "withdraw"]
        assert balances(bank) == (100_00, 0)
        assert [e["kind"] for e in bank.entries()] == [
            "posting",
            "posting",
            "reversal",
            "reversal",
        ]
