"""Store tier: the event store on a real PostgreSQL (embedded, or VISITFLOW_TEST_DATABASE_URL).

Every test works on visits of its own (uuid-based ids) in the session's migrated database,
so tests never see each other's rows except through global queries, which they filter.
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

from activities.db import Connection, create_pool
from activities.errors import (
    APPEND_ONLY_SQLSTATE,
    CHAIN_BROKEN_SQLSTATE,
    SEQUENCE_GAP_SQLSTATE,
    ChainBroken,
    DuplicateEvent,
    InvalidAppend,
    SequenceConflict,
    SequenceGap,
    StoreUnavailable,
)
from activities.migrate import available_migrations, migrate
from activities.models import AppendRequest
from activities.store import HASHED_COLUMNS, EventStore, domain_event_from_row, upsert_summary
from activities.visit_activities import VisitActivities
from domain import upcasting
from domain.chain import link_hash, row_content
from domain.commands import CancelVisit, SubmitReport
from domain.events import GENESIS_HASH, PlanApproved
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


async def count(pool: asyncpg.Pool, table: str, visit_id: str) -> int:
    return await pool.fetchval(f"SELECT count(*) FROM {table} WHERE visit_id = $1", visit_id)


async def insert_raw(conn: Connection, visit_id: str, seq: int, prev_hash: str) -> None:
    """A hand-made row, bypassing the store: only the database's own checks apply."""
    await conn.execute(
        "INSERT INTO visit_events (visit_id, seq, event_id, type, schema_version, occurred_at,"
        " actor_id, actor_role, command_id, payload, prev_hash, hash)"
        " VALUES ($1, $2, $3, 'PlanApproved', 1, now(), 'mgr', 'manager', 'c', $4, $5, $6)",
        visit_id,
        seq,
        uuid.uuid4(),
        {"comment": "hand-made"},
        prev_hash,
        "f" * 64,
    )


# --- append and read back ---------------------------------------------------------------


async def test_append_then_read_back_returns_the_same_events_hashes_and_unicode(store: EventStore) -> None:
    driver = full_story()
    await append_all(store, driver.requests)
    written = [e for req in driver.requests for e in req.events]

    assert await store.events(driver.visit_id) == written
    rows = await store.raw_rows(driver.visit_id)
    assert [r["seq"] for r in rows] == list(range(1, len(written) + 1))
    prev = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == prev
        assert link_hash(prev, row_content(**{c: row[c] for c in HASHED_COLUMNS})) == row["hash"]
        prev = row["hash"]
    report_row = next(r for r in rows if r["type"] == "ReportSubmitted")
    assert report_row["payload"]["report"]["outcome"] == UNICODE_OUTCOME
    assert await store.visit(driver.visit_id) == driver.requests[-1].summary


async def test_events_after_a_seq_or_until_a_time_return_that_part_of_the_log(store: EventStore) -> None:
    driver = escalated_visit()
    await append_all(store, driver.requests)
    visit_id = driver.visit_id

    assert [e.seq for e in await store.events(visit_id, after_seq=3)] == [4, 5, 6]
    as_of_friday = await store.events(visit_id, until=REPORT_DUE)
    assert [e.type for e in as_of_friday][-2:] == ["ReminderSent", "Escalated"]
    assert await store.events(f.new_id()) == []


async def test_find_command_returns_the_events_recorded_for_that_command(store: EventStore) -> None:
    driver = approved_visit()
    cancel = CancelVisit(command_id=f.new_id("c"), actor=f.REP, reason="客户临时出差")
    driver.send(cancel, at("2026-03-03 09:00"))
    await append_all(store, driver.requests)
    visit_id = driver.visit_id

    found = await store.find_command(visit_id, cancel.command_id)
    assert [e.type for e in found] == ["VisitCancelled", "VisitClosed"]
    assert found == driver.requests[-1].events
    assert await store.find_command(visit_id, "never-sent") == []


# --- idempotency and ordering -----------------------------------------------------------


async def test_a_repeated_append_writes_once_and_returns_the_original_result(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    driver = approved_visit()
    first, second = driver.requests
    original = await store.append(first)
    await store.append(second)

    repeated = await store.append(first)

    assert repeated.duplicate and not original.duplicate
    assert (
        (repeated.last_seq, repeated.head_hash)
        == (original.last_seq, original.head_hash)
        == (1, first.events[0].hash)
    )
    assert await count(pool, "visit_events", first.visit_id) == 2
    assert (await store.visit(first.visit_id)) == second.summary


async def test_concurrent_repeats_of_one_append_write_it_once(store: EventStore, pool: asyncpg.Pool) -> None:
    driver = approved_visit()
    results = await asyncio.gather(*(store.append(driver.requests[0]) for _ in range(4)))
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    assert await count(pool, "visit_events", driver.visit_id) == 1


async def test_a_conflicting_seq_raises_sequence_conflict_and_writes_nothing(store: EventStore) -> None:
    submitted_by = VisitDriver()
    submitted = submitted_by.send(f.submit_plan(f.new_id(), START), at("2026-03-02 10:00"))
    # Two writers with the same view of the log: both claim seq 2 with their own event.
    winner = submitted_by.fork().send(f.approve(), at("2026-03-02 11:00"))
    loser = submitted_by.fork().send(f.approve(), at("2026-03-02 11:05"))
    await store.append(submitted)
    await store.append(winner)

    with pytest.raises(SequenceConflict, match="already recorded"):
        await store.append(loser)

    assert await store.events(submitted.visit_id) == [*submitted.events, *winner.events]
    assert await store.visit(submitted.visit_id) == winner.summary


async def test_an_event_id_reused_for_another_event_raises_duplicate_event(store: EventStore) -> None:
    one, other = approved_visit(), approved_visit()
    await store.append(one.requests[0])
    reused = other.requests[0].events[0].model_copy(update={"event_id": one.requests[0].events[0].event_id})
    forged = relabel(other.requests[0], [reused])

    with pytest.raises(DuplicateEvent, match="already recorded"):
        await store.append(forged)


async def test_append_refuses_a_request_whose_hash_does_not_match_its_content(store: EventStore) -> None:
    req = approved_visit().requests[0]
    tampered = req.events[0].model_copy(update={"command_id": "someone-else"})

    with pytest.raises(InvalidAppend, match="hash"):
        await store.append(relabel(req, [tampered], rehash=False))
    assert await store.events(req.visit_id) == []


async def test_append_maps_a_gap_and_a_broken_chain_to_named_errors(store: EventStore) -> None:
    driver = approved_visit()
    driver.send(f.check_in(START, minutes=30), at("2026-03-04 11:00"))
    submitted, approved, checked_in = driver.requests
    await store.append(submitted)

    with pytest.raises(SequenceGap, match="gap"):
        await store.append(checked_in)
    broken = approved.events[0].model_copy(update={"prev_hash": "a" * 64})
    with pytest.raises(ChainBroken, match="prev_hash"):
        await store.append(relabel(approved, [broken]))
    assert [e.seq for e in await store.events(submitted.visit_id)] == [1]


# --- the database guards the log --------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE visit_events SET payload = '{}'::jsonb WHERE visit_id = $1",
        "DELETE FROM visit_events WHERE visit_id = $1",
        # CASCADE: a plain TRUNCATE already stops at the outbox's foreign key.
        "TRUNCATE visit_events CASCADE",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_the_database_refuses_update_delete_and_truncate_of_the_log(
    store: EventStore, pool: asyncpg.Pool, statement: str
) -> None:
    req = approved_visit().requests[0]
    await store.append(req)
    args = [req.visit_id] if "$1" in statement else []

    with pytest.raises(asyncpg.PostgresError, match="append-only") as refused:
        await pool.execute(statement, *args)

    assert refused.value.sqlstate == APPEND_ONLY_SQLSTATE
    assert await store.events(req.visit_id) == req.events


async def test_the_database_refuses_a_gap_in_seq(pool: asyncpg.Pool) -> None:
    visit_id = f.new_id()
    async with rolled_back(pool) as conn:
        with pytest.raises(asyncpg.PostgresError, match="gap") as first_not_one:
            async with conn.transaction():
                await insert_raw(conn, visit_id, 2, GENESIS_HASH)
        assert first_not_one.value.sqlstate == SEQUENCE_GAP_SQLSTATE
        await insert_raw(conn, visit_id, 1, GENESIS_HASH)
        with pytest.raises(asyncpg.PostgresError, match="gap") as skipped:
            async with conn.transaction():
                await insert_raw(conn, visit_id, 3, "f" * 64)
        assert skipped.value.sqlstate == SEQUENCE_GAP_SQLSTATE


async def test_the_database_refuses_a_wrong_prev_hash(pool: asyncpg.Pool) -> None:
    visit_id = f.new_id()
    async with rolled_back(pool) as conn:
        with pytest.raises(asyncpg.PostgresError, match="prev_hash") as not_genesis:
            async with conn.transaction():
                await insert_raw(conn, visit_id, 1, "a" * 64)
        assert not_genesis.value.sqlstate == CHAIN_BROKEN_SQLSTATE
        await insert_raw(conn, visit_id, 1, GENESIS_HASH)
        with pytest.raises(asyncpg.PostgresError, match="prev_hash") as not_previous:
            async with conn.transaction():
                await insert_raw(conn, visit_id, 2, "a" * 64)
        assert not_previous.value.sqlstate == CHAIN_BROKEN_SQLSTATE


async def test_the_auditor_role_reads_the_log_but_cannot_write(store: EventStore, pool: asyncpg.Pool) -> None:
    req = approved_visit().requests[0]
    await store.append(req)
    async with rolled_back(pool) as conn:
        await conn.execute("SET LOCAL ROLE visitflow_auditor")
        assert await conn.fetchval("SELECT count(*) FROM visit_events WHERE visit_id = $1", req.visit_id) == 1
        assert await conn.fetchval("SELECT status FROM visits WHERE visit_id = $1", req.visit_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await insert_raw(conn, f.new_id(), 1, GENESIS_HASH)


# --- outbox and read model --------------------------------------------------------------


async def test_reminders_and_escalations_write_notifications_in_the_same_transaction(
    store: EventStore,
) -> None:
    driver = escalated_visit()
    await append_all(store, driver.requests)
    notifying = [e for req in driver.requests[-3:] for e in req.events]

    pending = {n.id: n for n in await store.pending_notifications(limit=10_000)}
    mine = [pending[e.event_id] for e in notifying]
    assert [(n.kind, n.recipient_id, n.level, n.seq) for n in mine] == [
        ("reminder", f.REP.id, None, 4),
        ("escalation", f.MANAGER.id, 1, 5),
        ("escalation", f.DIRECTOR.id, 2, 6),
    ]
    assert all(n.concern == "report" and n.due_at == REPORT_DUE for n in mine)

    assert await store.mark_sent([n.id for n in mine]) == 3
    assert await store.mark_sent([n.id for n in mine]) == 0
    still_pending = {n.id for n in await store.pending_notifications(limit=10_000)}
    assert still_pending.isdisjoint(n.id for n in mine)


async def test_a_failed_append_rolls_back_its_events_and_notifications_together(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    driver = escalated_visit()
    await append_all(store, driver.requests[:-1])
    escalation = driver.requests[-1]
    # The read-model row is written last; a value its table refuses fails the whole append.
    refused = relabel(escalation, escalation.events, summary_update={"open_items": -1})

    with pytest.raises(InvalidAppend):
        await store.append(refused)

    assert await count(pool, "visit_events", escalation.visit_id) == 5
    assert await count(pool, "notifications", escalation.visit_id) == 2
    assert (await store.visit(escalation.visit_id)) == driver.requests[-2].summary


async def test_the_read_model_follows_the_log_and_never_moves_backwards(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    driver = full_story()
    for req in driver.requests:
        await store.append(req)
        assert await store.visit(req.visit_id) == req.summary

    stale = driver.requests[2].summary
    async with pool.acquire() as conn:
        assert not await upsert_summary(conn, stale)
    latest = await store.visit(stale.visit_id)
    assert latest == driver.requests[-1].summary
    assert latest.status is VisitStatus.closed


async def test_rebuild_read_model_reproduces_the_rows(store: EventStore, pool: asyncpg.Pool) -> None:
    closed, escalated = full_story(), escalated_visit()
    await append_all(store, closed.requests + escalated.requests)
    ids = [closed.visit_id, escalated.visit_id]
    before = [await store.visit(v) for v in ids]
    await pool.execute(
        "UPDATE visits SET status = 'awaiting_approval', open_items = 7, escalated = '{}', last_seq = 1"
        " WHERE visit_id = ANY($1)",
        ids,
    )

    assert await store.rebuild_read_model(ids[0]) == 1
    assert await store.rebuild_read_model() >= 2
    assert [await store.visit(v) for v in ids] == before


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


def relabel(
    req: AppendRequest,
    events: list[Any],
    *,
    rehash: bool = True,
    summary_update: dict[str, Any] | None = None,
) -> AppendRequest:
    """`req` with other events (re-sealed unless `rehash` is False) and a matching summary."""
    sealed = [
        e.model_copy(update={"hash": link_hash(e.prev_hash, e.content())}) if rehash else e for e in events
    ]
    summary = req.summary.model_copy(
        update={"last_seq": sealed[-1].seq, "head_hash": sealed[-1].hash, **(summary_update or {})}
    )
    return AppendRequest(visit_id=req.visit_id, events=sealed, summary=summary)


@asynccontextmanager
async def rolled_back(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """A connection in a transaction that is always rolled back: hand-made rows never stay."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            yield conn
        finally:
            await tx.rollback()


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
