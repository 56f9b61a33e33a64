"""Alarms that fall due while no worker runs are recorded before the command that resolves them.

On the dev server, in real time: the worker is stopped across a deadline, the late command
is admitted by the server while no worker runs, then a worker starts and receives the fired
timer and the command in one activation. The escalation must be recorded once, in time order,
before the command, with its outbox row.
"""

import asyncio
import uuid
from datetime import datetime, timedelta

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain.commands import Reschedule
from domain.events import Escalated, ReportSubmitted
from domain.policy import Policy
from domain.state import VisitStatus
from settings import Settings
from starter.client import VisitClient
from tests import factory as f
from worker import build_worker
from workflows.contract import CommandResult, workflow_id

ADMITTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED


async def wait_past(env: WorkflowEnvironment, instant: datetime) -> None:
    """Poll the server's clock until `instant` has passed (the dev server runs in real time)."""
    while await env.get_current_time() <= instant:  # noqa: ASYNC110  # the server clock has no event to await
        await asyncio.sleep(0.1)


async def admit_update(
    client: VisitClient, visit_id: str, name: str, arg: object
) -> "asyncio.Task[CommandResult]":
    """Send an update while no worker runs; return once the server holds it (admitted)."""
    update_id = str(uuid.uuid4())
    handle = client.handle(visit_id)
    sent = asyncio.create_task(handle.execute_update(name, arg, id=update_id, result_type=CommandResult))
    temporal = client.temporal
    for _ in range(200):
        try:
            polled = await temporal.workflow_service.poll_workflow_execution_update(
                PollWorkflowExecutionUpdateRequest(
                    namespace=temporal.namespace,
                    update_ref=UpdateRef(
                        workflow_execution=WorkflowExecution(workflow_id=workflow_id(visit_id)),
                        update_id=update_id,
                    ),
                    identity="outage-test",
                    wait_policy=WaitPolicy(lifecycle_stage=ADMITTED),
                ),
                timeout=timedelta(seconds=2),
            )
            if polled.stage >= ADMITTED:
                return sent
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.05)
    raise AssertionError("the update never reached the server")


async def test_reschedule_after_an_outage_across_the_approval_deadline_is_escalated_first(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    env = dev_env
    settings = Settings(
        task_queue=task_queue, policy=Policy(plan_lead_working_days=0, remind_plan_approval=False)
    )
    client = VisitClient(env.client, pool, task_queue=task_queue)
    visit_id = f.new_id()
    start = await env.get_current_time() + timedelta(seconds=3)
    async with build_worker(env.client, pool, settings):
        await client.start_visit(f.submit_plan(visit_id, start))
    # No worker runs when the visit time (the approval deadline) comes and goes.
    await wait_past(env, start + timedelta(seconds=1))
    moved = Reschedule(
        command_id=f.new_id("c"),
        actor=f.REP,
        scheduled_start=start + timedelta(days=3),
        reason="Customer away",
    )
    sent = await admit_update(client, visit_id, moved.kind, moved)
    try:
        async with build_worker(env.client, pool, settings):
            result = await asyncio.wait_for(sent, timeout=60)
        assert [e.type for e in result.events] == ["VisitRescheduled"]
        logged = await client.history(visit_id)
        assert [e.type for e in logged] == ["PlanSubmitted", "Escalated", "VisitRescheduled"]
        escalated = logged[1].event
        assert isinstance(escalated, Escalated)
        assert (escalated.concern, escalated.level, escalated.scheduled_for) == ("plan_approval", 1, start)
        rows = await pool.fetch(
            "SELECT kind, concern, level FROM notifications WHERE visit_id = $1 ORDER BY seq", visit_id
        )
        assert [(r["kind"], r["concern"], r["level"]) for r in rows] == [("escalation", "plan_approval", 1)]
    finally:
        await client.handle(visit_id).terminate("test finished")


async def test_report_after_an_outage_across_both_rungs_is_escalated_twice_first(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    env = dev_env
    policy = Policy(
        plan_lead_working_days=0,
        report_deadline="PT3S",
        reminder_before="PT0S",
        escalation_ladder=[{"role": "manager", "after": "PT0S"}, {"role": "director", "after": "PT2S"}],
    )
    settings = Settings(task_queue=task_queue, policy=policy)
    client = VisitClient(env.client, pool, task_queue=task_queue)
    visit_id = f.new_id()
    start = (await env.get_current_time()).replace(microsecond=0) + timedelta(seconds=2)
    async with build_worker(env.client, pool, settings):
        await client.start_visit(f.submit_plan(visit_id, start, approved_by=f.MANAGER))
        await wait_past(env, start)
        # The visit is recorded as ending now (within the clock-skew allowance): the report is
        # due 3 s after its end.
        checked_in = await client.send(visit_id, f.check_in(start, minutes=1))
        due = (await client.state(visit_id)).report_due_at
        assert checked_in.status is VisitStatus.awaiting_report and due is not None
    # No worker runs while the report falls due and both rungs of the ladder pass.
    await wait_past(env, due + timedelta(seconds=3))
    sent = await admit_update(client, visit_id, "submit_report", f.report())
    try:
        async with build_worker(env.client, pool, settings):
            result = await asyncio.wait_for(sent, timeout=60)
        assert [e.type for e in result.events] == ["ReportSubmitted"]
        logged = await client.history(visit_id)
        assert [e.type for e in logged] == [
            "PlanSubmitted",
            "PlanApproved",
            "VisitCheckedIn",
            "Escalated",
            "Escalated",
            "ReportSubmitted",
        ]
        rungs = [(e.event.level, e.event.scheduled_for) for e in logged if isinstance(e.event, Escalated)]
        assert rungs == [(1, due), (2, due + timedelta(seconds=2))]
        report = logged[-1].event
        assert isinstance(report, ReportSubmitted) and report.late
        rows = await pool.fetch(
            "SELECT level, recipient_id FROM notifications WHERE visit_id = $1 ORDER BY seq", visit_id
        )
        assert [(r["level"], r["recipient_id"]) for r in rows] == [(1, f.MANAGER.id), (2, f.DIRECTOR.id)]
    finally:
        await client.handle(visit_id).terminate("test finished")
