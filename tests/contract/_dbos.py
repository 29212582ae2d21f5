"""The one DBOS workflow of the contract tests: it runs any registered saga function.

Registered with DBOS when this module is imported, before the session's DBOS
launches (`tests/conftest.py`). The workflow and the test share one process,
so the saga function it finds in `SAGAS` is the very object the test handed
the runner, and the report of each run is left in `REPORTS` for the runner.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dbos import DBOS

from sagakit import SagaOptions, SagaReport
from sagakit.dbos import DBOSExecutor

from ._shared import CALLABLES, SAGAS, SagaCall

REPORTS: dict[str, SagaReport] = {}
"""The report of each run, by workflow id (a success carries none of its own)."""


@DBOS.workflow(name="sagakit_contract_saga")
async def contract_saga(call: SagaCall) -> Any:
    """Runs `SAGAS[call.saga]` with `DBOSExecutor` on `call.plan`, `.options`, `.resume`."""
    options = SagaOptions.model_validate_json(call.options)
    if call.callables is not None:  # functions JSON cannot carry, from the test's process
        options = SagaOptions.model_validate({**options.model_dump(), **CALLABLES[call.callables]})
    executor = DBOSExecutor(options=options)
    try:
        return await executor.run(SAGAS[call.saga], call.plan, resume=call.resume)
    finally:
        workflow_id = DBOS.workflow_id
        with contextlib.suppress(LookupError):  # refused before the saga started
            REPORTS[str(workflow_id)] = executor.last_report
