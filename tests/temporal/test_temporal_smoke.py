from __future__ import annotations

import pytest
from temporalio.client import Client

from conftest import new_id, saga_worker
from workflows.activities import ALL, JOURNAL, Job, events
from workflows.sagas import StepsWorkflow

pytestmark = pytest.mark.temporal


async def test_success(client: Client) -> None:
    job = Job(run=new_id("run"))
    async with saga_worker(client, workflows=[StepsWorkflow], activities=ALL) as w:
        result = await client.execute_workflow(
            StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
        )
    assert result == ["do-a", "do-b", "do-c", "do-d", "do-e"]
    assert events(job.run) == ["do:a", "do:b", "do:c", "do:d", "do:e"]
    print(JOURNAL[job.run])


async def test_fail_last(client: Client) -> None:
    job = Job(run=new_id("run"), fail=["e"])
    async with saga_worker(client, workflows=[StepsWorkflow], activities=ALL) as w:
        with pytest.raises(Exception) as ei:
            await client.execute_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
    print(repr(ei.value), repr(ei.value.cause), repr(ei.value.cause.cause))
    print(events(job.run))
