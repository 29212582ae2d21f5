"""The approval port: how the saga waits for a human, whatever runs it.

The saga only knows `ApprovalPort.wait_for_decision(request_id, within)`.
On Temporal the workflow itself implements it, with a signal and
`workflow.wait_condition(..., timeout=...)`: a durable wait that survives
worker restarts and that the time-skipping test server fast-forwards. In
memory, `ApprovalDesk` implements it on the executor's virtual clock, so a
24-hour timeout passes at once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Protocol

from examples.purchase_approval.models import Decision
from sagakit.inmemory import VirtualClock

__all__ = ["APPROVAL_TIMEOUT", "ApprovalDenied", "ApprovalDesk", "ApprovalPort"]

APPROVAL_TIMEOUT = timedelta(hours=24)
"""How long a request waits for a reviewer before it lapses."""


class ApprovalPort(Protocol):
    """Where the saga waits for a reviewer's decision."""

    async def wait_for_decision(self, request_id: str, within: timedelta) -> Decision:
        """The reviewer's decision, or a `timed_out` one once `within` has passed."""
        ...


class ApprovalDenied(Exception):
    """The request was rejected, or nobody decided in time; the saga unwinds."""

    def __init__(self, decision: Decision) -> None:
        who = f" by {decision.reviewer}" if decision.reviewer else ""
        why = f": {decision.reason}" if decision.reason else ""
        super().__init__(f"purchase {decision.outcome.replace('_', ' ')}{who}{why}")
        self.decision = decision


class ApprovalDesk:
    """The in-memory approval port: reviewers decide with `decide`, time passes virtually.

    A decision made before the saga asks is answered at once. Otherwise the
    desk waits `patience` seconds of real time for one (for tests that decide
    from another task); if none comes, the whole timeout elapses on the
    virtual clock and the decision is `timed_out`.
    """

    def __init__(self, clock: VirtualClock, *, patience: float = 0.0) -> None:
        self._clock = clock
        self._patience = patience
        self._decisions: dict[str, Decision] = {}
        self._arrived: dict[str, asyncio.Event] = {}

    def decide(self, request_id: str, decision: Decision) -> None:
        """Record a reviewer's decision; the first one for a request stands."""
        self._decisions.setdefault(request_id, decision)
        self._event(request_id).set()

    async def wait_for_decision(self, request_id: str, within: timedelta) -> Decision:
        """The decision on `request_id`, or `timed_out` after `within` of virtual time."""
        try:
            async with asyncio.timeout(self._patience):
                await self._event(request_id).wait()
        except TimeoutError:
            self._clock.advance(within)
            return Decision(outcome="timed_out", reason=f"no decision within {within}")
        return self._decisions[request_id]

    def _event(self, request_id: str) -> asyncio.Event:
        return self._arrived.setdefault(request_id, asyncio.Event())
