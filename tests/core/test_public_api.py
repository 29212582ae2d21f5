"""The public surface: exported names, their docs, and what `import sagakit` pulls in."""

from __future__ import annotations

import pickle
import subprocess
import sys
import traceback

import pytest

import sagakit
import sagakit.backend
import sagakit.inmemory
from sagakit import CompensationError, PayloadTooLargeError, Saga, SagaFailed, SagaStatus
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal, options

SAGAKIT_ALL = [
    "CompensationError",
    "DoOutcome",
    "ErrorInfo",
    "NotInStepError",
    "OmittedSteps",
    "OptionsError",
    "ParkedUndo",
    "PayloadTooLargeError",
    "Phase",
    "Resolution",
    "ResolveRequest",
    "RetryPolicy",
    "Saga",
    "SagaDeadlineExceeded",
    "SagaDefinitionError",
    "SagaError",
    "SagaFailed",
    "SagaOptions",
    "SagaReport",
    "SagaStateError",
    "SagaStatus",
    "StepContext",
    "StepDefinitionError",
    "StepKind",
    "StepOptions",
    "StepReport",
    "StepStatus",
    "StepTimeoutError",
    "UndoReport",
    "UndoStatus",
    "__version__",
    "current_step",
    "idempotency_key",
]

BACKEND_ALL = [
    "Backend",
    "Record",
    "Run",
    "Saga",
    "StepCall",
    "UndoFailurePolicy",
    "Unwind",
    "run_saga",
]

INMEMORY_ALL = ["ALWAYS", "Attempt", "Fault", "InMemoryExecutor", "InjectedFault", "VirtualClock"]


class TestExports:
    def test_sagakit_all_is_pinned_and_sorted(self) -> None:
        """sagakit.__all__ is exactly the pinned list, sorted; changing it is an API change."""
        assert sagakit.__all__ == SAGAKIT_ALL
        assert sagakit.__all__ == sorted(sagakit.__all__)

    def test_backend_all_is_pinned_and_sorted(self) -> None:
        """The backend author's seam lives in sagakit.backend, not at the top level."""
        assert sagakit.backend.__all__ == BACKEND_ALL
        assert not {"Backend", "StepCall", "run_saga"} & set(sagakit.__all__)

    def test_inmemory_all_is_pinned_and_sorted(self) -> None:
        """sagakit.inmemory.__all__ is exactly the pinned list, sorted."""
        assert sagakit.inmemory.__all__ == INMEMORY_ALL
        assert sagakit.inmemory.__all__ == sorted(sagakit.inmemory.__all__)

    def test_every_exported_name_exists_and_is_documented(self) -> None:
        """Every exported class and function exists and has a docstring of its own."""
        for module in (sagakit, sagakit.backend, sagakit.inmemory):
            for name in module.__all__:
                obj = getattr(module, name)
                if name in ("__version__", "ALWAYS"):
                    continue  # constants: documented where they are defined
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
                assert obj.__doc__.strip(), name

    def test_exceptions_share_one_root(self) -> None:
        """Every exception sagakit exports derives from SagaError."""
        for name in sagakit.__all__:
            obj = getattr(sagakit, name)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                assert issubclass(obj, sagakit.SagaError), name


async def failed_saga() -> SagaFailed:
    """A SagaFailed as a run raises it: step b fails, then a's undo fails too."""
    journal = Journal()
    do_a, undo_a = journal.step("a", undo_fail=KeyError("a's undo"))
    do_b, undo_b = journal.step("b", fail=ValueError("b fails"))

    async def saga(s: Saga) -> None:
        await s.step(do_a, undo_a)
        await s.step(do_b, undo_b)

    with pytest.raises(SagaFailed) as info:
        await InMemoryExecutor(options()).run(saga)
    return info.value


class TestExceptionsByTheirPublicPath:
    def test_every_exported_exception_is_named_from_sagakit(self) -> None:
        """Each exception in sagakit.__all__ names `sagakit` as its module, as users import it."""
        for name in sagakit.__all__:
            obj = getattr(sagakit, name)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                assert obj.__module__ == "sagakit", name
                assert repr(obj) == f"<class 'sagakit.{name}'>"

    async def test_a_traceback_names_sagakit_saga_failed(self) -> None:
        """The traceback's last line reads `sagakit.SagaFailed: ...`, not the private module."""
        error = await failed_saga()
        text = "".join(traceback.format_exception(error))
        assert text.splitlines()[-1].startswith("sagakit.SagaFailed: saga ")
        assert "sagakit._exceptions" not in text

    async def test_saga_failed_pickles_with_its_report_and_compensation_error(self) -> None:
        """A SagaFailed round-trips through pickle: message, report, the failed undos."""
        error = await failed_saga()
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is SagaFailed
        assert str(back) == str(error)
        assert back.report == error.report
        assert back.report.status is SagaStatus.COMPENSATION_FAILED
        group = back.compensation_error
        assert isinstance(group, CompensationError)
        assert [repr(e) for e in group.exceptions] == ['KeyError("a\'s undo")']
        assert group.report == error.report

    async def test_saga_failed_pickles_with_its_cause(self) -> None:
        """Its `__cause__` round-trips too (DBOS pickles errors); one that cannot is described."""
        error = await failed_saga()
        cause = error.__cause__
        assert cause is not None
        back = pickle.loads(pickle.dumps(error))
        assert (type(back.__cause__), str(back.__cause__)) == (type(cause), str(cause))

        class Unpicklable(Exception):  # a local class: pickle cannot find it by name
            pass

        error.__cause__ = Unpicklable("the lock is held")
        back = pickle.loads(pickle.dumps(error))
        assert type(back.__cause__) is sagakit.SagaError
        assert str(back.__cause__).startswith("Unpicklable: the lock is held")

    def test_every_exported_exception_pickles(self) -> None:
        """The others round-trip too, PayloadTooLargeError with its size and limit."""
        too_large = pickle.loads(pickle.dumps(PayloadTooLargeError("step 'b'", 3 << 20, 2 << 20)))
        assert (str(too_large), too_large.size, too_large.limit) == (
            str(PayloadTooLargeError("step 'b'", 3 << 20, 2 << 20)),
            3 << 20,
            2 << 20,
        )
        for name in (
            "SagaError",
            "SagaDefinitionError",
            "StepDefinitionError",
            "OptionsError",
            "SagaStateError",
            "NotInStepError",
            "StepTimeoutError",
        ):
            cls = getattr(sagakit, name)
            back = pickle.loads(pickle.dumps(cls("what went wrong")))
            assert (type(back), str(back)) == (cls, "what went wrong")


class TestImportCost:
    def test_import_sagakit_pulls_in_no_backend_libraries(self) -> None:
        """`import sagakit` loads neither temporalio nor tenacity."""
        code = (
            "import sys, sagakit\n"
            "print(sorted(m for m in ('temporalio', 'tenacity') if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"
