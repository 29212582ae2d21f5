"""Order fulfilment, the flagship: reserve inventory, charge payment, fulfil; undo in reverse.

- `models.py`: the pydantic data the steps pass around.
- `services.py`: fake inventory, payment and warehouse services on SQLite,
  idempotent the way real ones must be.
- `activities.py`: the do/undo activities calling them.
- `saga.py`: the saga itself, the same on every backend.
- `workflow.py`: the Temporal workflow that runs it.
- `dbos_workflow.py`: the DBOS workflow that runs it (`python -m examples --backend dbos`).
"""
