"""Store tier: what only the monthly plans' store has, on a real PostgreSQL: its outbox rows,
its listing, and what a submission is reviewed against.

The guarantees every log shares are tested once for both logs in
tests/test_event_log_contract.py. Each test works on plans of its own (a uuid-based rep id)
in the session's migrated database.
"""

import uuid
from datetime import date, timedelta

import asyncpg
import pytest

from activities.plan_store import PlanStore
from activities.store import EventStore
from domain.actors import SYSTEM
from domain.models import Customer
from domain.month_plan import ApproveMonthPlan, RecordVisitStarted
from domain.policy import Policy
from tests import factory as f
from tests.helpers import PLAN_MANAGER, PlanDriver, VisitDriver
from tests.helpers import shanghai as at

pytestmark = pytest.mark.store


@pytest.fixture
def store(pool: asyncpg.Pool) -> PlanStore:
    return PlanStore(pool)


async def test_reminders_and_escalations_write_plan_notifications_with_the_events(store, pool):
    plan = PlanDriver()
    await store.append(plan.open())
    for _ in range(3):
        await store.append(plan.fire())
    rows = await pool.fetch(
        "SELECT kind, recipient_id, level, seq, concern, due_at FROM plan_notifications"
        " WHERE plan_id = $1 ORDER BY seq",
        plan.plan_id,
    )
    assert [(r["kind"], r["recipient_id"], r["level"], r["seq"]) for r in rows] == [
        ("reminder", plan.rep.id, None, 2),
        ("escalation", PLAN_MANAGER.id, 1, 3),
        ("escalation", "directors", 2, 4),
    ]
    assert {(r["concern"], r["due_at"]) for r in rows} == {("month_plan", plan.state.due_at)}
    pending = {n["id"] for n in await store.pending_notifications(limit=10_000)}
    assert {str(e.event_id) for r in plan.requests[1:] for e in r.events} <= pending
    summary = await store.plan(plan.plan_id)
    assert summary is not None and (summary.reminded, summary.escalation_level) == (True, 2)


async def test_list_plans_filters_by_rep_and_status_and_rebuild_keeps_them(store, pool):
    plan = PlanDriver()
    await store.append(plan.open())
    await store.append(plan.submit(plan.visit(1, "2026-12-07 10:00")))
    await pool.execute("UPDATE month_plans SET status = 'approved' WHERE plan_id = $1", plan.plan_id)
    assert await store.rebuild_read_model(plan.plan_id)
    assert await store.plan(plan.plan_id) == plan.requests[-1].summary
    listed = await store.list_plans(rep_id=plan.rep.id)
    assert [p.plan_id for p in listed] == [plan.plan_id]
    assert await store.list_plans(rep_id=plan.rep.id, status="approved") == []
    assert not await store.rebuild_read_model(f"{plan.rep.id}-2027-01")


async def test_the_previous_plan_is_its_approved_visits_and_last_visits_come_from_visits_that_took_place(
    store, pool
):
    november = PlanDriver("2026-11")
    december = PlanDriver("2026-12")
    december.rep = november.rep
    await store.append(november.open(now="2026-10-01 09:00"))  # a plan for November, opened in October
    await store.append(
        november.submit(
            november.visit(1, "2026-11-10 10:00"),
            november.visit(2, "2026-11-12 10:00"),
            now="2026-10-20 10:00",
        )
    )
    assert (await store.previous_plan(december.rep.id, "2026-12")).visits == november.state.visits
    november_approve = ApproveMonthPlan(
        command_id=f.new_id("c"), actor=PLAN_MANAGER, visit_ids=[f"{november.rep.id}-V2"]
    )
    await store.append(november.send(november_approve, at("2026-10-25 10:00")))
    previous = await store.previous_plan(december.rep.id, "2026-12")
    assert previous is not None and [v.visit_id for v in previous.visits] == [f"{november.rep.id}-V2"]
    assert await store.previous_plan(december.rep.id, "2027-03") is None

    # Last visits: a checked-in visit counts, a visit only approved does not.
    events = EventStore(pool)
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    visited = VisitDriver()
    start = at("2026-11-16 09:00")
    plan_cmd = f.submit_plan(f.new_id(), start)
    plan_cmd = plan_cmd.model_copy(
        update={"plan": plan_cmd.plan.model_copy(update={"customer": Customer(id=customer, name="X")})}
    )
    for command, when in (
        (plan_cmd, at("2026-11-09 10:00")),
        (f.approve(), at("2026-11-10 10:00")),
        (f.check_in(start), at("2026-11-16 12:00")),
    ):
        await events.append(visited.send(command, when))
    planned_only = VisitDriver()
    later = f.submit_plan(f.new_id(), at("2026-11-28 09:00"))
    later = later.model_copy(
        update={"plan": later.plan.model_copy(update={"customer": Customer(id=customer, name="X")})}
    )
    await events.append(planned_only.send(later, at("2026-11-20 10:00")))
    assert await store.last_visits([customer, "nobody"], "2026-12", Policy()) == {
        customer: date(2026, 11, 16)
    }
    assert await store.last_visits([customer], "2026-11", Policy()) == {}


async def test_a_started_visit_is_recorded_once(store):
    plan = PlanDriver()
    await store.append(plan.open())
    await store.append(plan.submit(plan.visit(1, "2026-12-07 10:00")))
    await store.append(plan.approve())
    started = RecordVisitStarted(
        command_id="start:v",
        actor=SYSTEM,
        visit_id=f"{plan.rep.id}-V1",
        workflow_id=f"visit-{plan.rep.id}-V1",
    )
    request = plan.send(started, at("2026-11-23 15:00") + timedelta(seconds=1))
    await store.append(request)
    assert (await store.append(request)).duplicate
    summary = await store.plan(plan.plan_id)
    assert summary is not None and summary.started == 1
    assert await store.find_command(plan.plan_id, "start:v") == request.events
    assert await store.state(plan.plan_id) == plan.state
