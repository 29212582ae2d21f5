"""The public surface: exported names, their docs, and what `import sagakit` pulls in."""

from __future__ import annotations

import subprocess
import sys

import sagakit
import sagakit.backend
import sagakit.inmemory

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
