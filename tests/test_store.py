"""Store tier: what only the visits' store has, on a real PostgreSQL (embedded, or
VISITFLOW_TEST_DATABASE_URL): its outbox rows, its own queries, its activities, migrations.

The guarantees every log shares (idempotent gapless appends, the chain, the read model and
the outbox in the same transaction, rebuilds) are tested once for both logs in
tests/test_event_log_contract.py. Every test works on visits of its own (uuid-based ids)
in the session's migrated database, so tests never see each other's rows except through
global queries, which they filter.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.db import create_pool
from activities.errors import StoreUnavailable
from activities.migrate import available_migrations, migrate
from activities.models import AppendRequest
from activities.store import EventStore, domain_event_from_row
from activities.visit_activities import VisitActivities
from domain import upcasting
from domain.commands import SubmitReport
from domain.events import PlanApproved
from domain.models import PromisedItemIn, Report
from domain.policy import Policy
from domain.state import VisitStatus
from tests import factory as f
from tests.helpers import VisitDriver

pytestmark = pytest.mark.store

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    """A Shanghai wall-clock time as an aware instant."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# The story: planned Monday for Wednesday 2026-03-04 10:00-10:30; the report, due Friday
# 10:30, is reminded, escalated twice and handed in late on Saturday.
START = at("2026-03-04 10:00")
REPORT_DUE = at("2026-03-06 10:30")
ITEM_DUE = at("2026-03-10 18:00")
UNICODE_OUTCOME = "客户同意试用新产品线 — «très bien» ✅ 🚚 naïve café"


@pytest.fixture
def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool)


def unicode_report() -> SubmitReport:
    return SubmitReport(
        command_id=f.new_id("c"),
        actor=f.REP,
        report=Report(
            outcome=UNICODE_OUTCOME,
            customer_feedback="交货太慢；希望苏州仓直发",
            promised_items=[
                PromisedItemIn(
                    item_id="样品-1", description="寄送样品 📦", owner_id=f.REP.id, due_at=ITEM_DUE
                )
            ],
        ),
    )


def approved_visit() -> VisitDriver:
    driver = VisitDriver()
    driver.send(f.submit_plan(f.new_id(), START), at("2026-03-02 10:00"))
    driver.send(f.approve(), at("2026-03-02 11:00"))
    return driver


def escalated_visit() -> VisitDriver:
    """Checked in, then reminded, escalated to the manager and to the director."""
    driver = approved_visit()
    driver.send(f.check_in(START, minutes=30), at("2026-03-04 11:00"))
    driver.fire_next_alarm()  # reminder, Thursday 10:30
    driver.fire_next_alarm()  # escalation 1 to the manager, Friday 10:30
    driver.fire_next_alarm()  # escalation 2 to the director, Saturday 10:30
    return driver


def full_story() -> VisitDriver:
    driver = escalated_visit()
    driver.send(unicode_report(), at("2026-03-07 12:00"))
    driver.send(f.accept(), at("2026-03-07 15:00"))
    driver.send(f.complete("样品-1"), at("2026-03-09 09:00"))
    return driver


async def append_all(store: EventStore, requests: list[AppendRequest]) -> None:
    for req in requests:
        await store.append(req)


# --- the outbox's rows -----------------------------------------------------------------


async def test_reminders_and_escalations_tell_their_recipient_what_is_due_when(store: EventStore) -> None:
    driver = escalated_visit()
    await append_all(store, driver.requests)
    notifying = [e for req in driver.requests[-3:] for e in req.events]

    pending = {n.id: n for n in await store.pending_notifications(limit=10_000)}
    mine = [pending[e.event_id] for e in notifying]
    assert [(n.visit_id, n.kind, n.recipient_id, n.level, n.seq) for n in mine] == [
        (driver.visit_id, "reminder", f.REP.id, None, 4),
        (driver.visit_id, "escalation", f.MANAGER.id, 1, 5),
        (driver.visit_id, "escalation", f.DIRECTOR.id, 2, 6),
    ]
    assert all(n.concern == "report" and n.due_at == REPORT_DUE for n in mine)
    assert [n.message for n in mine] == [e.event.message for e in notifying]
    assert (await store.visit(driver.visit_id)).escalation_level == 2

    assert await store.mark_failed([n.id for n in mine]) == 3
    assert await store.mark_sent([n.id for n in mine]) == 3
    assert await store.mark_sent([n.id for n in mine]) == 0
    still_pending = {n.id for n in await store.pending_notifications(limit=10_000)}
    assert still_pending.isdisjoint(n.id for n in mine)


async def test_overdue_lists_open_visits_past_their_deadline_or_escalated(store: EventStore) -> None:
    checked_in = approved_visit()
    checked_in.send(f.check_in(START, minutes=30), at("2026-03-04 11:00"))
    escalated, closed = escalated_visit(), full_story()
    for driver in (checked_in, escalated, closed):
        await append_all(store, driver.requests)

    def mine(summaries: list[Any]) -> list[str]:
        ours = {checked_in.visit_id, escalated.visit_id, closed.visit_id}
        return [s.visit_id for s in summaries if s.visit_id in ours]

    assert mine(await store.overdue(REPORT_DUE - timedelta(hours=1), limit=10_000)) == [escalated.visit_id]
    assert sorted(mine(await store.overdue(REPORT_DUE + timedelta(minutes=1), limit=10_000))) == sorted(
        [checked_in.visit_id, escalated.visit_id]
    )


async def test_list_visits_filters_by_rep_manager_and_status(store: EventStore) -> None:
    driver = approved_visit()
    await append_all(store, driver.requests)
    visit_id = driver.visit_id

    approved = await store.list_visits(
        rep_id=f.REP.id, manager_id=f.MANAGER.id, status="approved", limit=10_000
    )
    assert visit_id in {s.visit_id for s in approved}
    assert visit_id not in {
        s.visit_id for s in await store.list_visits(status=VisitStatus.closed, limit=10_000)
    }
    assert await store.list_visits(rep_id=f.new_id("nobody")) == []


# --- the activity boundary -------------------------------------------------------------


async def test_append_events_turns_a_conflict_into_a_non_retryable_application_error(
    store: EventStore,
) -> None:
    submitted_by = VisitDriver()
    submitted = submitted_by.send(f.submit_plan(f.new_id(), START), at("2026-03-02 10:00"))
    winner = submitted_by.fork().send(f.approve(), at("2026-03-02 11:00"))
    loser = submitted_by.fork().send(f.approve(), at("2026-03-02 11:05"))
    activities = VisitActivities(store, Policy())
    env = ActivityEnvironment()
    await env.run(activities.append_events, submitted)
    await env.run(activities.append_events, winner)

    with pytest.raises(ApplicationError) as refused:
        await env.run(activities.append_events, loser)

    assert (refused.value.type, refused.value.non_retryable) == ("SequenceConflict", True)
    assert (await env.run(activities.append_events, winner)).duplicate


async def test_append_events_leaves_an_unreachable_database_to_temporal_retries(database_url: str) -> None:
    closed = await create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    activities = VisitActivities(EventStore(closed), Policy())

    with pytest.raises(StoreUnavailable):
        await EventStore(closed).append(approved_visit().requests[0])
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(activities.append_events, approved_visit().requests[0])
    assert (failed.value.type, failed.value.non_retryable) == ("StoreUnavailable", False)


async def test_load_policy_returns_the_configured_policy(store: EventStore) -> None:
    policy = Policy(report_deadline=timedelta(hours=24), timezone="Europe/Berlin")
    assert await ActivityEnvironment().run(VisitActivities(store, policy).load_policy) == policy


# --- reading old versions ---------------------------------------------------------------


def test_domain_event_from_row_applies_upcasters_until_none_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend PlanApproved is at version 3: version 1 said "remark", version 2 "note".
    monkeypatch.setitem(upcasting.UPCASTERS, ("PlanApproved", 1), lambda p: {"note": p["remark"]})
    monkeypatch.setitem(upcasting.UPCASTERS, ("PlanApproved", 2), lambda p: {"comment": p["note"]})

    event = domain_event_from_row("PlanApproved", 1, {"remark": "同意"})

    assert event == PlanApproved(comment="同意", schema_version=3)
    assert domain_event_from_row("PlanRejected", 1, {"reason": "太远"}).schema_version == 1


# --- migrations -------------------------------------------------------------------------


async def test_migrate_is_idempotent(pool: asyncpg.Pool) -> None:
    assert await migrate(pool) == []
    versions = [r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in available_migrations()]


async def test_concurrent_migrations_apply_each_version_once(server_url: str) -> None:
    async with scratch_database(server_url) as url:
        pools = [await create_pool(url, min_size=1, max_size=1) for _ in range(2)]
        try:
            results = await asyncio.gather(*(migrate(p) for p in pools))
        finally:
            for p in pools:
                await p.close()
    applied = [v for result in results for v in result]
    assert sorted(applied) == [m.version for m in available_migrations()]


# --- helpers ----------------------------------------------------------------------------


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    name = f"visitflow_scratch_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, query = server_url.partition("?")
    try:
        yield f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
