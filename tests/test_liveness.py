"""Open visits and plans whose workflow has ended are found, and an operator can revive one.

A terminated (failed, timed out, canceled, completed-too-early or missing) workflow leaves
its stream open in the read model with nobody to follow its deadlines; the log stays
intact, so only a look at Temporal shows it. On the time-skipping server (no visibility
queries) each open stream is described; on the dev server one query lists the running
workflows. The recovery documented in docs/operations.md is run for real on the dev server.
"""

import asyncio
import contextlib
import shlex
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.plan_store import PlanStore
from activities.store import EventStore
from domain.actors import Actor, Role
from domain.calendar import zone
from domain.commands import CancelVisit
from domain.events import Escalated
from domain.month_plan import MonthPlanStatus, MonthPlanSummary, OpenMonthPlan
from domain.policy import Policy
from domain.state import VisitStatus
from domain.summary import VisitSummary, summarize
from settings import Settings
from starter.binaries import find_binary
from starter.client import VisitClient
from starter.history_check import check_history
from starter.liveness import (
    Ending,
    LivenessReport,
    StreamKind,
    check_liveness,
    find_unfollowed,
    open_plan,
)
from starter.plan_client import MonthPlanClient
from tests import factory as f
from tests.helpers import VisitDriver
from tests.test_history_check import engine
from tests.test_month_plan_workflow import plan_month
from tests.test_outage_alarms import wait_past
from worker import build_worker
from workflows.contract import WORKFLOW_TYPE, workflow_id
from workflows.plan_contract import plan_workflow_id

SHANGHAI = "Asia/Shanghai"


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class StandInVisitWorkflow:
    """Stands in for a visit's workflow that ends otherwise than by a terminate: it fails,
    completes too early, or waits to be canceled or timed out.

    Unsandboxed only because it lives in a test module the sandbox would re-import.
    """

    @workflow.run
    async def run(self, how: str) -> None:
        if how == "fail":
            raise ApplicationError("the worker could not read the opening", non_retryable=True)
        if how != "complete":
            await workflow.sleep(timedelta(days=1))


def at(when: datetime) -> str:
    """A time as the findings' sentences write it."""
    return when.astimezone(zone(SHANGHAI)).strftime("%Y-%m-%d %H:%M %Z")


def plan_row(
    status: MonthPlanStatus, approved: int = 0, started: int = 0, not_started: int = 0
) -> MonthPlanSummary:
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return MonthPlanSummary(
        plan_id=f.new_id("rep") + "-2026-12",
        rep_id="rep-wang",
        manager_id="mgr-li",
        director_id=None,
        month="2026-12",
        status=status,
        revision=1,
        planned=3,
        approved=approved,
        declined=0,
        started=started,
        not_started=not_started,
        due_at=datetime(2026, 11, 25, 18, 0, tzinfo=UTC),
        submitted_at=None,
        late=False,
        reminded=False,
        escalation_level=0,
        last_seq=1,
        head_hash="0" * 64,
        updated_at=now,
    )


def test_a_plan_is_open_until_approved_and_every_approved_visit_is_opened_or_refused():
    missing = open_plan(plan_row(MonthPlanStatus.awaiting_plan))
    assert missing is not None and (missing.concern, missing.pending_visits) == ("plan", 0)
    assert missing.workflow_id == f"month-plan-{missing.stream_id}"
    submitted = open_plan(plan_row(MonthPlanStatus.submitted))
    assert submitted is not None and submitted.concern is None
    opening = open_plan(plan_row(MonthPlanStatus.approved, approved=3, started=1, not_started=1))
    assert opening is not None and opening.pending_visits == 1
    assert open_plan(plan_row(MonthPlanStatus.approved, approved=3, started=2, not_started=1)) is None


async def test_ended_workflows_of_open_visits_and_plans_are_found_by_describing_each(env, pool):
    store = EventStore(pool)
    async with engine(env.client, pool) as visits:
        start = (await env.get_current_time()).replace(microsecond=0) + timedelta(days=6)
        terminated, running = f.new_id("lv"), f.new_id("lv")
        for visit_id in (terminated, running):
            await visits.start_visit(f.submit_plan(visit_id, start))
            await visits.send(visit_id, f.approve())
        await visits.handle(terminated).terminate(reason="Opened by mistake")
        plans = MonthPlanClient(env.client, pool, task_queue=visits.task_queue)
        rep = f.new_id("rep")
        month = await plan_month(env)
        opening = OpenMonthPlan(
            command_id=f.new_id("c"),
            actor=Actor(id=rep, role=Role.rep),
            rep_id=rep,
            manager_id="mgr-li",
            month=month,
        )
        await plans.open_month_plan(opening)
        await plans.handle(rep, month).terminate(reason="Opened by mistake")
        failed, completed, canceled = await stand_ins(env.client, "fail", "complete", "cancel")
        rows = [await store.visit(visit_id) for visit_id in (terminated, running)]
        plan = await PlanStore(pool).plan(f"{rep}-{month}")
        report = await find_unfollowed(
            env.client,
            [
                *(r for r in rows if r is not None),
                opened_row(failed),
                opened_row(completed),
                opened_row(canceled),
                opened_row(never := f.new_id("lv")),
                opened_row(f.new_id("lv")).model_copy(update={"status": VisitStatus.closed}),
            ],
            [plan] if plan is not None else [],
            timezone=SHANGHAI,
        )

    assert not report.ok and not report.visibility  # the time-skipping server has no visibility
    assert (report.visits, report.plans, report.running) == (6, 1, 1)
    found = {u.stream_id: u for u in report.unfollowed}
    assert set(found) == {terminated, failed, completed, canceled, never, f"{rep}-{month}"}

    stopped = found[terminated]
    assert (stopped.kind, stopped.workflow_id, stopped.status) == (
        StreamKind.visit,
        workflow_id(terminated),
        "approved",
    )
    assert (stopped.ended, stopped.reason, stopped.concern) == (
        Ending.terminated,
        "Opened by mistake",
        "check_in",
    )
    assert stopped.ended_at is not None and stopped.due_at is not None and stopped.run_id
    assert stopped.message == (
        f"Visit {terminated} is open (approved) but its workflow was terminated at {at(stopped.ended_at)} "
        "(Opened by mistake): it takes no commands and its deadlines are no longer followed (next: "
        f"check-in due {at(stopped.due_at)}). See docs/operations.md to recover it."
    )
    assert found[failed].ended is Ending.failed
    assert found[failed].reason == "the worker could not read the opening"
    assert found[completed].ended is Ending.completed and found[completed].reason is None
    assert "but its workflow was canceled at " in found[canceled].message
    assert found[never].ended is Ending.missing and found[never].ended_at is None
    assert f"but Temporal has no workflow visit-{never}: it takes no commands" in found[never].message
    lost_plan = found[f"{rep}-{month}"]
    assert (lost_plan.kind, lost_plan.workflow_id) == (StreamKind.plan, plan_workflow_id(rep, month))
    assert (lost_plan.status, lost_plan.concern, lost_plan.ended) == (
        "awaiting_plan",
        "plan",
        Ending.terminated,
    )
    assert lost_plan.message.startswith(
        f"Monthly plan {rep}-{month} is open (awaiting_plan) but its workflow"
    )
    assert "(next: plan due " in lost_plan.message


def opened_row(visit_id: str) -> VisitSummary:
    """The read-model row of a visit just submitted (nothing written anywhere)."""
    driver = VisitDriver()
    driver.send(
        f.submit_plan(visit_id, datetime(2026, 12, 7, 2, 0, tzinfo=UTC)), datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert driver.state is not None
    return summarize(driver.state)


async def stand_ins(client: Client, *hows: str) -> list[str]:
    """Visit ids whose workflow (a stand-in) ended as `hows` say: "fail", "complete", "cancel",
    or "time out" (after a second: not on the time-skipping server, which would skip on to
    other tests' timers while it waits)."""
    task_queue = f"tq-{uuid.uuid4().hex}"
    visit_ids = []
    async with Worker(client, task_queue=task_queue, workflows=[StandInVisitWorkflow]):
        for how in hows:
            visit_id = f.new_id("lv")
            handle = await client.start_workflow(
                WORKFLOW_TYPE,
                how,
                id=workflow_id(visit_id),
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=1) if how == "time out" else None,
            )
            if how == "cancel":
                await handle.cancel()
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
            visit_ids.append(visit_id)
    return visit_ids


async def until(
    check: Callable[[], Awaitable[LivenessReport]], wanted: Callable[[LivenessReport], bool]
) -> LivenessReport:
    """Check again until `wanted` (visibility is eventually consistent)."""
    for _ in range(100):
        report = await check()
        if wanted(report):
            return report
        await asyncio.sleep(0.1)
    raise AssertionError(f"never got the wanted report; last: {report}")


async def test_one_visibility_query_lists_the_running_workflows_on_a_server_that_has_it(dev_env, own_pool):
    store, plans = EventStore(own_pool), PlanStore(own_pool)
    async with engine(dev_env.client, own_pool) as visits:
        start = (await dev_env.get_current_time()) + timedelta(days=6)
        terminated, running = f.new_id("lq"), f.new_id("lq")
        for visit_id in (terminated, running):
            await visits.start_visit(f.submit_plan(visit_id, start))
        await visits.handle(terminated).terminate(reason="Opened by mistake")
        [timed_out] = await stand_ins(dev_env.client, "time out")
        await store.append(VisitDriver().send(f.submit_plan(timed_out, start), start - timedelta(days=6)))
        report = await until(
            lambda: check_liveness(dev_env.client, store, plans, timezone=SHANGHAI),
            lambda r: len(r.unfollowed) == 2,
        )
    assert report.visibility and (report.visits, report.plans, report.running) == (3, 0, 1)
    stopped, late = sorted(report.unfollowed, key=lambda u: u.stream_id != terminated)
    assert (late.stream_id, late.ended, late.reason) == (timed_out, Ending.timed_out, None)
    assert "but its workflow timed out at " in late.message
    assert (stopped.stream_id, stopped.ended, stopped.reason) == (
        terminated,
        Ending.terminated,
        "Opened by mistake",
    )
    assert stopped.ended_at is not None and stopped.due_at is not None
    assert stopped.message == (
        f"Visit {terminated} is open (awaiting_approval) but its workflow was terminated at "
        f"{at(stopped.ended_at)} (Opened by mistake): it takes no commands and its deadlines are no "
        f"longer followed (next: plan approval due {at(stopped.due_at)}). See docs/operations.md to "
        "recover it."
    )


OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"


def documented_reset() -> list[str]:
    """The reset command docs/operations.md gives the operator, for its example visit V1."""
    line = next(
        line for line in OPERATIONS.read_text().splitlines() if line.startswith("temporal workflow reset ")
    )
    return shlex.split(line)


async def reset(env: WorkflowEnvironment, visit_id: str) -> None:
    """Run the documented reset on this visit, with the `temporal` CLI the project ships."""
    args = [workflow_id(visit_id) if arg == "visit-V1" else arg for arg in documented_reset()[1:]]
    assert args[:2] == ["workflow", "reset"] and "--type" in args and workflow_id(visit_id) in args
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        find_binary("temporal"),
        *args,
        "--address",
        address,
        "--namespace",
        env.client.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()


async def logged(client: VisitClient, visit_id: str, wanted: Callable[[list[str]], bool]) -> list[str]:
    """Poll the log until its event types are as wanted."""
    for _ in range(300):
        types = [e.type for e in await client.history(visit_id)]
        if wanted(types):
            return types
        await asyncio.sleep(0.1)
    raise AssertionError(f"the log of {visit_id} never got there: {types}")


async def test_a_terminated_visit_is_reported_then_reset_and_its_deadline_fires_again(
    dev_env: WorkflowEnvironment, own_pool: asyncpg.Pool, task_queue: str
) -> None:
    env = dev_env
    store, plans = EventStore(own_pool), PlanStore(own_pool)
    # The plan must be approved by the visit's start: its approval deadline is seconds away.
    settings = Settings(
        task_queue=task_queue, policy=Policy(plan_lead_working_days=0, remind_plan_approval=False)
    )
    client = VisitClient(env.client, own_pool, task_queue=task_queue)
    visit_id = f.new_id("rs")
    start = (await env.get_current_time()).replace(microsecond=0) + timedelta(seconds=4)

    def liveness() -> Awaitable[LivenessReport]:
        return check_liveness(env.client, store, plans, timezone=SHANGHAI)

    async with build_worker(env.client, own_pool, settings):
        try:
            await client.start_visit(f.submit_plan(visit_id, start))
            await client.handle(visit_id).terminate(reason="Terminated by mistake")
            report = await until(liveness, lambda r: bool(r.unfollowed))
            assert [(u.stream_id, u.ended, u.concern, u.due_at) for u in report.unfollowed] == [
                (visit_id, Ending.terminated, "plan_approval", start)
            ]
            # The defect itself: the approval deadline passes and nothing escalates.
            await wait_past(env, start + timedelta(seconds=1))
            assert [e.type for e in await client.history(visit_id)] == ["PlanSubmitted"]

            await reset(env, visit_id)
            # A new run replays the history up to its last workflow task; the timer it had
            # started is pending again, and being past due, fires at once.
            assert await logged(client, visit_id, lambda types: "Escalated" in types) == [
                "PlanSubmitted",
                "Escalated",
            ]
            escalated = (await client.history(visit_id))[1].event
            assert isinstance(escalated, Escalated) and escalated.concern == "plan_approval"
            assert escalated.due_at == escalated.scheduled_for == start  # on record as late as it is
            assert (await liveness()).unfollowed == []
            history = await check_history(env.client, store, visit_id)
            assert history.ok, history.differences
            assert any("was reset from run" in note for note in history.notes)

            # Closing it instead is a command like any other, once it runs again.
            cancel = CancelVisit(command_id=f.new_id("c"), actor=f.MANAGER, reason="Opened by mistake")
            assert (await client.send(visit_id, cancel)).status is VisitStatus.closed
            assert (await liveness()).unfollowed == []
        finally:
            with contextlib.suppress(RPCError):
                await client.handle(visit_id).terminate("test finished")
