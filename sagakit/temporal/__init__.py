"""Run sagas inside Temporal workflows.

`TemporalExecutor` runs a saga function in a `@workflow.run` method: each do
and undo becomes an activity (or a local activity, a child workflow, or
workflow code run inline in a step said `inline=True`). `SagakitPlugin` goes
on every worker: it carries `sagakit.idempotency_key()` to activities and
child workflows, and passes `sagakit` through the workflow sandbox.
`saga.sub` given a child workflow's `@workflow.run` method runs it as a child
workflow saga, whose undo plan joins the parent's stack when it succeeds.
`report_from_failure` reads the report back from a failed saga's workflow
failure. `parked` and `resolve` let an operator finish a saga whose undos
parked (`SagaOptions(on_undo_failure="park")`).
"""

from sagakit.temporal._executor import PAYLOAD_LIMIT, REPORT_QUERY, TemporalExecutor
from sagakit.temporal._failure import SAGA_FAILED_TYPE, report_from_failure
from sagakit.temporal._header import STEP_HEADER
from sagakit.temporal._operate import (
    RESOLVE_UPDATE,
    SAGA_STATUS,
    parked,
    resolve,
    saga_search_attributes,
)
from sagakit.temporal._plugin import SagakitInterceptor, SagakitPlugin
from sagakit.temporal._refs import ActivityRef, ChildWorkflowRef

__all__ = [
    "PAYLOAD_LIMIT",
    "REPORT_QUERY",
    "RESOLVE_UPDATE",
    "SAGA_FAILED_TYPE",
    "SAGA_STATUS",
    "STEP_HEADER",
    "ActivityRef",
    "ChildWorkflowRef",
    "SagakitInterceptor",
    "SagakitPlugin",
    "TemporalExecutor",
    "parked",
    "report_from_failure",
    "resolve",
    "saga_search_attributes",
]
