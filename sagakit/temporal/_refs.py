"""Steps named rather than imported: an activity or child workflow by its registered name."""

from __future__ import annotations

from typing import Any

from sagakit._exceptions import SagaStateError, StepDefinitionError

__all__ = ["ActivityRef", "ChildWorkflowRef"]


class _Ref:
    # Read by other backends (duck-typed: they never import temporalio) to refuse
    # a ref before anything runs.
    __sagakit_temporal_only__ = True

    _kind = "activity"

    def __init__(self, name: str, *, result_type: type | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            # A StepDefinitionError is a TypeError too, as this was before.
            raise StepDefinitionError(
                f"{type(self).__name__} needs the name the {self._kind} is registered "
                f"under on the worker, got {name!r}"
                + (": pass the function itself as the step, not a ref" if callable(name) else "")
            )
        self.name = name
        self.result_type = result_type
        # The core names a step after its do's __name__.
        self.__name__ = name

    # Typed `Any`, not `NoReturn`: a ref is a step's untyped path (its result has no type).
    def __call__(self, *args: Any) -> Any:
        raise SagaStateError(
            f"{self!r} only runs as a step of a saga on Temporal: "
            f"`await saga.step({self!r}, undo, *args)` inside a TemporalExecutor"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Ref) or type(other) is not type(self):
            return False
        return (self.name, self.result_type) == (
            other.name,
            other.result_type,
        )

    def __hash__(self) -> int:
        return hash((type(self), self.name))


class ActivityRef(_Ref):
    """An activity by the name it is registered under, for activities the workflow cannot import.

    A plain string works too (`saga.step("book_car", "cancel_car", trip)`);
    the ref adds a `result_type` to convert the result into.

    Example:
        ```python
        book = ActivityRef("book_car", result_type=Car)
        car = await saga.step(book, ActivityRef("cancel_car"), trip)
        ```

    Args:
        name: The activity's registered name.
        result_type: Type to convert the result into; `None` leaves it as the
            data converter's default (a dict for a JSON object).
    """


class ChildWorkflowRef(_Ref):
    """A workflow by the name it is registered under, run as a child workflow step.

    Args:
        name: The workflow type's registered name.
        result_type: Type to convert the result into.
    """

    _kind = "workflow"
