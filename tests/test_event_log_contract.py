"""Store tier: the event-log contract, checked once over every log on a real PostgreSQL.

`activities.event_log.EventLog` holds every guarantee of a stream's store; each test here
runs over both logs (the visits' and the monthly plans'), through the kernel each store
holds (`EventStore(pool).log`, `PlanStore(pool).log`). A `Story` moves a fresh stream of
the log through a fixed script the way its workflow would, so every test works on streams
of its own in the session's database. What only one stream has (its outbox rows' content,
its own queries) is tested in tests/test_store.py and tests/test_plan_store.py.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from activities.db import Connection, create_pool
from activities.errors import (
    APPEND_ONLY_SQLSTATE,
    CHAIN_BROKEN_SQLSTATE,
    SEQUENCE_GAP_SQLSTATE,
    AppendOnlyViolation,
    ChainBroken,
    DuplicateEvent,
    InvalidAppend,
    SequenceConflict,
    SequenceGap,
    StoreUnavailable,
    UnreadableEvent,
    translated,
)
from activities.event_log import EventLog
from activities.plan_store import PlanStore
from activities.store import EventStore
from domain.chain import link_hash, stream_content
from domain.commands import SubmitReport
from domain.events import GENESIS_HASH
from domain.models import Report
from tests import factory as f
from tests.helpers import PlanDriver, VisitDriver, shanghai

pytestmark = pytest.mark.store

Request = Any  # an AppendRequest or a PlanAppendRequest: the tests treat them alike
Step = Callable[[Any], Request]

VISIT_START = shanghai("2026-03-04 10:00")
UNICODE_OUTCOME = "客户同意试用新产品线 — «très bien» ✅ 🚚 naïve café"
UNICODE_PURPOSE = "季度回顾 — «Acme» ✅ 📦"


def _unicode_report() -> SubmitReport:
    return SubmitReport(command_id=f.new_id("c"), actor=f.REP, report=Report(outcome=UNICODE_OUTCOME))


# Planned Monday for Wednesday; checked in; the report reminded, escalated twice, handed in
# late with text in several scripts, and accepted (which records two events, closing the visit).
VISIT_SCRIPT: Sequence[Step] = (
    lambda d: d.send(f.submit_plan(f.new_id(), VISIT_START), shanghai("2026-03-02 10:00")),
    lambda d: d.send(f.approve(), shanghai("2026-03-02 11:00")),
    lambda d: d.send(f.check_in(VISIT_START, minutes=30), shanghai("2026-03-04 11:00")),
    lambda d: d.fire_next_alarm(),
    lambda d: d.fire_next_alarm(),
    lambda d: d.fire_next_alarm(),
    lambda d: d.send(_unicode_report(), shanghai("2026-03-07 12:00")),
    lambda d: d.send(f.accept(), shanghai("2026-03-07 15:00")),
)

# Opened; reminded and escalated twice for want of a plan; submitted late; approved.
PLAN_SCRIPT: Sequence[Step] = (
    lambda p: p.open(),
    lambda p: p.fire(),
    lambda p: p.fire(),
    lambda p: p.fire(),
    lambda p: p.submit(
        p.visit(1, "2026-12-07 10:00", purpose=UNICODE_PURPOSE), now=p.state.updated_at + timedelta(hours=1)
    ),
    lambda p: p.approve(now=p.state.updated_at + timedelta(hours=1)),
)


class Story:
    """A fresh stream of one log, moved through its script one append request at a time."""

    def __init__(self, driver: Any, script: Sequence[Step], done: int = 0) -> None:
        self.driver = driver
        self.script = script
        self.done = done

    def next(self) -> Request:
        request = self.script[self.done](self.driver)
        self.done += 1
        return request

    def take(self, n: int) -> list[Request]:
        return [self.next() for _ in range(n)]

    def all(self) -> list[Request]:
        return self.take(len(self.script) - self.done)

    def fork(self) -> "Story":
        """The same stream from where it stands: a second writer with the same view of the log."""
        return Story(self.driver.fork(), self.script, self.done)

    @property
    def state(self) -> Any:
        return self.driver.state


@dataclass(frozen=True)
class LogCase:
    """One log under the contract: its kernel on the session pool, fresh stories of it, and
    an UPDATE's SET clause that puts a read-model row out of date."""

    log: EventLog[Any, Any, Any, Any]
    story: Callable[[], Story]
    stale: str

    @property
    def key(self) -> str:
        return self.log.tables.key

    def id_of(self, request: Request) -> str:
        return self.log.stream_of(request)

    async def count(self, table: str, stream_id: str) -> int:
        return await self.log.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {self.key} = $1", stream_id)

    async def counts(self, stream_id: str) -> tuple[int, int]:
        """How many events and outbox rows the stream has."""
        t = self.log.tables
        return await self.count(t.events, stream_id), await self.count(t.outbox, stream_id)


@pytest.fixture(params=["visits", "plans"])
def case(request: pytest.FixtureRequest, pool: asyncpg.Pool) -> LogCase:
    if request.param == "visits":
        return LogCase(
            log=EventStore(pool).log,
            story=lambda: Story(VisitDriver(), VISIT_SCRIPT),
            stale="status = 'awaiting_approval', open_items = 7, escalated = '{}', last_seq = 1",
        )
    return LogCase(
        log=PlanStore(pool).log,
        story=lambda: Story(PlanDriver(), PLAN_SCRIPT),
        stale="status = 'approved', planned = 9, last_seq = 1",
    )


async def append_all(log: EventLog[Any, Any, Any, Any], requests: Sequence[Request]) -> None:
    for request in requests:
        await log.append(request)


def relabel(
    request: Request, events: list[Any], *, rehash: bool = True, summary_update: dict[str, Any] | None = None
) -> Request:
    """`request` with other events (re-sealed unless `rehash` is False) and a summary that
    ends where they end: a request made by hand, past the workflow."""
    sealed = [
        e.model_copy(update={"hash": link_hash(e.prev_hash, e.content())}) if rehash else e for e in events
    ]
    summary = request.summary.model_copy(
        update={"last_seq": sealed[-1].seq, "head_hash": sealed[-1].hash, **(summary_update or {})}
    )
    return request.model_copy(update={"events": sealed, "summary": summary})


def joined(*requests: Request) -> Request:
    """One request carrying the events of several, with the last one's summary."""
    return requests[-1].model_copy(update={"events": [e for r in requests for e in r.events]})


# --- append and read back ---------------------------------------------------------------


async def test_append_then_read_back_returns_the_same_events_rows_and_read_model_row(case: LogCase) -> None:
    story = case.story()
    requests = story.all()
    for request in requests:
        result = await case.log.append(request)
        assert isinstance(result, case.log.tables.result) and not result.duplicate
        last = request.events[-1]
        assert (getattr(result, case.key), result.last_seq, result.head_hash) == (
            case.id_of(request),
            last.seq,
            last.hash,
        )
    written = [e for r in requests for e in r.events]
    stream_id = case.id_of(requests[0])

    assert await case.log.events(stream_id) == written
    rows = await case.log.raw_rows(stream_id)
    assert [r["seq"] for r in rows] == list(range(1, len(written) + 1))
    assert case.log.tables.columns[0] == case.key
    prev = GENESIS_HASH
    for row, event in zip(rows, written, strict=True):
        content = {c: row[c] for c in case.log.tables.hashed_columns[1:]}
        assert row["prev_hash"] == prev
        assert link_hash(prev, stream_content(case.key, row[case.key], **content)) == row["hash"]
        # Stored as sent: text in every script survives the jsonb round trip.
        assert (row["event_id"], row["payload"]) == (event.event_id, event.payload())
        prev = row["hash"]
    assert await case.log.summary(stream_id) == requests[-1].summary
    assert await case.log.state(stream_id) == story.state
    assert await case.log.heads([stream_id, f.new_id()]) == {stream_id: (written[-1].seq, written[-1].hash)}


async def test_a_stream_never_recorded_reads_as_empty(case: LogCase) -> None:
    unknown = f.new_id()
    assert await case.log.events(unknown) == []
    assert await case.log.raw_rows(unknown) == []
    assert await case.log.state(unknown) is None
    assert await case.log.summary(unknown) is None
    assert await case.log.heads([unknown]) == {}


async def test_events_after_a_seq_or_until_a_time_return_that_part_of_the_log(case: LogCase) -> None:
    requests = case.story().take(4)
    await append_all(case.log, requests)
    stream_id = case.id_of(requests[0])
    written = [e for r in requests for e in r.events]

    assert [e.seq for e in await case.log.events(stream_id, after_seq=2)] == [3, 4]
    third = requests[2].events[-1]
    assert await case.log.events(stream_id, until=third.occurred_at) == written[:3]
    before_all = written[0].occurred_at - timedelta(seconds=1)
    assert await case.log.events(stream_id, until=before_all) == []


async def test_find_command_returns_the_events_recorded_for_that_command(case: LogCase) -> None:
    requests = case.story().all()
    await append_all(case.log, requests)
    stream_id = case.id_of(requests[0])

    for request in requests:
        assert await case.log.find_command(stream_id, request.events[0].command_id) == request.events
    assert await case.log.find_command(stream_id, "never-sent") == []


# --- idempotency and ordering -----------------------------------------------------------


async def test_a_repeated_append_writes_nothing_and_answers_the_original_result(case: LogCase) -> None:
    requests = case.story().take(5)
    originals = [await case.log.append(r) for r in requests]
    stream_id = case.id_of(requests[0])
    before = await case.counts(stream_id)

    # The first request, and one that wrote an outbox row, sent again (a retried activity).
    for i in (0, 3):
        repeated = await case.log.append(requests[i])
        assert repeated.duplicate and not originals[i].duplicate
        assert (repeated.last_seq, repeated.head_hash) == (originals[i].last_seq, originals[i].head_hash)

    assert await case.counts(stream_id) == before
    assert await case.log.summary(stream_id) == requests[-1].summary


async def test_concurrent_repeats_of_one_append_write_it_once(case: LogCase) -> None:
    request = case.story().next()
    results = await asyncio.gather(*(case.log.append(request) for _ in range(4)))
    assert sorted(r.duplicate for r in results) == [False, True, True, True]
    assert await case.count(case.log.tables.events, case.id_of(request)) == len(request.events)


async def test_another_event_at_a_taken_seq_is_a_sequence_conflict_and_writes_nothing(case: LogCase) -> None:
    story = case.story()
    first = story.next()
    rival = story.fork()
    # Two writers with the same view of the log: both claim the next seq with their own event.
    winner, loser = story.next(), rival.next()
    await case.log.append(first)
    await case.log.append(winner)

    with pytest.raises(SequenceConflict, match=f"already holds this seq on {case.log.word} "):
        await case.log.append(loser)

    stream_id = case.id_of(first)
    assert await case.log.events(stream_id) == [*first.events, *winner.events]
    assert await case.log.summary(stream_id) == winner.summary


async def test_an_event_id_already_recorded_as_another_event_is_a_duplicate_event(case: LogCase) -> None:
    one, other = case.story().next(), case.story().next()
    await case.log.append(one)
    reused = other.events[0].model_copy(update={"event_id": one.events[0].event_id})

    with pytest.raises(DuplicateEvent, match="already recorded as event 1"):
        await case.log.append(relabel(other, [reused]))
    assert await case.log.events(case.id_of(other)) == []


async def test_a_request_recorded_only_in_part_is_a_duplicate_event(case: LogCase) -> None:
    first, second, third = case.story().take(3)
    await append_all(case.log, [first, second])

    with pytest.raises(DuplicateEvent, match="Part of this request"):
        await case.log.append(joined(second, third))
    assert [e.seq for e in await case.log.events(case.id_of(first))] == [1, 2]


async def test_a_gap_in_seq_is_a_sequence_gap(case: LogCase) -> None:
    first, _, third = case.story().take(3)
    await case.log.append(first)

    with pytest.raises(SequenceGap, match=f"out of sequence on {case.log.word} .*gap"):
        await case.log.append(third)
    assert [e.seq for e in await case.log.events(case.id_of(first))] == [1]


async def test_a_prev_hash_that_is_not_the_heads_hash_is_chain_broken(case: LogCase) -> None:
    first, second = case.story().take(2)
    await case.log.append(first)
    # Consistent in itself (so `check_request` lets it through), but chained to another head.
    moved = second.events[0].model_copy(update={"prev_hash": "a" * 64})

    with pytest.raises(ChainBroken, match="prev_hash"):
        await case.log.append(relabel(second, [moved]))
    assert [e.seq for e in await case.log.events(case.id_of(first))] == [1]


def _another_streams_events(case: LogCase, requests: list[Request]) -> Request:
    other = case.story().next()
    return other.model_copy(update={case.key: case.id_of(requests[1])})


def _not_consecutive(case: LogCase, requests: list[Request]) -> Request:
    return joined(requests[1], requests[3])


def _hash_not_matching(case: LogCase, requests: list[Request]) -> Request:
    tampered = requests[1].events[0].model_copy(update={"command_id": "someone-else"})
    return relabel(requests[1], [tampered], rehash=False)


def _uppercase_event_id(case: LogCase, requests: list[Request]) -> Request:
    event = requests[1].events[0]
    return relabel(requests[1], [event.model_copy(update={"event_id": event.event_id.upper()})])


def _event_id_twice(case: LogCase, requests: list[Request]) -> Request:
    second, third = requests[1].events[0], requests[2].events[0]
    again = third.model_copy(update={"event_id": second.event_id})
    return relabel(requests[2], [second, again])


def _summary_not_after_the_last_event(case: LogCase, requests: list[Request]) -> Request:
    return requests[1].model_copy(update={"summary": requests[2].summary})


def _no_events(case: LogCase, requests: list[Request]) -> Request:
    return requests[1].model_copy(update={"events": []})


@pytest.mark.parametrize(
    ("build", "refusal"),
    [
        (_another_streams_events, "carries an event of"),
        (_not_consecutive, "not consecutive"),
        (_hash_not_matching, "does not match its content"),
        (_uppercase_event_id, "not a lowercase UUID"),
        (_event_id_twice, "twice"),
        (_summary_not_after_the_last_event, "not the state after event"),
        (_no_events, "carries no event"),
    ],
    ids=["another-stream", "not-consecutive", "hash", "uuid", "id-twice", "summary", "empty"],
)
async def test_a_request_inconsistent_in_itself_is_invalid_append_and_writes_nothing(
    case: LogCase, build: Callable[[LogCase, list[Request]], Request], refusal: str
) -> None:
    requests = case.story().take(4)
    await case.log.append(requests[0])
    stream_id = case.id_of(requests[0])
    before = await case.counts(stream_id)

    with pytest.raises(InvalidAppend, match=refusal) as refused:
        await case.log.append(build(case, requests))

    assert f"{case.log.word} {stream_id}" in refused.value.message
    assert await case.counts(stream_id) == before
    assert await case.log.summary(stream_id) == requests[0].summary


# --- the database guards the log --------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {events} SET payload = '{{}}'::jsonb WHERE {key} = $1",
        "DELETE FROM {events} WHERE {key} = $1",
        # CASCADE: a plain TRUNCATE already stops at the outbox's foreign key.
        "TRUNCATE {events} CASCADE",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_the_database_refuses_update_delete_and_truncate_of_the_log(
    case: LogCase, statement: str
) -> None:
    request = case.story().next()
    await case.log.append(request)
    stream_id = case.id_of(request)
    sql = statement.format(events=case.log.tables.events, key=case.key)
    args = [stream_id] if "$1" in sql else []

    with pytest.raises(asyncpg.PostgresError, match="append-only") as refused:
        await case.log.pool.execute(sql, *args)
    assert refused.value.sqlstate == APPEND_ONLY_SQLSTATE
    with pytest.raises(AppendOnlyViolation, match=f"append-only on {case.log.word} {stream_id}"):
        async with translated(stream_id, stream=case.log.word):
            await case.log.pool.execute(sql, *args)

    assert await case.log.events(stream_id) == request.events


async def insert_raw(conn: Connection, case: LogCase, stream_id: str, seq: int, prev_hash: str) -> None:
    """A hand-made row, bypassing the store: only the database's own checks apply."""
    await conn.execute(
        f"INSERT INTO {case.log.tables.events} ({case.key}, seq, event_id, type, schema_version,"
        " occurred_at, actor_id, actor_role, command_id, payload, prev_hash, hash)"
        " VALUES ($1, $2, $3, 'HandMade', 1, now(), 'mgr', 'manager', 'c', $4, $5, $6)",
        stream_id,
        seq,
        uuid.uuid4(),
        {"comment": "hand-made"},
        prev_hash,
        "f" * 64,
    )


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


async def test_the_database_refuses_a_gap_in_seq(case: LogCase) -> None:
    stream_id = f.new_id()
    async with rolled_back(case.log.pool) as conn:
        with pytest.raises(asyncpg.PostgresError, match="gap") as first_not_one:
            async with conn.transaction():
                await insert_raw(conn, case, stream_id, 2, GENESIS_HASH)
        assert first_not_one.value.sqlstate == SEQUENCE_GAP_SQLSTATE
        await insert_raw(conn, case, stream_id, 1, GENESIS_HASH)
        with pytest.raises(asyncpg.PostgresError, match="gap") as skipped:
            async with conn.transaction():
                await insert_raw(conn, case, stream_id, 3, "f" * 64)
        assert skipped.value.sqlstate == SEQUENCE_GAP_SQLSTATE


async def test_the_database_refuses_a_wrong_prev_hash(case: LogCase) -> None:
    stream_id = f.new_id()
    async with rolled_back(case.log.pool) as conn:
        with pytest.raises(asyncpg.PostgresError, match="prev_hash") as not_genesis:
            async with conn.transaction():
                await insert_raw(conn, case, stream_id, 1, "a" * 64)
        assert not_genesis.value.sqlstate == CHAIN_BROKEN_SQLSTATE
        await insert_raw(conn, case, stream_id, 1, GENESIS_HASH)
        with pytest.raises(asyncpg.PostgresError, match="prev_hash") as not_previous:
            async with conn.transaction():
                await insert_raw(conn, case, stream_id, 2, "a" * 64)
        assert not_previous.value.sqlstate == CHAIN_BROKEN_SQLSTATE


async def test_the_auditor_role_reads_the_log_and_read_model_but_cannot_write(case: LogCase) -> None:
    request = case.story().next()
    await case.log.append(request)
    stream_id, t = case.id_of(request), case.log.tables
    async with rolled_back(case.log.pool) as conn:
        await conn.execute("SET LOCAL ROLE visitflow_auditor")
        assert await conn.fetchval(f"SELECT count(*) FROM {t.events} WHERE {case.key} = $1", stream_id) == 1
        assert await conn.fetchval(f"SELECT status FROM {t.read_model} WHERE {case.key} = $1", stream_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await insert_raw(conn, case, f.new_id(), 1, GENESIS_HASH)


# --- outbox and read model --------------------------------------------------------------


async def test_notifying_events_write_their_outbox_rows_in_the_same_append(case: LogCase) -> None:
    requests = case.story().all()
    await append_all(case.log, requests)
    stream_id = case.id_of(requests[0])
    expected = [row for r in requests for e in r.events if (row := case.log.tables.outbox_row(e)) is not None]
    assert len(expected) == 3

    columns = ", ".join(case.key if c == "stream_id" else c for c in expected[0]._fields)
    stored = await case.log.pool.fetch(
        f"SELECT {columns} FROM {case.log.tables.outbox} WHERE {case.key} = $1 ORDER BY seq", stream_id
    )
    assert [(str(r["id"]), *tuple(r)[1:]) for r in stored] == [tuple(row) for row in expected]


async def test_pending_notifications_are_counted_when_they_fail_and_marked_sent_once(case: LogCase) -> None:
    requests = case.story().all()
    await append_all(case.log, requests)
    ids = [e.event_id for r in requests for e in r.events if case.log.tables.outbox_row(e) is not None]

    pending = {n["id"]: n for n in await case.log.pending_notifications(limit=10_000)}
    assert all(pending[i]["attempts"] == 0 for i in ids)
    assert await case.log.mark_failed(ids) == 3
    pending = {n["id"]: n for n in await case.log.pending_notifications(limit=10_000)}
    assert all(pending[i]["attempts"] == 1 for i in ids)

    assert await case.log.mark_sent(ids) == 3
    assert await case.log.mark_sent(ids) == 0
    assert await case.log.mark_failed(ids) == 0
    still_pending = {n["id"] for n in await case.log.pending_notifications(limit=10_000)}
    assert still_pending.isdisjoint(ids)


async def test_a_failed_append_leaves_no_event_no_outbox_row_and_the_read_model_as_it_was(
    case: LogCase,
) -> None:
    requests = case.story().all()
    notifying = [i for i, r in enumerate(requests) if case.log.tables.outbox_row(r.events[0]) is not None]
    done, failing = requests[: notifying[1]], requests[notifying[1]]
    await append_all(case.log, done)
    stream_id = case.id_of(failing)
    before = await case.counts(stream_id)
    assert before[1] == 1
    # The read-model row is written last; a value its table refuses fails the whole append.
    refused = relabel(failing, failing.events, summary_update={"escalation_level": -1})

    with pytest.raises(InvalidAppend, match="refused the data"):
        await case.log.append(refused)

    assert await case.counts(stream_id) == before
    assert await case.log.summary(stream_id) == done[-1].summary


async def test_the_read_model_follows_the_log_and_never_moves_backwards(case: LogCase) -> None:
    requests = case.story().all()
    for request in requests:
        await case.log.append(request)
        assert await case.log.summary(case.id_of(request)) == request.summary

    stale = requests[2].summary
    async with case.log.pool.acquire() as conn:
        assert not await case.log.upsert_summary(conn, stale)
    assert await case.log.summary(case.id_of(requests[0])) == requests[-1].summary


async def test_rebuild_read_model_rewrites_the_rows_from_the_log(case: LogCase) -> None:
    finished, halfway = case.story().all(), case.story().take(4)
    await append_all(case.log, finished + halfway)
    ids = [case.id_of(finished[0]), case.id_of(halfway[0])]
    before = [await case.log.summary(i) for i in ids]
    t = case.log.tables
    await case.log.pool.execute(f"UPDATE {t.read_model} SET {case.stale} WHERE {case.key} = ANY($1)", ids)
    assert [await case.log.summary(i) for i in ids] != before

    assert await case.log.rebuild_read_model(ids[0]) == 1
    assert await case.log.rebuild_read_model() >= 2
    assert [await case.log.summary(i) for i in ids] == before
    assert await case.log.rebuild_read_model(f.new_id()) == 0


# --- reading several streams ------------------------------------------------------------


async def test_select_raw_rows_of_and_heads_read_several_streams_at_once(case: LogCase) -> None:
    one, two = case.story().take(3), case.story().take(2)
    await append_all(case.log, one + two)
    ids = sorted([case.id_of(one[0]), case.id_of(two[0])])
    first, last = one[0].events[0].occurred_at, one[-1].events[-1].occurred_at

    assert await case.log.select(ids=[*ids, f.new_id()]) == ids
    assert await case.log.select(ids=ids, id_from=ids[1]) == ids[1:]
    assert await case.log.select(ids=ids, id_to=ids[0]) == ids[:1]
    assert await case.log.select(ids=ids, occurred_from=last) == [case.id_of(one[0])]
    assert await case.log.select(ids=ids, occurred_to=first) == []
    assert (
        await case.log.select(ids=ids, occurred_from=first, occurred_to=first + timedelta(seconds=1)) == ids
    )

    rows = await case.log.raw_rows_of(ids)
    assert rows == [row for i in ids for row in await case.log.raw_rows(i)]
    before_last = await case.log.raw_rows_of(ids, before=last)
    assert before_last == [r for r in rows if r["occurred_at"] < last]
    assert await case.log.heads(ids) == {
        case.id_of(r[0]): (r[-1].events[-1].seq, r[-1].events[-1].hash) for r in (one, two)
    }


async def test_a_row_that_is_not_a_current_event_is_unreadable_naming_its_stream(case: LogCase) -> None:
    request = case.story().next()
    await case.log.append(request)
    stream_id = case.id_of(request)
    row = (await case.log.raw_rows(stream_id))[0]
    where = f"Event 1 of {case.log.word} {stream_id}"

    with pytest.raises(UnreadableEvent, match=f"{where} .* not a JSON object"):
        case.log.tables.recorded_from_row({**row, "payload": ["not", "an", "object"]})
    with pytest.raises(UnreadableEvent, match=f"{where} .* cannot be read as a current event"):
        case.log.tables.recorded_from_row({**row, "payload": {}})


async def test_an_unreachable_database_is_store_unavailable(case: LogCase, database_url: str) -> None:
    closed = await create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    request = case.story().next()

    with pytest.raises(StoreUnavailable, match=f"for {case.log.word} {case.id_of(request)}"):
        await EventLog(case.log.tables, closed).append(request)
