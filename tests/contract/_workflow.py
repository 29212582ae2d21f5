"""The one workflow of the contract tests: it runs any registered saga function.

The sandbox re-imports this module; sagakit and `_shared` (the activities,
the journal and the saga registry) are passed through, so the saga function
the workflow looks up is the very object the test handed the runner.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sagakit import SagaOptions
    from sagakit.temporal import TemporalExecutor

    from ._shared import CALLABLES, SAGAS, SagaCall


@workflow.defn
class ContractSaga:
    """Runs `SAGAS[call.saga]` on `call.plan`, `call.options` and `call.resume`."""

    @workflow.run
    async def run(self, call: SagaCall) -> Any:
        options = SagaOptions.model_validate_json(call.options)
        if call.callables is not None:  # functions JSON cannot carry, from the test's process
            fields = CALLABLES[call.callables]
            options = SagaOptions.model_validate({**options.model_dump(), **fields})
        return await TemporalExecutor(options=options).run(
            SAGAS[call.saga], call.plan, resume=call.resume
        )
