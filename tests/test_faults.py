"""Faults: an activity that dies after its commit, a worker that goes away mid-command.

No accepted command is lost and none is applied twice.
"""

import asyncio
from datetime import timedelta

from temporalio import activity
from temporalio.worker import Worker

from activities.models import AppendRequest, AppendResult
from activities.store import EventStore
from activities.visit_activities import VisitActivities
from domain.policy import Policy
from settings import Settings
from starter.client import VisitClient
from tests import factory as f
from worker import build_worker
from workflows.visit import VisitWorkflow


async def wait_until_admitted(client: VisitClient, visit_id: str) -> None:
    """Poll the workflow's description until the server holds the update (no fixed sleep)."""
    for _ in range(200):
        described = await client.handle(visit_id).describe()
        if described.raw_description.pending_workflow_task.state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the update never reached the server")


class LosesReplyAfterCommit(VisitActivities):
    """Commits each append, then fails the first attempt as if the worker died before replying."""

    def __init__(self, store: EventStore, policy: Policy) -> None:
        super().__init__(store, policy)
        self.failed: set[str] = set()

    @activity.defn(name="append_events")
    async def append_events(self, req: AppendRequest) -> AppendResult:
        result = await super().append_events(req)
        first = req.events[0].event_id
        if first not in self.failed:
            self.failed.add(first)
            raise RuntimeError("worker lost before reporting the append")
        return result


async def test_append_retried_after_commit_writes_each_event_once(env, pool, task_queue):
    flaky = LosesReplyAfterCommit(EventStore(pool), Policy())
    worker = Worker(
        env.client,
        task_queue=task_queue,
        workflows=[VisitWorkflow],
        activities=[flaky.append_events, flaky.load_policy],
    )
    async with worker:
        client = VisitClient(env.client, pool, task_queue=task_queue)
        visit_id = f.new_id()
        start = (await env.get_current_time()) + timedelta(days=5)
        await client.start_visit(f.submit_plan(visit_id, start))
        approved = await client.send(visit_id, f.approve())
        logged = await client.history(visit_id)
        assert [e.type for e in logged] == ["PlanSubmitted", "PlanApproved"]
        assert approved.events[0].seq == 2
        assert len(flaky.failed) == 2  # both appends really were retried
        await client.handle(visit_id).terminate("test finished")


async def test_command_sent_while_no_worker_runs_is_applied_once_when_one_returns(dev_env, pool, task_queue):
    # The dev server, not the time-skipping one: this is about a real server handing a
    # waiting update to whichever worker comes back.
    env = dev_env
    settings = Settings(task_queue=task_queue)
    client = VisitClient(env.client, pool, task_queue=task_queue)
    visit_id = f.new_id()
    async with build_worker(env.client, pool, settings):
        start = (await env.get_current_time()) + timedelta(days=5)
        await client.start_visit(f.submit_plan(visit_id, start))
    approval = f.approve()
    pending = asyncio.create_task(client.send(visit_id, approval))
    await wait_until_admitted(client, visit_id)
    assert not pending.done()
    async with build_worker(env.client, pool, settings):
        result = await asyncio.wait_for(pending, timeout=30)
        assert not result.duplicate
        again = await client.send(visit_id, approval)
        assert again.duplicate and again.events == result.events
        assert [e.type for e in await client.history(visit_id)] == ["PlanSubmitted", "PlanApproved"]
        await client.handle(visit_id).terminate("test finished")
