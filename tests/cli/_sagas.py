"""Workflows of the CLI tests: sagas that fail, park or stay open, and one that is no saga."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sagakit import RetryPolicy, Saga, SagaOptions, UndoPlan
    from sagakit.temporal import TemporalExecutor

    from ._acts import Order, cancel_shipment, charge, refund, release, reserve, ship

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3)
OPTIONS = SagaOptions(start_to_close_timeout=timedelta(seconds=10), retry_policy=FAST)
PARKING = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10), retry_policy=FAST, on_undo_failure="park"
)


async def place_order(saga: Saga, order: Order) -> str:
    await saga.step(reserve, release, order)
    await saga.step(charge, refund, order)
    return await saga.step(ship, cancel_shipment, order)


async def reserve_and_wait(saga: Saga, order: Order) -> None:
    await saga.step(reserve, release, order)
    await workflow.wait_condition(lambda: False)


@workflow.defn
class CliPlaceOrder:
    """Fails at `ship` (unless the order ships) and is compensated."""

    @workflow.run
    async def run(self, order: Order) -> str:
        return await TemporalExecutor(options=OPTIONS).run(place_order, order)


@workflow.defn
class CliParkingOrder:
    """The same saga, whose undo that fails for good parks for an operator."""

    @workflow.run
    async def run(self, order: Order) -> str:
        return await TemporalExecutor(options=PARKING).run(place_order, order)


@workflow.defn
class CliOpenSaga:
    """A saga that reserves, then stays open."""

    @workflow.run
    async def run(self, order: Order) -> None:
        await TemporalExecutor(options=OPTIONS).run(reserve_and_wait, order)


async def pay(saga: Saga, order: Order) -> None:
    await saga.step(charge, refund, order)


async def reserve_pay_then_continue(saga: Saga, order: Order) -> str:
    """Run 1: reserve, then sub-saga `payment`, then continue as new; run 2: ship."""
    if saga.undo_plan().undos:  # resumed: what run 1 did is carried
        return await saga.step(ship, cancel_shipment, order)
    await saga.step(reserve, release, order)
    await saga.sub(pay, order, name="payment")
    workflow.continue_as_new(args=[order, saga.undo_plan()])


@workflow.defn
class CliContinuedOrder:
    """Continues as new once with its undo plan; the second run fails at `ship`."""

    @workflow.run
    async def run(self, order: Order, plan: UndoPlan | None) -> str:
        return await TemporalExecutor(options=OPTIONS).run(
            reserve_pay_then_continue, order, resume=plan
        )


@workflow.defn
class CliNotASaga:
    """A workflow with no saga in it: no `sagakit_report` query, no `sagakit_resolve` update."""

    @workflow.run
    async def run(self, order: Order) -> None:
        await workflow.wait_condition(lambda: False)


WORKFLOWS = (CliPlaceOrder, CliParkingOrder, CliOpenSaga, CliContinuedOrder, CliNotASaga)
