"""Undo plans: the undos a saga registered and has not run, as data (API.md §11).

`saga.undo_plan()` takes them off the run's records (`sagakit._record.take`);
`run(fn, *args, resume=plan)` puts them at the bottom of a new run's stack
(`sagakit._record.carry`, after `check_plan`), each with the idempotency key
its do saw and a fresh `seq`. So a saga can continue as new on Temporal
and still unwind what earlier runs did; a child workflow's sub-saga hands its
plan back to its parent the same way.

This module holds the models alone, below the seam (`Backend.pack_plan` takes
one). The core makes the plan of the records, with the undo and its args as they
are; the backend packs it for travel (`Backend.pack_plan`: on Temporal each
undo by activity name and its args as payloads, and its size checked) and
unpacks each undo to run it (`Backend.unpack_undo`). Options shared by many
undos are written once, and a key is its run's saga id (written once) and
its seq, so a plan grows by little more than each undo's args.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sagakit._context import DoOutcome
from sagakit._exceptions import SagaDefinitionError, cut
from sagakit._options import StepOptions

__all__ = ["PlannedUndo", "UndoPlan", "check_plan"]


class PlannedUndo(BaseModel):
    """One pending undo of an `UndoPlan`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run: int = Field(default=0, ge=0)
    """Index in `UndoPlan.runs` of the saga run whose step it undoes."""
    seq: int = Field(ge=1)
    """The step's `seq` in that run: the key is `f"{runs[run]}#{seq}"`."""
    name: str = Field(min_length=1)
    """The step's name."""
    undo: Any
    """The undo: in memory the callable itself; on Temporal the activity's name."""
    args: list[Any] = []
    """Its args: in memory the values; on Temporal the payloads (`Backend.pack_plan`)."""
    options: int = Field(default=0, ge=0)
    """Index in `UndoPlan.options` of the step's options."""
    outcome: DoOutcome = DoOutcome.SUCCEEDED
    """How its do ended, which the undo is told (`current_step().do_outcome`)."""
    result: Any = None
    """The do's result, for an undo with `pass_result` (else `None`)."""
    sub: str | None = None
    """The sub-saga the step belonged to, for the report."""


class UndoPlan(BaseModel):
    """The undos a saga registered and has not run, in registration order, as data.

    From `saga.undo_plan()`; given to an executor's `run(fn, *args, resume=plan)`,
    a new run starts with these undos at the bottom of its stack. On Temporal
    it is a pydantic model that round-trips through the data converter
    (`pydantic_data_converter`), so it can be a `continue_as_new` arg.
    """

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = 1
    """The plan's format."""
    runs: list[str] = []
    """The saga ids of the runs whose steps it carries, each once."""
    options: list[StepOptions] = []
    """The distinct options of its undos, each once."""
    undos: list[PlannedUndo] = []
    """The pending undos, in registration order (the last is undone first)."""
    deadline: datetime | None = None
    """The first run's deadline (`SagaOptions.deadline`), which the next run keeps."""

    @model_validator(mode="after")
    def _indices(self) -> UndoPlan:
        for i, u in enumerate(self.undos):
            if u.outcome is DoOutcome.PENDING:
                raise ValueError(f"undos[{i}]: a planned undo's do has ended, not 'pending'")
            if u.run >= len(self.runs) or u.options >= len(self.options):
                raise ValueError(
                    f"undos[{i}] refers to run {u.run} and options {u.options}, but the "
                    f"plan lists {len(self.runs)} run(s) and {len(self.options)} option set(s)"
                )
        return self

    def key(self, undo: PlannedUndo) -> str:
        """The idempotency key `undo`'s step had: its run's saga id, `#`, its seq."""
        return f"{self.runs[undo.run]}#{undo.seq}"

    def __len__(self) -> int:
        return len(self.undos)


def check_plan(plan: Any) -> UndoPlan:
    """`plan` as an `UndoPlan`: a model as it is, a dict (JSON) validated.

    Raises:
        SagaDefinitionError: it is not a plan, or a malformed one (hand-edited
            JSON), named field by field; before any step runs.
    """
    if isinstance(plan, UndoPlan):
        return plan
    try:
        return UndoPlan.model_validate(plan)
    except ValidationError as e:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(plan)'}: {err['msg']}"
            for err in e.errors()[:5]
        )
        raise SagaDefinitionError(
            f"resume= takes the UndoPlan that saga.undo_plan() returned; this one is "
            f"malformed ({cut(where, 600)}): nothing ran"
        ) from None
