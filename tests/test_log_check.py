"""Whole-log verification on a real PostgreSQL: every kind of tampering is found and located.

Each test works in a database of its own (the session's database is shared by other tests,
which tampering would break), fills it through `EventStore.append` with visits driven by
the real rules, then tampers as an administrator would: in a transaction with
`session_replication_role = replica`, which switches the log's append-only triggers off.
"""

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from activities.db import Connection
from activities.log_stream import id_ranges, snapshot
from activities.store import HASHED_COLUMNS, EventStore
from domain.chain import link_hash, row_content
from domain.verify import ChainProblem
from starter.log_check import BadStream, FoldProblem, LogCheckReport, verify_log
from tests import factory as f
from tests.helpers import VisitDriver
from tests.tamper import append_chained, past_the_triggers

pytestmark = pytest.mark.store

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


START = at("2026-03-04 10:00")


def story(*, items: bool = True) -> VisitDriver:
    """Planned, approved, checked in, reminded and escalated, reported, accepted, kept: 10 events."""
    driver = VisitDriver()
    driver.send(f.submit_plan(f.new_id(), START), at("2026-03-02 10:00"))
    driver.send(f.approve(comment="带上新目录"), at("2026-03-02 11:00"))
    driver.send(f.check_in(START, minutes=30), at("2026-03-04 11:00"))
    driver.fire_next_alarm()
    driver.fire_next_alarm()
    driver.fire_next_alarm()
    driver.send(f.report(("样品-1", at("2026-03-10 18:00"))) if items else f.report(), at("2026-03-07 12:00"))
    driver.send(f.accept(), at("2026-03-07 15:00"))
    if items:
        driver.send(f.complete("样品-1"), at("2026-03-09 09:00"))
    return driver


@pytest.fixture
def db(own_database: str, own_pool: asyncpg.Pool) -> tuple[str, asyncpg.Pool]:
    """A fresh migrated database of this test's own: its URL and a pool."""
    return own_database, own_pool


async def logged(pool: asyncpg.Pool, *drivers: VisitDriver) -> list[str]:
    """Append every request of the drivers through the store; the visits' ids."""
    store = EventStore(pool)
    for driver in drivers:
        for request in driver.requests:
            await store.append(request)
    return [d.visit_id for d in drivers]


async def stored_row(conn: Connection, visit_id: str, seq: int) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM visit_events WHERE visit_id = $1 AND seq = $2", visit_id, seq)
    return {**dict(row), "event_id": str(row["event_id"])}


def forged_hash(row: dict[str, Any]) -> str:
    """The hash a forger would compute for the row's content after its prev_hash."""
    return link_hash(row["prev_hash"], row_content(**{c: row[c] for c in HASHED_COLUMNS}))


def only_problem(report: LogCheckReport, visit_id: str) -> BadStream:
    assert [b.stream_id for b in report.bad] == [visit_id], report.bad
    return report.bad[0]


def located(report: LogCheckReport, visit_id: str, seq: int, kind: ChainProblem | FoldProblem) -> BadStream:
    bad = only_problem(report, visit_id)
    assert (bad.first_bad_seq, bad.kind) == (seq, kind), bad.problem
    assert str(seq) in bad.problem and visit_id in bad.problem
    assert not report.ok
    return bad


async def test_an_intact_log_is_reported_intact_with_counts_and_rate(db):
    _, pool = db
    drivers = [story(), story(items=False), story()]
    await logged(pool, *drivers)
    events = sum(len(r.events) for d in drivers for r in d.requests)

    report = await verify_log(pool)

    assert report.ok and report.bad == [] and report.without_events == [] and report.without_anchor == []
    assert (report.streams, report.intact, report.events, report.expected_events) == (3, 3, events, events)
    assert report.elapsed_seconds > 0 and report.events_per_second > 0
    assert report.workers == 0


async def test_an_empty_log_is_intact(db):
    _, pool = db
    report = await verify_log(pool)
    assert report.ok and (report.streams, report.events) == (0, 0)


async def test_changed_content_is_located_at_its_row(db):
    _, pool = db
    victim, _other = await logged(pool, story(), story())
    async with past_the_triggers(pool) as conn:
        await conn.execute(
            "UPDATE visit_events SET payload = jsonb_set(payload, '{comment}', '\"approved by phone\"')"
            " WHERE visit_id = $1 AND seq = 2",
            victim,
        )

    report = await verify_log(pool)

    bad = located(report, victim, 2, ChainProblem.content_changed)
    assert bad.head_seq == 1
    assert (report.streams, report.intact) == (2, 1)


async def test_a_row_deleted_in_the_middle_is_missing(db):
    _, pool = db
    (victim,) = await logged(pool, story())
    async with past_the_triggers(pool) as conn:
        await conn.execute("DELETE FROM visit_events WHERE visit_id = $1 AND seq = 4", victim)

    located(await verify_log(pool), victim, 4, ChainProblem.missing)


async def test_the_newest_row_deleted_is_caught_through_the_read_model_anchor(db):
    _, pool = db
    (victim,) = await logged(pool, story())
    async with past_the_triggers(pool) as conn:
        last = await conn.fetchval("SELECT max(seq) FROM visit_events WHERE visit_id = $1", victim)
        await conn.execute("DELETE FROM visit_events WHERE visit_id = $1 AND seq = $2", victim, last)

    bad = located(await verify_log(pool), victim, last, ChainProblem.tail_mismatch)
    assert "deleted" in bad.problem and bad.head_seq == last - 1


async def test_a_rewritten_and_rehashed_newest_row_is_caught_through_the_anchor(db):
    _, pool = db
    (victim,) = await logged(pool, story())
    async with past_the_triggers(pool) as conn:
        last = await conn.fetchval("SELECT max(seq) FROM visit_events WHERE visit_id = $1", victim)
        row = await stored_row(conn, victim, last)
        row["actor_id"] = "someone-else"
        await conn.execute(
            "UPDATE visit_events SET actor_id = $3, hash = $4 WHERE visit_id = $1 AND seq = $2",
            victim,
            last,
            row["actor_id"],
            forged_hash(row),
        )

    located(await verify_log(pool), victim, last, ChainProblem.tail_mismatch)


async def test_an_inserted_row_is_caught_where_it_was_slipped_in(db):
    _, pool = db
    (victim,) = await logged(pool, story())
    async with past_the_triggers(pool) as conn:
        # Make room at seq 3 (two steps: the primary key is checked row by row).
        await conn.execute(
            "UPDATE visit_events SET seq = seq + 1000 WHERE visit_id = $1 AND seq >= 3", victim
        )
        await conn.execute(
            "UPDATE visit_events SET seq = seq - 999 WHERE visit_id = $1 AND seq > 1000", victim
        )
        forged = await stored_row(conn, victim, 2)
        forged.update(seq=3, event_id=str(uuid.uuid4()), prev_hash=forged["hash"], command_id="forged")
        forged["hash"] = forged_hash(forged)
        await conn.execute(
            "INSERT INTO visit_events (visit_id, seq, event_id, type, schema_version, occurred_at,"
            " actor_id, actor_role, command_id, payload, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            *(forged[c] for c in (*HASHED_COLUMNS, "prev_hash", "hash")),
        )

    bad = located(await verify_log(pool), victim, 3, ChainProblem.inserted_or_reordered)
    assert "inserted" in bad.problem


async def test_swapped_rows_are_caught_where_the_order_breaks(db):
    _, pool = db
    (victim,) = await logged(pool, story())
    async with past_the_triggers(pool) as conn:
        await conn.execute("UPDATE visit_events SET seq = 1003 WHERE visit_id = $1 AND seq = 3", victim)
        await conn.execute("UPDATE visit_events SET seq = 3 WHERE visit_id = $1 AND seq = 4", victim)
        await conn.execute("UPDATE visit_events SET seq = 4 WHERE visit_id = $1 AND seq = 1003", victim)

    located(await verify_log(pool), victim, 3, ChainProblem.link_broken)


async def test_a_deleted_row_with_the_rest_renumbered_breaks_the_link(db):
    _, pool = db
    (victim,) = await logged(pool, story())
    async with past_the_triggers(pool) as conn:
        await conn.execute("DELETE FROM visit_events WHERE visit_id = $1 AND seq = 3", victim)
        await conn.execute("UPDATE visit_events SET seq = seq + 1000 WHERE visit_id = $1 AND seq > 3", victim)
        await conn.execute(
            "UPDATE visit_events SET seq = seq - 1001 WHERE visit_id = $1 AND seq > 1000", victim
        )

    located(await verify_log(pool), victim, 3, ChainProblem.link_broken)


async def test_a_visit_whose_every_row_was_deleted_is_reported_from_the_read_model(db):
    _, pool = db
    victim, _other = await logged(pool, story(), story(items=False))
    async with past_the_triggers(pool) as conn:
        await conn.execute("DELETE FROM visit_events WHERE visit_id = $1", victim)

    report = await verify_log(pool)

    assert report.without_events == [victim]
    bad = located(report, victim, 1, ChainProblem.tail_mismatch)
    assert bad.events_checked == 0
    assert (report.streams, report.intact) == (2, 1)


async def test_a_visit_without_a_read_model_row_is_listed_as_unanchored(db):
    _, pool = db
    victim, _other = await logged(pool, story(), story())
    await pool.execute("DELETE FROM visits WHERE visit_id = $1", victim)

    report = await verify_log(pool)

    assert report.without_anchor == [victim] and report.bad == []
    assert report.intact == 2 and not report.ok


async def test_a_row_of_a_version_no_upcaster_reads_is_reported_at_its_seq(db):
    _, pool = db
    (victim,) = await logged(pool, story())
    seq = await append_chained(
        pool, victim, "ReportAccepted", 7, {"comment": "ok", "channel": "app"}, move_head=True
    )

    bad = located(await verify_log(pool), victim, seq, FoldProblem.unreadable)
    assert bad.head_seq == seq - 1 and "ReportAccepted version 7" in bad.problem


async def test_rows_that_do_not_fold_are_reported_not_raised(db):
    _, pool = db
    unknown_item, not_an_object = await logged(pool, story(items=False), story(items=False))
    completes = {"item_id": "never-promised", "resolution": "sent", "late": False}
    first = await append_chained(pool, unknown_item, "PromisedItemCompleted", 1, completes, move_head=True)
    second = await append_chained(
        pool, not_an_object, "ReportAccepted", 1, ["not", "an", "object"], move_head=True
    )

    report = await verify_log(pool)

    found = {b.stream_id: b for b in report.bad}
    assert {v: (b.first_bad_seq, b.kind) for v, b in found.items()} == {
        unknown_item: (first, FoldProblem.unreadable),
        not_an_object: (second, FoldProblem.unreadable),
    }
    assert "does not follow from those before" in found[unknown_item].problem
    assert "(ReportAccepted)" in found[not_an_object].problem


async def test_a_chained_row_appended_after_the_read_models_head_is_found(db):
    # A write outside the append path never moves the read model's head: the chain holds,
    # but the log goes on past its anchor.
    _, pool = db
    victim, _other = await logged(pool, story(), story())
    seq = await append_chained(pool, victim, "ReportAccepted", 1, {"comment": "again"})

    report = await verify_log(pool)

    bad = located(report, victim, seq, ChainProblem.tail_mismatch)
    assert f"event {seq} was appended outside the engine" in bad.problem
    assert bad.head_seq == seq - 1
    assert (report.streams, report.intact) == (2, 1)


async def test_an_event_after_the_visit_closed_is_found_even_with_the_head_moved_onto_it(db):
    _, pool = db
    (victim,) = await logged(pool, story())  # closed by its last event
    seq = await append_chained(pool, victim, "ReportAccepted", 1, {"comment": "again"}, move_head=True)

    bad = located(await verify_log(pool), victim, seq, FoldProblem.unreadable)
    assert "does not follow from those before" in bad.problem and "closed" in bad.problem
    assert bad.head_seq == seq - 1


async def test_progress_starts_at_zero_and_reaches_the_total(db):
    _, pool = db
    drivers = [story() for _ in range(4)]
    await logged(pool, *drivers)
    calls: list[tuple[int, int]] = []

    report = await verify_log(
        pool, progress=lambda done, total: calls.append((done, total)), events_per_range=15
    )

    assert calls[0] == (0, report.expected_events) == (0, 40)
    assert calls[-1] == (40, 40) == (report.events, report.events)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


async def test_ranges_cover_every_visit_once(db):
    _, pool = db
    ids = sorted(await logged(pool, *(story(items=False) for _ in range(5))))
    async with pool.acquire() as conn, snapshot(conn):
        ranges = await id_ranges(conn, events_per_range=12)

    assert ranges[0].after is None and ranges[-1].upto is None
    assert [r.upto for r in ranges[:-1]] == [r.after for r in ranges[1:]]
    assert len(ranges) > 2
    report = await verify_log(pool, events_per_range=12)
    assert report.ok and report.streams == len(ids)


async def test_worker_processes_find_what_one_process_finds(db):
    url, pool = db
    ids = await logged(pool, *(story() for _ in range(6)))
    async with past_the_triggers(pool) as conn:
        await conn.execute("DELETE FROM visit_events WHERE visit_id = $1 AND seq = 5", ids[1])
        await conn.execute("DELETE FROM visit_events WHERE visit_id = $1", ids[4])
    await pool.execute("DELETE FROM visits WHERE visit_id = $1", ids[2])
    calls: list[tuple[int, int]] = []

    alone = await verify_log(pool, events_per_range=20)
    together = await verify_log(
        pool,
        database_url=url,
        workers=2,
        events_per_range=20,
        progress=lambda done, total: calls.append((done, total)),
    )

    assert together.workers == 2 and alone.workers == 0
    keep = {"visits", "events", "intact", "bad", "without_events", "without_anchor", "expected_events"}
    assert together.model_dump(include=keep) == alone.model_dump(include=keep)
    assert {b.stream_id: (b.first_bad_seq, b.kind) for b in together.bad} == {
        ids[1]: (5, ChainProblem.missing),
        ids[4]: (1, ChainProblem.tail_mismatch),
    }
    assert together.without_anchor == [ids[2]]
    assert calls[-1] == (together.events, together.events)
