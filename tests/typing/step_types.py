"""What `mypy --strict` accepts and refuses in `Saga.step` (API.md §9): the typing promise.

Not a pytest module and never run: `scripts/test` checks it with
`mypy --strict tests/typing`. The right uses below must type-check, with the
result types they declare. Every wrong use carries `# type: ignore[<code>]`
with the exact code mypy reports; `--strict` turns on `warn_unused_ignores`,
so the check fails the day `Saga.step` accepts that mistake again (a
catch-all `Any` overload, say), and also when mypy reports it under another
code. The codes are mypy's own (the same from mypy 1.10 to 2.4): when a do
takes two or more args, a failed match also gets a `call-arg` ("Too many
arguments"), a quirk of how mypy reports `TypeVarTuple` overloads.

The steps are a bank-account saga: create the customer, open the account (its
id is the result), issue a card.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, assert_type

import temporalio.common
from temporalio import workflow

from sagakit import RetryPolicy, Saga, StepKind
from sagakit.temporal import ActivityRef, ChildWorkflowRef

# --- the steps ---------------------------------------------------------------


async def create_customer(name: str) -> int:
    return 1


async def delete_customer(name: str) -> None: ...


async def open_account(customer_id: int, currency: str) -> str:
    return "acc-1"


async def close_account(customer_id: int, currency: str) -> None: ...


async def close_account_by_id(customer_id: int, currency: str, account_id: str | None) -> None:
    """The undo with `pass_result=True`: the do's result, or None if the do did not succeed."""


def close_account_sync(customer_id: int, currency: str) -> None: ...


def issue_card(account_id: str) -> str:
    return "card-1"


def cancel_card(account_id: str) -> None: ...


def cancel_card_by_number(account_id: str, card: str | None) -> None: ...


async def notify(customer_id: int, *, channel: str) -> bool:
    return True


async def undo_anything(*args: Any) -> None: ...


# The undos a typo or a refactoring produces.


async def close_account_by_name(customer_name: str, currency: str) -> None: ...


async def close_account_no_none(customer_id: int, currency: str, account_id: str) -> None: ...


async def close_account_int_id(customer_id: int, currency: str, account_id: int | None) -> None: ...


@workflow.defn
class ShipCard:
    @workflow.run
    async def run(self, account_id: str) -> str:
        return "shipped"


@workflow.defn
class ShipCardInit:
    """A workflow whose `__init__` takes the run's args: callable, but a child workflow."""

    @workflow.init
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id

    @workflow.run
    async def run(self, account_id: str) -> str:
        return "shipped"


# --- right uses: they type-check, and the result has the do's type -----------


async def right(saga: Saga) -> None:
    # An async do and its undo, with the same args.
    _customer: int = await saga.step(create_customer, delete_customer, "Ada")
    _account: str = await saga.step(open_account, close_account, 1, "EUR")
    # A sync do; a sync undo of an async do.
    _card: str = await saga.step(issue_card, cancel_card, "acc-1")
    _account = await saga.step(open_account, close_account_sync, 1, "EUR")
    # The result type is exactly the do's.
    assert_type(await saga.step(open_account, close_account, 1, "EUR"), str)
    assert_type(await saga.step(issue_card, None, "acc-1"), str)
    assert_type(await saga.step(open_account, None, 1, "EUR", pass_result=True), str)
    # Nothing to undo.
    _customer = await saga.step(create_customer, None, "Ada")
    # pass_result=True: the undo takes the args, then the result (None unless the do succeeded).
    _account = await saga.step(open_account, close_account_by_id, 1, "EUR", pass_result=True)
    _card = await saga.step(issue_card, cancel_card_by_number, "acc-1", pass_result=True)
    _account = await saga.step(open_account, None, 1, "EUR", pass_result=True)
    _account = await saga.step(open_account, close_account, 1, "EUR", pass_result=False)
    # An undo that takes anything, with or without the result.
    _account = await saga.step(open_account, undo_anything, 1, "EUR")
    _account = await saga.step(open_account, undo_anything, 1, "EUR", pass_result=True)
    # A lambda is typed from the step.
    _account = await saga.step(open_account, lambda c, cur: None, 1, "EUR")
    # Keyword args of the do, bound with functools.partial.
    _sent: bool = await saga.step(functools.partial(notify, channel="sms"), None, 1)
    # Every option, by its name and type.
    _account = await saga.step(
        open_account,
        close_account,
        1,
        "EUR",
        name="open",
        start_to_close_timeout=timedelta(seconds=10),
        schedule_to_close_timeout=timedelta(minutes=1),
        heartbeat_timeout=timedelta(seconds=5),
        retry_policy=RetryPolicy(maximum_attempts=3),
        undo_retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        task_queue="accounts",
        local=False,
        summary="open the account",
        kind="compensatable",
        inline=False,
    )
    # Workflow code run inline on Temporal (a signal, a nested saga) says so.
    _account = await saga.step(open_account, close_account, 1, "EUR", inline=True)
    _account = await saga.step(open_account, None, 1, "EUR", kind="pivot")
    _card = await saga.step(issue_card, None, "acc-1", kind="retriable")
    _account = await saga.step(open_account, None, 1, "EUR", kind=StepKind.PIVOT)
    # temporalio's own RetryPolicy, a Temporal user's habit.
    _account = await saga.step(
        open_account,
        close_account,
        1,
        "EUR",
        retry_policy=temporalio.common.RetryPolicy(maximum_attempts=3),
        undo_retry_policy=temporalio.common.RetryPolicy(),
    )


async def untyped(saga: Saga) -> None:
    # What cannot be typed passes as Any: activity names, refs, child workflow classes.
    _any: Any = await saga.step("open_account", "close_account", 1, "EUR")
    _account: str = await saga.step("open_account", None, 1, "EUR")
    _account = await saga.step(ActivityRef("open_account"), ActivityRef("close_account"), 1, "EUR")
    _account = await saga.step(ActivityRef("open_account"), close_account, 1, "EUR")
    _account = await saga.step(open_account, ActivityRef("close_account"), 1, "EUR")
    # A typed do with an undo known only by name: the do and its args are still checked.
    _typed: str = await saga.step(open_account, "close_account", 1, "EUR")
    await saga.step(open_account, "close_account", "1", "EUR")  # type: ignore[call-arg, arg-type]
    _account = await saga.step(
        ActivityRef("open_account"), ActivityRef("close_account"), 1, "EUR", pass_result=True
    )
    _shipped: str = await saga.step(ShipCard, None, "acc-1")
    _shipped = await saga.step(ChildWorkflowRef("ShipCard"), None, "acc-1")
    # A class is a child workflow, even when its __init__ would fit the args.
    assert_type(await saga.step(ShipCardInit, None, "acc-1"), Any)
    assert_type(await saga.step("open_account", None, 1, "EUR"), Any)
    assert_type(await saga.step(ActivityRef("open_account"), None, 1, "EUR"), Any)


# --- wrong uses: each one is a mypy error, with exactly this code ------------


async def wrong(saga: Saga) -> None:
    # Args that do not fit the do (and so not the undo either).
    await saga.step(create_customer, delete_customer, 5)  # type: ignore[arg-type]
    # An undo whose params differ from the do's.
    await saga.step(open_account, close_account_by_name, 1, "EUR")  # type: ignore[call-arg, arg-type]
    await saga.step(issue_card, close_account, "acc-1")  # type: ignore[arg-type]
    # Too many args, too few.
    await saga.step(open_account, close_account, 1, "EUR", "x")  # type: ignore[call-arg, arg-type]
    await saga.step(open_account, close_account, 1)  # type: ignore[arg-type]
    # pass_result=True with an undo that takes the args only.
    await saga.step(open_account, close_account, 1, "EUR", pass_result=True)  # type: ignore[call-arg, call-overload]
    # An undo that takes the result, without pass_result=True.
    await saga.step(open_account, close_account_by_id, 1, "EUR")  # type: ignore[call-arg, arg-type]
    # The result param of the wrong type.
    await saga.step(open_account, close_account_int_id, 1, "EUR", pass_result=True)  # type: ignore[call-arg, call-overload]
    # A result param that does not take None: the undo gets None when the do failed.
    await saga.step(open_account, close_account_no_none, 1, "EUR", pass_result=True)  # type: ignore[call-arg, call-overload]
    # A misspelled option keyword; an option of the wrong type; a kind that does not exist.
    await saga.step(open_account, close_account, 1, "EUR", nmae="open")  # type: ignore[call-overload]
    await saga.step(open_account, close_account, 1, "EUR", start_to_close_timeout=10)  # type: ignore[call-arg, call-overload]
    await saga.step(open_account, close_account, 1, "EUR", kind="pivott")  # type: ignore[call-arg, call-overload]
    await saga.step(open_account, close_account, 1, "EUR", inline="yes")  # type: ignore[call-arg, call-overload]
    # A forgotten await: the step would never run.
    saga.step(open_account, close_account, 1, "EUR")  # type: ignore[unused-coroutine]
    # The result has the do's type.
    _wrong: int = await saga.step(open_account, close_account, 1, "EUR")  # type: ignore[call-arg, arg-type]
