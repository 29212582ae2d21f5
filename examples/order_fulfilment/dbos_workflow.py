"""The DBOS workflow that runs the order saga: `DBOSExecutor` inside a `@DBOS.workflow()`.

Imported only for `python -m examples --backend dbos`: `dbos` is an extra
(`pip install 'sagakit[dbos]'`), and importing this module registers the
workflow with DBOS.
"""

from __future__ import annotations

from dbos import DBOS

from examples.order_fulfilment.models import Order, Receipt
from examples.order_fulfilment.saga import OPTIONS, place_order
from sagakit import SagaReport
from sagakit.dbos import DBOSExecutor

__all__ = ["REPORTS", "place_order_workflow"]

REPORTS: dict[str, SagaReport] = {}
"""Each run's report by workflow id, for the demo in the same process: a failed saga's
`SagaFailed` carries its report to the caller, a successful one returns only its receipt."""


@DBOS.workflow()
async def place_order_workflow(order: Order) -> Receipt:
    """Place one order; a failed order raises `SagaFailed` out of the workflow, compensated."""
    executor = DBOSExecutor(options=OPTIONS)
    try:
        return await executor.run(place_order, order)
    finally:
        if DBOS.workflow_id is not None:
            REPORTS[DBOS.workflow_id] = executor.last_report
