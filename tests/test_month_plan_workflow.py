"""Workflow tier: monthly plans on Temporal's time-skipping server with a real PostgreSQL.

A sales team's month, simulated: plans are opened in the month before the one they plan,
chased when late, submitted, returned, revised and approved in part; each approved visit
opens as a visit workflow of its own, exactly once. Time is skipped, never waited out.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.customers import CustomerStore
from activities.plan_activities import PlanActivities
from activities.plan_models import PlanAppendRequest, PlanAppendResult
from activities.plan_store import PlanStore
from activities.store import EventStore
from activities.visit_activities import VisitActivities
from domain.actors import Actor, Role
from domain.customers import CustomerRecord
from domain.models import CustomerTier
from domain.month_plan import (
    ApproveMonthPlan,
    MonthPlanEscalated,
    MonthPlanReminderSent,
    MonthPlanStatus,
    MonthPlanSubmitted,
    OpenMonthPlan,
    PlannedVisitNotStarted,
    PlannedVisitStarted,
    ReturnMonthPlan,
    SubmitMonthPlan,
    plan_due_at,
)
from domain.plan_checks import Rule
from domain.planning import PlannedVisit, PlanRules
from domain.policy import Policy
from domain.state import VisitStatus
from settings import Settings
from starter.client import CommandRefused, VisitClient, VisitNotFound
from starter.plan_client import MonthPlanClient
from tests import factory as f
from worker import build_worker
from workflows.contract import OPENED, CommandResult, workflow_id
from workflows.month_plan import MonthPlanWorkflow
from workflows.plan_contract import PlanCommandResult, plan_workflow_id
from workflows.visit import VisitWorkflow

SHANGHAI = ZoneInfo("Asia/Shanghai")
MANAGER = Actor(id="mgr-li", role=Role.manager)
DIRECTOR = Actor(id="dir-zhao", role=Role.director)


def near(a: datetime, b: datetime) -> bool:
    return abs(a - b) < timedelta(seconds=2)


async def skip_to(env: WorkflowEnvironment, instant: datetime) -> None:
    now = await env.get_current_time()
    if instant > now:
        await env.sleep(instant - now)


@dataclass
class Team:
    """One rep of a sales team, their customers in the registry, and the month they plan."""

    rep: Actor
    month: str
    customers: list[CustomerRecord]
    plans: MonthPlanClient
    visits: VisitClient
    visit_ids: list[str] = field(default_factory=list)

    @property
    def due(self) -> datetime:
        return plan_due_at(self.month, PlanRules(), Policy())

    def day(self, day: int, hour: int = 10) -> datetime:
        year, month = (int(p) for p in self.month.split("-"))
        return datetime(year, month, day, hour, 0, tzinfo=SHANGHAI)

    def visit(self, n: int, customer: int, day: int) -> PlannedVisit:
        visit_id = f"{self.rep.id}-V{n}"
        if visit_id not in self.visit_ids:
            self.visit_ids.append(visit_id)
        return PlannedVisit(
            visit_id=visit_id,
            customer_id=self.customers[customer].id,
            scheduled_start=self.day(day),
            duration_minutes=30,
            purpose=f"Monthly visit {n}",
        )

    def three_visits(self) -> list[PlannedVisit]:
        return [self.visit(1, 0, 8), self.visit(2, 1, 15), self.visit(3, 0, 22)]

    async def open(self, command_id: str | None = None) -> PlanCommandResult:
        return await self.plans.open_month_plan(
            OpenMonthPlan(
                command_id=command_id or f.new_id("c"),
                actor=self.rep,
                rep_id=self.rep.id,
                manager_id=MANAGER.id,
                director_id=DIRECTOR.id,
                month=self.month,
            )
        )

    async def submit(self, visits: list[PlannedVisit], actor: Actor | None = None):
        command = SubmitMonthPlan(command_id=f.new_id("c"), actor=actor or self.rep, visits=visits)
        return await self.plans.submit_month_plan(self.rep.id, self.month, command)

    def approval(self, visit_ids: list[str] | None = None, actor: Actor = MANAGER) -> ApproveMonthPlan:
        return ApproveMonthPlan(
            command_id=f.new_id("c"), actor=actor, visit_ids=visit_ids, comment="Go ahead"
        )

    async def visit_opened(self, visit_id: str) -> list[str]:
        """The visit's logged event types once its opening is committed (a started workflow
        records its plan a moment later)."""
        await self.visits.handle(visit_id).execute_update(OPENED, None, result_type=CommandResult)
        return [e.type for e in await self.visits.history(visit_id)]

    async def history_types(self) -> list[str]:
        return [e.type for e in await self.plans.history(self.rep.id, self.month)]


async def plan_month(env: WorkflowEnvironment) -> str:
    """The month after next: its plan is due at the end of next month, more than a day away."""
    now = (await env.get_current_time()).astimezone(SHANGHAI)
    following = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    after = (following + timedelta(days=32)).replace(day=1)
    return f"{after:%Y-%m}"


@asynccontextmanager
async def sales_team(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, *, worker: bool = True
) -> AsyncIterator[Team]:
    """A rep with two customers (core and potential) and, unless told otherwise, a worker.

    At the end the rep's plan and its visits are terminated, before the worker stops: the
    time-skipping server does not skip time past activities no worker will ever answer.
    """
    rep = Actor(id=f"rep-{uuid.uuid4().hex[:8]}", role=Role.rep)
    customers = [
        CustomerRecord(
            id=f"{rep.id}-C1",
            name="Acme Trading",
            tier=CustomerTier.core,
            owner_rep_id=rep.id,
            manager_id=MANAGER.id,
        ),
        CustomerRecord(
            id=f"{rep.id}-C2",
            name="杭州西湖贸易",
            tier=CustomerTier.potential,
            owner_rep_id=rep.id,
            manager_id=MANAGER.id,
        ),
    ]
    await CustomerStore(pool).upsert_many(customers)
    team = Team(
        rep=rep,
        month=await plan_month(env),
        customers=customers,
        plans=MonthPlanClient(env.client, pool, task_queue=task_queue),
        visits=VisitClient(env.client, pool, task_queue=task_queue),
    )

    async def finish() -> None:
        # Visits opened by the plan first finish opening, while the worker still runs: a
        # workflow ended with an activity in flight can leave the time-skipping server
        # waiting for that activity before it skips time again.
        for visit_id in team.visit_ids if worker else ():
            with contextlib.suppress(RPCError, WorkflowUpdateFailedError, TimeoutError):
                await asyncio.wait_for(team.visit_opened(visit_id), timeout=10)
        for handle in [
            team.plans.handle(rep.id, team.month),
            *(team.visits.handle(v) for v in team.visit_ids),
        ]:
            with contextlib.suppress(RPCError):
                await handle.terminate("test finished")

    if not worker:
        try:
            yield team
        finally:
            await finish()
        return
    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        try:
            yield team
        finally:
            await finish()


async def refused(call, rule: str) -> CommandRefused:
    with pytest.raises(CommandRefused) as caught:
        await call
    assert caught.value.rule == rule, caught.value.message
    return caught.value


# --- the deadline -------------------------------------------------------------------------------


async def test_a_missing_plan_is_reminded_then_escalated_at_the_exact_instants_and_a_late_one_is_marked(
    env, pool, task_queue
):
    async with sales_team(env, pool, task_queue) as team:
        await team.open()
        await skip_to(env, team.due + timedelta(hours=25))
        events = await team.plans.history(team.rep.id, team.month)
        assert [e.type for e in events] == [
            "MonthPlanOpened",
            "MonthPlanReminderSent",
            "MonthPlanEscalated",
            "MonthPlanEscalated",
        ]
        reminder, first, second = (e.event for e in events[1:])
        assert isinstance(reminder, MonthPlanReminderSent) and reminder.recipient == team.rep
        assert near(events[1].occurred_at, team.due - timedelta(hours=24))
        assert isinstance(first, MonthPlanEscalated) and (first.level, first.recipient) == (1, MANAGER)
        assert near(events[2].occurred_at, team.due)
        assert isinstance(second, MonthPlanEscalated) and (second.level, second.recipient) == (2, DIRECTOR)
        assert near(events[3].occurred_at, team.due + timedelta(hours=24))
        rows = await pool.fetch(
            "SELECT kind, recipient_id, level FROM plan_notifications WHERE plan_id = $1 ORDER BY seq",
            events[0].plan_id,
        )
        assert [(r["kind"], r["recipient_id"], r["level"]) for r in rows] == [
            ("reminder", team.rep.id, None),
            ("escalation", MANAGER.id, 1),
            ("escalation", DIRECTOR.id, 2),
        ]
        summary = await team.plans.summary(team.rep.id, team.month)
        assert summary is not None and summary.status is MonthPlanStatus.awaiting_plan
        assert summary.escalation_level == 2

        # The plan arrives a day late: it is taken, marked late, and the checks say so.
        result = await team.submit(team.three_visits())
        assert result.status is MonthPlanStatus.submitted
        assert Rule.late in {finding.rule for finding in result.findings}
        submitted = (await team.plans.history(team.rep.id, team.month))[-1].event
        assert isinstance(submitted, MonthPlanSubmitted) and submitted.late
        summary = await team.plans.summary(team.rep.id, team.month)
        assert summary is not None and summary.late and summary.planned == 3


async def test_a_plan_submitted_in_time_is_not_chased_but_its_review_is_until_the_month_is_over(
    env, pool, task_queue
):
    async with sales_team(env, pool, task_queue) as team:
        await team.open()
        await team.submit(team.three_visits())
        month_over = team.day(1, hour=0) + timedelta(days=40)
        await skip_to(env, month_over + timedelta(days=3))
        logged = await team.plans.history(team.rep.id, team.month)
        chased = [e.event for e in logged if isinstance(e.event, MonthPlanReminderSent | MonthPlanEscalated)]
        # The rep owes nothing; the manager owes a review, reminded, then escalated up the
        # ladder and repeated to the director daily, until the planned month is over.
        assert chased and {e.concern for e in chased} == {"plan_review"}
        first, *escalations = chased
        assert isinstance(first, MonthPlanReminderSent) and first.recipient == MANAGER
        assert [(e.level, e.repeat, e.recipient.id) for e in escalations[:3]] == [
            (1, 0, MANAGER.id),
            (2, 0, DIRECTOR.id),
            (2, 1, DIRECTOR.id),
        ]
        assert all(e.scheduled_for < team.day(1, hour=0) + timedelta(days=31) for e in escalations)


# --- approval opens the visits ------------------------------------------------------------------


async def test_a_partly_approved_plan_starts_exactly_the_approved_visits_once(env, pool, task_queue):
    async with sales_team(env, pool, task_queue) as team:
        opened = await team.open("open-1")
        await team.submit(team.three_visits())
        v1, v2, v3 = team.visit_ids
        approval = team.approval([v1, v3])
        first = await team.plans.approve_month_plan(team.rep.id, team.month, approval)
        again = await team.plans.approve_month_plan(team.rep.id, team.month, approval)  # a retried approval
        assert first.status is MonthPlanStatus.approved and not first.duplicate
        assert again.duplicate and again.events == first.events

        final = await team.plans.result(team.rep.id, team.month)
        assert final.complete and final.started == {v1: workflow_id(v1), v3: workflow_id(v3)}
        assert (final.approved, final.declined) == ([v1, v3], [v2])
        assert await team.history_types() == [
            "MonthPlanOpened",
            "MonthPlanSubmitted",
            "MonthPlanApproved",
            "PlannedVisitStarted",
            "PlannedVisitStarted",
        ]
        for visit_id, customer in ((v1, team.customers[0]), (v3, team.customers[0])):
            assert await team.visit_opened(visit_id) == ["PlanSubmitted", "PlanApproved"]
            state = await team.visits.state(visit_id)
            assert state.status is VisitStatus.approved and state.rep_id == team.rep.id
            assert state.approved_by == MANAGER  # the log names who approved the month's plan
            assert state.plan.customer.id == customer.id and state.plan.customer.name == customer.name
            logged = await team.visits.history(visit_id)
            assert [e.type for e in logged] == ["PlanSubmitted", "PlanApproved"]
            # Opened by one command derived from the plan, so a repeat would be recognised.
            assert {e.command_id for e in logged} == {f"{first.plan_id}/{visit_id}"}
        with pytest.raises(VisitNotFound):
            await team.visits.state(v2)
        assert await team.visits.history(v2) == []

        # The approval sent once more after the plan has ended: the first result, nothing new.
        late_repeat = await team.plans.approve_month_plan(team.rep.id, team.month, approval)
        assert late_repeat.duplicate and late_repeat.events == first.events
        summary = await team.plans.summary(team.rep.id, team.month)
        assert summary is not None and (summary.approved, summary.declined, summary.started) == (2, 1, 2)
        # One plan per rep and month, even once its workflow has ended.
        reopened = await team.open("open-1")
        assert reopened.duplicate and reopened.events == opened.events
        await refused(team.open("open-2"), "plan.exists")


async def test_a_returned_plan_is_revised_and_approved(env, pool, task_queue):
    async with sales_team(env, pool, task_queue) as team:
        await team.open()
        await team.submit(team.three_visits()[:2])
        back = ReturnMonthPlan(command_id=f.new_id("c"), actor=MANAGER, reason="Visit Acme twice this month")
        returned = await team.plans.return_month_plan(team.rep.id, team.month, back)
        assert returned.status is MonthPlanStatus.returned
        await refused(
            team.plans.approve_month_plan(team.rep.id, team.month, team.approval()),
            "state.approve_month_plan",
        )
        revised = await team.submit(team.three_visits())
        assert revised.status is MonthPlanStatus.submitted
        state = await team.plans.month_plan_state(team.rep.id, team.month)
        assert (state.revision, len(state.visits), state.last_reason) == (2, 3, "Visit Acme twice this month")
        await team.plans.approve_month_plan(team.rep.id, team.month, team.approval(actor=DIRECTOR))
        final = await team.plans.result(team.rep.id, team.month)
        assert sorted(final.started) == sorted(team.visit_ids)
        assert final.approved_by == DIRECTOR
        for visit_id in team.visit_ids:
            assert await team.visit_opened(visit_id) == ["PlanSubmitted", "PlanApproved"]


async def test_a_visit_id_already_in_use_is_reported_on_the_plan_and_the_others_start(env, pool, task_queue):
    async with sales_team(env, pool, task_queue) as team:
        visits = team.three_visits()
        taken = team.visit_ids[1]
        await team.visits.start_visit(f.submit_plan(taken, team.day(15)))
        await team.open()
        await team.submit(visits)
        await team.plans.approve_month_plan(team.rep.id, team.month, team.approval())
        final = await team.plans.result(team.rep.id, team.month)
        assert sorted(final.started) == sorted(set(team.visit_ids) - {taken})
        assert final.not_started[taken].rule == "visit.exists"
        assert "already in use" in final.not_started[taken].reason
        last = (await team.plans.history(team.rep.id, team.month))[-2:]
        assert {type(e.event) for e in last} == {PlannedVisitStarted, PlannedVisitNotStarted}
        # The visit that held the id is untouched: still the one opened by its own plan.
        assert [e.type for e in await team.visits.history(taken)] == ["PlanSubmitted"]


# --- refusals -----------------------------------------------------------------------------------


async def test_refusals_name_their_rule_and_record_nothing(env, pool, task_queue):
    async with sales_team(env, pool, task_queue) as team:
        await team.open("open-1")
        repeat = await team.plans.open_month_plan(
            OpenMonthPlan(
                command_id="open-1", actor=team.rep, rep_id=team.rep.id, manager_id=MANAGER.id,
                director_id=DIRECTOR.id, month=team.month,
            )
        )  # fmt: skip
        assert repeat.duplicate
        await refused(team.open("open-2"), "plan.exists")
        other = Actor(id="rep-someone-else", role=Role.rep)
        await refused(team.submit(team.three_visits(), actor=other), "role.submit_month_plan")
        await refused(
            team.submit(team.three_visits(), actor=Actor(id="aud", role=Role.auditor)), "role.auditor"
        )
        await refused(
            team.plans.approve_month_plan(team.rep.id, team.month, team.approval()),
            "state.approve_month_plan",
        )
        # Blocking findings of the checks: a visit outside the month, a customer not the rep's.
        outside = team.visit(9, 0, 1).model_copy(update={"scheduled_start": team.day(1) - timedelta(days=2)})
        violation = await refused(team.submit([*team.three_visits(), outside]), "plan.findings")
        assert "plan.outside_month" in violation.message and outside.visit_id in violation.message
        stranger = team.visit(8, 0, 9).model_copy(update={"customer_id": "C-not-ours"})
        violation = await refused(team.submit([stranger]), "plan.findings")
        assert "plan.unknown_customer" in violation.message
        await refused(team.submit([]), "plan.empty")
        # A malformed command is refused in one line naming the field.
        handle = team.plans.handle(team.rep.id, team.month)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update("approve_month_plan", {"command_id": "x"})
        assert isinstance(caught.value.cause, ApplicationError)
        assert caught.value.cause.type == "command.invalid" and "actor" in caught.value.cause.message
        # The same command id for another command.
        submitted = await team.submit(team.three_visits())
        reused = SubmitMonthPlan(
            command_id=submitted.command_id, actor=team.rep, visits=team.three_visits()[:1]
        )
        await refused(team.plans.submit_month_plan(team.rep.id, team.month, reused), "command.id_reused")
        await refused(
            team.plans.approve_month_plan(team.rep.id, team.month, team.approval(["nope"])),
            "plan.unknown_visit",
        )
        await refused(
            team.plans.approve_month_plan(team.rep.id, team.month, team.approval(actor=team.rep)),
            "role.approve_month_plan",
        )
        assert await team.history_types() == ["MonthPlanOpened", "MonthPlanSubmitted"]


# --- a worker dies mid-way ----------------------------------------------------------------------


class DiesAfterSecondStart(PlanActivities):
    """Commits the second `PlannedVisitStarted`, then never answers, like a worker killed there."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(PlanStore(pool), CustomerStore(pool), Policy(), PlanRules())
        self.starts = 0
        self.died = asyncio.Event()

    @activity.defn(name="append_plan_events")
    async def append_plan_events(self, req: PlanAppendRequest) -> PlanAppendResult:
        result = await super().append_plan_events(req)
        if any(isinstance(e.event, PlannedVisitStarted) for e in req.events):
            self.starts += 1
            if self.starts == 2:
                self.died.set()
                await asyncio.Event().wait()  # the reply never leaves this worker
        return result


async def test_a_worker_stopped_after_approval_leaves_each_visit_started_exactly_once(
    dev_env, pool, task_queue
):
    # The dev server, not the time-skipping one: a real server hands the work of a worker
    # that went away (its sticky queue times out) to whichever worker comes back.
    env = dev_env
    async with sales_team(env, pool, task_queue, worker=False) as team:
        dying = DiesAfterSecondStart(pool)
        visits = VisitActivities(EventStore(pool), Policy())
        first_worker = Worker(
            env.client,
            task_queue=task_queue,
            workflows=[VisitWorkflow, MonthPlanWorkflow],
            activities=[
                visits.append_events,
                visits.load_policy,
                dying.append_plan_events,
                dying.review_month_plan,
                dying.load_plan_settings,
            ],
        )
        async with first_worker:
            await team.open()
            await team.submit(team.three_visits())
            await team.plans.approve_month_plan(team.rep.id, team.month, team.approval())
            await asyncio.wait_for(dying.died.wait(), timeout=30)
        # The first worker is gone with two visits started and the second start's reply lost.
        async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
            final = await asyncio.wait_for(team.plans.result(team.rep.id, team.month), timeout=60)
            assert sorted(final.started) == sorted(team.visit_ids)
            for visit_id in team.visit_ids:
                assert await team.visit_opened(visit_id) == ["PlanSubmitted", "PlanApproved"]
                assert (await team.visits.state(visit_id)).status is VisitStatus.approved
        plan_events = await team.plans.history(team.rep.id, team.month)
        started = [e.event.visit_id for e in plan_events if isinstance(e.event, PlannedVisitStarted)]
        assert started == team.visit_ids  # once each, in the plan's order
        history = await env.client.get_workflow_handle(
            plan_workflow_id(team.rep.id, team.month)
        ).fetch_history()
        children = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        ]
        assert len(children) == 3
