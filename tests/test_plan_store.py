"""Store tier: the monthly plans' log on a real PostgreSQL, with the guarantees of the visits' log.

Each test works on plans of its own (a uuid-based rep id) in the session's migrated database.
"""

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from activities.errors import (
    APPEND_ONLY_SQLSTATE,
    CHAIN_BROKEN_SQLSTATE,
    SEQUENCE_GAP_SQLSTATE,
    ChainBroken,
    InvalidAppend,
    SequenceConflict,
    SequenceGap,
)
from activities.plan_models import PlanAppendRequest
from activities.plan_store import PLAN_EVENT_COLUMNS, PlanStore
from activities.store import EventStore
from domain.actors import SYSTEM, Actor, Role
from domain.chain import PLAN_HASHED_FIELDS, link_hash, plan_row_content
from domain.events import GENESIS_HASH
from domain.models import Customer, CustomerTier
from domain.month_plan import (
    ApproveMonthPlan,
    MonthPlanState,
    OpenMonthPlan,
    PlanSettings,
    RecordVisitStarted,
    SubmissionReview,
    SubmitMonthPlan,
    decide,
    fold,
    next_alarm,
    plan_envelope,
    plan_id_of,
    summarize_plan,
)
from domain.planning import PlannedVisit, PlanRules
from domain.policy import Policy
from tests import factory as f
from tests.helpers import VisitDriver

pytestmark = pytest.mark.store

SHANGHAI = ZoneInfo("Asia/Shanghai")
MANAGER = Actor(id="mgr-li", role=Role.manager)
ACME = Customer(id="C-17", name="Acme Trading 华东", tier=CustomerTier.core)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


class PlanDriver:
    """One plan moved forward command by command, keeping the append requests the workflow would send."""

    def __init__(self, month: str = "2026-12") -> None:
        self.rep = Actor(id=f"rep-{uuid.uuid4().hex[:8]}", role=Role.rep)
        self.month = month
        self.state: MonthPlanState | None = None
        self.requests: list[PlanAppendRequest] = []

    @property
    def plan_id(self) -> str:
        return plan_id_of(self.rep.id, self.month)

    def send(self, command, now: datetime, review: SubmissionReview | None = None) -> PlanAppendRequest:
        settings = PlanSettings(policy=Policy(), rules=PlanRules())
        events = decide(self.state, command, now, settings=settings, review=review)
        recorded = plan_envelope(
            events,
            plan_id=self.plan_id,
            last_seq=self.state.last_seq if self.state else 0,
            head_hash=self.state.head_hash if self.state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=now,
            event_ids=[str(uuid.uuid4()) for _ in events],
        )
        self.state = fold(recorded, self.state)
        assert self.state is not None
        request = PlanAppendRequest(plan_id=self.plan_id, events=recorded, summary=summarize_plan(self.state))
        self.requests.append(request)
        return request

    def open(self) -> PlanAppendRequest:
        command = OpenMonthPlan(
            command_id=f.new_id("c"),
            actor=self.rep,
            rep_id=self.rep.id,
            manager_id=MANAGER.id,
            month=self.month,
        )
        return self.send(command, at("2026-11-02 09:00"))

    def visit(self, n: int, when: str) -> PlannedVisit:
        return PlannedVisit(
            visit_id=f"{self.rep.id}-V{n}", customer_id=ACME.id, scheduled_start=at(when), purpose="Review"
        )

    def submit(self, *visits: PlannedVisit, now: str = "2026-11-20 10:00") -> PlanAppendRequest:
        command = SubmitMonthPlan(command_id=f.new_id("c"), actor=self.rep, visits=list(visits))
        return self.send(command, at(now), SubmissionReview(customers=[ACME]))

    def approve(self, *visit_ids: str) -> PlanAppendRequest:
        command = ApproveMonthPlan(command_id=f.new_id("c"), actor=MANAGER, visit_ids=list(visit_ids) or None)
        return self.send(command, at("2026-11-23 15:00"))

    def fire(self) -> PlanAppendRequest:
        assert self.state is not None
        alarm = next_alarm(self.state, self.state.updated_at)
        assert alarm is not None
        return self.send(alarm.command(), alarm.at)


@pytest.fixture
def store(pool: asyncpg.Pool) -> PlanStore:
    return PlanStore(pool)


async def test_append_then_read_back_returns_the_same_events_chained_with_the_stream_named_plan_id(store):
    plan = PlanDriver()
    for request in (plan.open(), plan.submit(plan.visit(1, "2026-12-07 10:00")), plan.approve()):
        assert not (await store.append(request)).duplicate
    written = [e for r in plan.requests for e in r.events]
    assert await store.events(plan.plan_id) == written
    prev = GENESIS_HASH
    for row in await store.raw_rows(plan.plan_id):
        assert row["prev_hash"] == prev
        assert link_hash(prev, plan_row_content(**{c: row[c] for c in PLAN_HASHED_FIELDS})) == row["hash"]
        prev = row["hash"]
    assert await store.plan(plan.plan_id) == plan.requests[-1].summary
    assert await store.state(plan.plan_id) == plan.state
    assert PLAN_EVENT_COLUMNS[0] == "plan_id"


async def test_a_repeated_append_writes_once_and_returns_the_original_result(store, pool):
    plan = PlanDriver()
    first = await store.append(plan.open())
    again = await store.append(plan.requests[0])
    assert again.duplicate and (again.last_seq, again.head_hash) == (first.last_seq, first.head_hash)
    assert await pool.fetchval("SELECT count(*) FROM plan_events WHERE plan_id = $1", plan.plan_id) == 1


async def test_a_conflict_a_gap_a_broken_chain_and_a_bad_hash_are_named_errors(store):
    plan = PlanDriver()
    await store.append(plan.open())
    rival = PlanDriver()
    rival.rep, rival.state, rival.requests = plan.rep, plan.state, []
    await store.append(plan.submit(plan.visit(1, "2026-12-07 10:00")))
    with pytest.raises(SequenceConflict):
        await store.append(rival.submit(rival.visit(2, "2026-12-08 10:00")))  # seq 2 is taken
    skipped = plan.submit(plan.visit(1, "2026-12-07 10:00"))
    skipping = plan.submit(plan.visit(1, "2026-12-07 10:00"))
    with pytest.raises(SequenceGap):
        await store.append(skipping)
    moved = skipped.events[0].model_copy(update={"prev_hash": "a" * 64})
    forged = moved.model_copy(update={"hash": link_hash(moved.prev_hash, moved.content())})
    with pytest.raises(ChainBroken):
        await store.append(
            skipped.model_copy(update={"events": [forged], "summary": _summary(skipped, forged)})
        )
    with pytest.raises(InvalidAppend):
        tampered = skipped.events[0].model_copy(update={"command_id": "changed"})
        await store.append(skipped.model_copy(update={"events": [tampered]}))


def _summary(request: PlanAppendRequest, last):
    return request.summary.model_copy(update={"head_hash": last.hash})


async def test_the_database_refuses_update_delete_and_truncate_of_the_plan_log(store, pool):
    plan = PlanDriver()
    await store.append(plan.open())
    for statement in (
        "UPDATE plan_events SET command_id = 'x' WHERE plan_id = $1",
        "DELETE FROM plan_events WHERE plan_id = $1",
    ):
        with pytest.raises(asyncpg.PostgresError) as caught:
            await pool.execute(statement, plan.plan_id)
        assert caught.value.sqlstate == APPEND_ONLY_SQLSTATE
    with pytest.raises(asyncpg.PostgresError) as caught:
        await pool.execute("TRUNCATE plan_events CASCADE")
    assert caught.value.sqlstate == APPEND_ONLY_SQLSTATE


@pytest.mark.parametrize(
    ("seq", "prev", "sqlstate"), [(3, "0" * 64, SEQUENCE_GAP_SQLSTATE), (2, "b" * 64, CHAIN_BROKEN_SQLSTATE)]
)
async def test_the_database_itself_refuses_a_gap_or_a_wrong_prev_hash(store, pool, seq, prev, sqlstate):
    plan = PlanDriver()
    await store.append(plan.open())
    with pytest.raises(asyncpg.PostgresError) as caught:
        await pool.execute(
            "INSERT INTO plan_events (plan_id, seq, event_id, type, schema_version, occurred_at, actor_id,"
            " actor_role, command_id, payload, prev_hash, hash)"
            " VALUES ($1, $2, $3, 'MonthPlanReturned', 1, now(), 'm', 'manager', 'c', $4, $5, $6)",
            plan.plan_id,
            seq,
            uuid.uuid4(),
            {"reason": "hand-made"},
            prev,
            "f" * 64,
        )
    assert caught.value.sqlstate == sqlstate


async def test_reminders_and_escalations_write_plan_notifications_with_the_events(store, pool):
    plan = PlanDriver()
    await store.append(plan.open())
    for _ in range(3):
        await store.append(plan.fire())
    rows = await pool.fetch(
        "SELECT kind, recipient_id, level, seq FROM plan_notifications WHERE plan_id = $1 ORDER BY seq",
        plan.plan_id,
    )
    assert [(r["kind"], r["recipient_id"], r["level"], r["seq"]) for r in rows] == [
        ("reminder", plan.rep.id, None, 2),
        ("escalation", MANAGER.id, 1, 3),
        ("escalation", "directors", 2, 4),
    ]
    pending = {n["id"] for n in await store.pending_notifications(limit=10_000)}
    assert {str(e.event_id) for r in plan.requests[1:] for e in r.events} <= pending
    summary = await store.plan(plan.plan_id)
    assert summary is not None and (summary.reminded, summary.escalation_level) == (True, 2)


async def test_the_read_model_never_moves_back_and_is_rebuilt_from_the_log(store, pool):
    plan = PlanDriver()
    await store.append(plan.open())
    await store.append(plan.submit(plan.visit(1, "2026-12-07 10:00")))
    await pool.execute("UPDATE month_plans SET status = 'approved' WHERE plan_id = $1", plan.plan_id)
    assert await store.rebuild_read_model(plan.plan_id)
    assert await store.plan(plan.plan_id) == plan.requests[-1].summary
    listed = await store.list_plans(rep_id=plan.rep.id)
    assert [p.plan_id for p in listed] == [plan.plan_id]
    assert await store.list_plans(rep_id=plan.rep.id, status="approved") == []


async def test_the_previous_plan_is_its_approved_visits_and_last_visits_come_from_visits_that_took_place(
    store, pool
):
    november = PlanDriver("2026-11")
    december = PlanDriver("2026-12")
    december.rep = november.rep
    await store.append(_opened_early(november))  # a plan for November, opened in October
    await store.append(
        november.submit(
            november.visit(1, "2026-11-10 10:00"),
            november.visit(2, "2026-11-12 10:00"),
            now="2026-10-20 10:00",
        )
    )
    assert (await store.previous_plan(december.rep.id, "2026-12")).visits == november.state.visits
    november_approve = ApproveMonthPlan(
        command_id=f.new_id("c"), actor=MANAGER, visit_ids=[f"{november.rep.id}-V2"]
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


def _opened_early(plan: PlanDriver) -> PlanAppendRequest:
    command = OpenMonthPlan(
        command_id=f.new_id("c"), actor=plan.rep, rep_id=plan.rep.id, manager_id=MANAGER.id, month=plan.month
    )
    return plan.send(command, at("2026-10-01 09:00"))


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
