"""The PostgreSQL event store: idempotent gapless appends, reads, the read model and the outbox.

An append is one transaction under a per-visit advisory lock: the events, their outbox rows
and the visit's read-model row commit together or not at all. The database itself refuses
gaps, broken chains and any change to recorded rows (see migrations/0001_event_log.sql);
this module turns its refusals into the named errors of `activities.errors`.
"""

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from activities.db import Connection
from activities.errors import (
    DuplicateEvent,
    InvalidAppend,
    UnreadableEvent,
    field_problems,
    translated,
)
from activities.models import AppendRequest, AppendResult
from activities.outbox import (
    INSERT_NOTIFICATION,
    Notification,
    notification_args,
    notification_from_row,
)
from domain.actors import Actor
from domain.chain import HASHED_FIELDS, link_hash
from domain.events import Event, RecordedEvent
from domain.state import VisitStatus, fold
from domain.summary import VisitSummary, summarize
from domain.upcasting import upcast

VISIT_LOCK_SPACE = 0x5646
"""First key of the two-key advisory locks that serialise appends to one visit."""

HASHED_COLUMNS = HASHED_FIELDS
"""The `visit_events` columns covered by a row's hash (defined once, in `domain.chain`)."""

EVENT_COLUMNS = (*HASHED_COLUMNS, "recorded_at", "prev_hash", "hash")

SUMMARY_COLUMNS = tuple(VisitSummary.model_fields)

_SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM visit_events"

_INSERT_EVENT = """
INSERT INTO visit_events (visit_id, seq, event_id, type, schema_version, occurred_at,
                          actor_id, actor_role, command_id, payload, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""

_SELECT_VISITS = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM visits"

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

Row = asyncpg.Record | Mapping[str, Any]
"""A fetched row, or one of `raw_rows`' dicts."""


def upsert_sql(table: str, key: str, columns: Sequence[str], *, forward_only: bool) -> str:
    """The upsert of a read-model row; with `forward_only`, only over an older `last_seq`."""
    names = ", ".join(columns)
    params = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    # A stale writer (an older last_seq) must never drag the row back in time.
    guard = f" WHERE {table}.last_seq < EXCLUDED.last_seq" if forward_only else ""
    return (
        f"INSERT INTO {table} ({names}) VALUES ({params}) ON CONFLICT ({key}) DO UPDATE SET "
        f"{updates}, updated_in_db_at = clock_timestamp(){guard}"
    )


_UPSERT_FORWARD = upsert_sql("visits", "visit_id", SUMMARY_COLUMNS, forward_only=True)
_UPSERT_FORCE = upsert_sql("visits", "visit_id", SUMMARY_COLUMNS, forward_only=False)


def domain_event_from_row(event_type: str, schema_version: int, payload: Mapping[str, Any]) -> Event:
    """The domain event stored as (type, schema_version, payload), upcast to the current schema.

    Raises pydantic's ValidationError when the upcast payload is not a valid current event.
    """
    version, body = upcast(event_type, schema_version, dict(payload))
    return _EVENT_ADAPTER.validate_python({**body, "type": event_type, "schema_version": version})


def recorded_from_row(row: Row) -> RecordedEvent:
    """The `RecordedEvent` of a `visit_events` row, or `UnreadableEvent`."""
    if not isinstance(row["payload"], Mapping):
        raise UnreadableEvent(
            f"Event {row['seq']} of visit {row['visit_id']} ({row['type']}) has a payload that is "
            "not a JSON object."
        )
    try:
        return RecordedEvent(
            event_id=str(row["event_id"]),
            visit_id=row["visit_id"],
            seq=row["seq"],
            occurred_at=row["occurred_at"],
            actor=Actor(id=row["actor_id"], role=row["actor_role"]),
            command_id=row["command_id"],
            event=domain_event_from_row(row["type"], row["schema_version"], row["payload"]),
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )
    except ValidationError as exc:
        problems = field_problems(exc)
        raise UnreadableEvent(
            f"Event {row['seq']} of visit {row['visit_id']} ({row['type']} version "
            f"{row['schema_version']}) cannot be read as a current event: {problems}."
        ) from exc


def summary_from_row(row: Row) -> VisitSummary:
    """The `VisitSummary` of a `visits` row."""
    return VisitSummary.model_validate({c: row[c] for c in SUMMARY_COLUMNS})


def db_value(value: Any) -> Any:
    """A value as the database column takes it (an enum as its text)."""
    return value.value if isinstance(value, Enum) else value


def _summary_args(summary: VisitSummary) -> list[Any]:
    return [db_value(getattr(summary, c)) for c in SUMMARY_COLUMNS]


def _event_args(e: RecordedEvent) -> tuple[Any, ...]:
    return (
        e.visit_id,
        e.seq,
        e.event_id,
        e.event.type,
        e.event.schema_version,
        e.occurred_at,
        e.actor.id,
        e.actor.role.value,
        e.command_id,
        e.payload(),
        e.prev_hash,
        e.hash,
    )


def check_request(req: AppendRequest) -> None:
    """Refuse (`InvalidAppend`) a request that is inconsistent in itself.

    The database checks the request against the log; this checks what only the request can
    show: one visit, consecutive seqs chained to each other, hashes that match their content
    (a row whose hash does not would later read as tampered), canonical UUID event ids (the
    uuid column would otherwise store a different text than the one hashed), and a summary
    of the state after the last event.
    """
    v = req.visit_id
    previous: RecordedEvent | None = None
    seen: set[str] = set()
    for e in req.events:
        where = f"event {e.seq} of visit {v}"
        if e.visit_id != v:
            raise InvalidAppend(f"The request for visit {v} carries an event of visit {e.visit_id}.")
        if previous is not None and (e.seq != previous.seq + 1 or e.prev_hash != previous.hash):
            raise InvalidAppend(f"The events of the request for visit {v} are not consecutive at {where}.")
        if canonical_uuid(e.event_id) != e.event_id:
            raise InvalidAppend(f"The id of {where} is not a lowercase UUID: {e.event_id!r}.")
        if e.event_id in seen:
            raise InvalidAppend(f"The request for visit {v} uses event id {e.event_id} twice.")
        if link_hash(e.prev_hash, e.content()) != e.hash:
            raise InvalidAppend(f"The hash of {where} does not match its content.")
        seen.add(e.event_id)
        previous = e
    last = req.events[-1]
    s = req.summary
    if (s.visit_id, s.last_seq, s.head_hash) != (v, last.seq, last.hash):
        raise InvalidAppend(
            f"The summary sent with the request for visit {v} is not the state after event {last.seq}."
        )


def canonical_uuid(text: str) -> str | None:
    """The lowercase text of a UUID, or None when `text` is not one."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


async def lock_visit(conn: Connection, visit_id: str) -> None:
    """Serialise writers of one visit until the current transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", VISIT_LOCK_SPACE, visit_id)


async def upsert_summary(conn: Connection, summary: VisitSummary, *, force: bool = False) -> bool:
    """Write the visit's read-model row; unless `force`, only when it moves the row forward.

    Returns whether the row was written.
    """
    status = await conn.execute(_UPSERT_FORCE if force else _UPSERT_FORWARD, *_summary_args(summary))
    return status.endswith(" 1")


class EventStore:
    """The event log, the `visits` read model and the notification outbox on one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def append(self, req: AppendRequest) -> AppendResult:
        """Record the request's events, their notifications and the read-model row, atomically.

        A repeat of a request already recorded (a retried activity) writes nothing and
        returns the original result with `duplicate=True`. Raises `SequenceConflict` when
        another event holds the seq, `SequenceGap`, `ChainBroken`, `DuplicateEvent`,
        `InvalidAppend`, or `StoreUnavailable` for passing failures.
        """
        check_request(req)
        last = req.events[-1]
        async with translated(req.visit_id), self._pool.acquire() as conn, conn.transaction():
            await lock_visit(conn, req.visit_id)
            if await self._already_recorded(conn, req):
                return AppendResult(
                    visit_id=req.visit_id, last_seq=last.seq, head_hash=last.hash, duplicate=True
                )
            await conn.executemany(_INSERT_EVENT, [_event_args(e) for e in req.events])
            outbox = [args for e in req.events if (args := notification_args(e)) is not None]
            if outbox:
                await conn.executemany(INSERT_NOTIFICATION, outbox)
            await upsert_summary(conn, req.summary)
        return AppendResult(visit_id=req.visit_id, last_seq=last.seq, head_hash=last.hash)

    async def _already_recorded(self, conn: Connection, req: AppendRequest) -> bool:
        rows = await conn.fetch(
            "SELECT event_id, visit_id, seq, hash FROM visit_events WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in req.events],
        )
        if not rows:
            return False
        stored = {str(r["event_id"]): r for r in rows}
        for e in req.events:
            row = stored.get(e.event_id)
            if row is None:
                raise DuplicateEvent(
                    f"Part of this request for visit {req.visit_id} is already recorded, but event "
                    f"{e.event_id} (seq {e.seq}) is not; the request was not sent the same way twice."
                )
            if (row["visit_id"], row["seq"], row["hash"]) != (e.visit_id, e.seq, e.hash):
                raise DuplicateEvent(
                    f"Event id {e.event_id} is already recorded as event {row['seq']} of visit "
                    f"{row['visit_id']}, with other content than event {e.seq} of this request."
                )
        return True

    async def events(
        self, visit_id: str, *, after_seq: int = 0, until: datetime | None = None
    ) -> list[RecordedEvent]:
        """The visit's events after `after_seq`, in seq order; with `until`, only those that
        occurred at or before it (the log as it stood then)."""
        async with translated(visit_id):
            rows = await self._pool.fetch(
                f"{_SELECT_EVENTS} WHERE visit_id = $1 AND seq > $2"
                " AND ($3::timestamptz IS NULL OR occurred_at <= $3) ORDER BY seq",
                visit_id,
                after_seq,
                until,
            )
        return [recorded_from_row(r) for r in rows]

    async def raw_rows(self, visit_id: str) -> list[dict[str, Any]]:
        """The visit's rows exactly as stored (event_id as text), in seq order.

        Verify hashes on these, not on `events()`: upcasting changes what `events()` returns.
        """
        async with translated(visit_id):
            rows = await self._pool.fetch(f"{_SELECT_EVENTS} WHERE visit_id = $1 ORDER BY seq", visit_id)
        return [{**dict(r), "event_id": str(r["event_id"])} for r in rows]

    async def find_command(self, visit_id: str, command_id: str) -> list[RecordedEvent]:
        """The events recorded for `command_id` on the visit (empty when it was never recorded)."""
        async with translated(visit_id):
            rows = await self._pool.fetch(
                f"{_SELECT_EVENTS} WHERE visit_id = $1 AND command_id = $2 ORDER BY seq",
                visit_id,
                command_id,
            )
        return [recorded_from_row(r) for r in rows]

    async def visit(self, visit_id: str) -> VisitSummary | None:
        """The visit's read-model row, or None when no such visit is recorded."""
        async with translated(visit_id):
            row = await self._pool.fetchrow(f"{_SELECT_VISITS} WHERE visit_id = $1", visit_id)
        return summary_from_row(row) if row is not None else None

    async def overdue(self, now: datetime, limit: int = 200) -> list[VisitSummary]:
        """Open visits with a deadline before `now` or an escalation, soonest deadline first."""
        async with translated():
            rows = await self._pool.fetch(
                f"{_SELECT_VISITS} WHERE status <> $1"
                " AND (next_due_at < $2 OR cardinality(escalated) > 0)"
                " ORDER BY next_due_at NULLS LAST, visit_id LIMIT $3",
                VisitStatus.closed.value,
                now,
                limit,
            )
        return [summary_from_row(r) for r in rows]

    async def list_visits(
        self,
        rep_id: str | None = None,
        manager_id: str | None = None,
        status: VisitStatus | str | None = None,
        limit: int = 100,
    ) -> list[VisitSummary]:
        """Visits matching every filter given, latest scheduled first."""
        async with translated():
            rows = await self._pool.fetch(
                f"{_SELECT_VISITS} WHERE ($1::text IS NULL OR rep_id = $1)"
                " AND ($2::text IS NULL OR manager_id = $2) AND ($3::text IS NULL OR status = $3)"
                " ORDER BY scheduled_start DESC, visit_id LIMIT $4",
                rep_id,
                manager_id,
                db_value(status),
                limit,
            )
        return [summary_from_row(r) for r in rows]

    async def pending_notifications(self, limit: int = 100) -> list[Notification]:
        """Outbox rows not yet sent, oldest first.

        Delivery is at least once: a relay that dies before `mark_sent` sends again, so
        receivers should de-duplicate on the notification id.
        """
        async with translated():
            rows = await self._pool.fetch(
                "SELECT * FROM notifications WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1",
                limit,
            )
        return [notification_from_row(r) for r in rows]

    async def mark_sent(self, ids: Iterable[str]) -> int:
        """Record that these notifications were delivered; returns how many were still pending."""
        async with translated():
            status = await self._pool.execute(
                "UPDATE notifications SET sent_at = now(), attempts = attempts + 1"
                " WHERE id = ANY($1::uuid[]) AND sent_at IS NULL",
                list(ids),
            )
        return int(status.split()[-1])

    async def mark_failed(self, ids: Iterable[str]) -> int:
        """Count a failed delivery attempt of these notifications; they stay pending."""
        async with translated():
            status = await self._pool.execute(
                "UPDATE notifications SET attempts = attempts + 1"
                " WHERE id = ANY($1::uuid[]) AND sent_at IS NULL",
                list(ids),
            )
        return int(status.split()[-1])

    async def rebuild_read_model(self, visit_id: str | None = None) -> int:
        """Rewrite `visits` rows by folding the log again (one visit, or all); returns rows written.

        Each visit is refolded in its own transaction under its append lock, so appends
        running meanwhile are neither lost nor overwritten.
        """
        async with translated(visit_id), self._pool.acquire() as conn:
            if visit_id is not None:
                ids = [visit_id]
            else:
                ids = [r["visit_id"] for r in await conn.fetch("SELECT DISTINCT visit_id FROM visit_events")]
                await conn.execute(
                    "DELETE FROM visits v WHERE NOT EXISTS"
                    " (SELECT 1 FROM visit_events e WHERE e.visit_id = v.visit_id)"
                )
            written = 0
            for vid in ids:
                written += await self._rebuild_one(conn, vid)
        return written

    async def _rebuild_one(self, conn: Connection, visit_id: str) -> int:
        async with conn.transaction():
            await lock_visit(conn, visit_id)
            rows = await conn.fetch(f"{_SELECT_EVENTS} WHERE visit_id = $1 ORDER BY seq", visit_id)
            try:
                state = fold(recorded_from_row(r) for r in rows)
            except ValueError as exc:
                raise UnreadableEvent(f"The events of visit {visit_id} cannot be folded: {exc}") from exc
            if state is None:
                await conn.execute("DELETE FROM visits WHERE visit_id = $1", visit_id)
                return 0
            await upsert_summary(conn, summarize(state), force=True)
            return 1

    # --- audit reads ----------------------------------------------------------------------

    async def select_visits(
        self,
        *,
        visit_ids: Iterable[str] = (),
        id_from: str | None = None,
        id_to: str | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
    ) -> list[str]:
        """Ids of the visits with logged events matching every filter given, in id order.

        `visit_ids` lists visits by name; `id_from`/`id_to` bound the id range (inclusive);
        `occurred_from` (inclusive) and `occurred_to` (exclusive) keep visits with at least
        one event that occurred in that period.
        """
        ids = list(visit_ids)
        async with translated():
            rows = await self._pool.fetch(
                "SELECT DISTINCT visit_id FROM visit_events"
                " WHERE (cardinality($1::text[]) = 0 OR visit_id = ANY($1))"
                " AND ($2::text IS NULL OR visit_id >= $2) AND ($3::text IS NULL OR visit_id <= $3)"
                " AND ($4::timestamptz IS NULL OR occurred_at >= $4)"
                " AND ($5::timestamptz IS NULL OR occurred_at < $5)"
                " ORDER BY visit_id",
                ids,
                id_from,
                id_to,
                occurred_from,
                occurred_to,
            )
        return [r["visit_id"] for r in rows]

    async def raw_rows_of(
        self, visit_ids: list[str], *, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The stored rows of several visits (event_id as text), by visit then seq; with
        `before`, only the events that occurred before it (each log as it stood then)."""
        async with translated():
            rows = await self._pool.fetch(
                f"{_SELECT_EVENTS} WHERE visit_id = ANY($1::text[])"
                " AND ($2::timestamptz IS NULL OR occurred_at < $2) ORDER BY visit_id, seq",
                visit_ids,
                before,
            )
        return [{**dict(r), "event_id": str(r["event_id"])} for r in rows]

    async def heads(self, visit_ids: list[str]) -> dict[str, tuple[int, str]]:
        """The read model's (last seq, head hash) of each visit that has a row there.

        The anchor a log's tail is checked against: deleting the newest events leaves a
        valid but shorter chain, which only a head kept elsewhere reveals.
        """
        async with translated():
            rows = await self._pool.fetch(
                "SELECT visit_id, last_seq, head_hash FROM visits WHERE visit_id = ANY($1::text[])",
                visit_ids,
            )
        return {r["visit_id"]: (r["last_seq"], r["head_hash"]) for r in rows}

    # --- KPI reads ------------------------------------------------------------------------

    async def visits_for_period(
        self, start: datetime, end: datetime, *, before: datetime | None = None
    ) -> list[str]:
        """Ids of the visits a period's figures can depend on, in id order: those with an
        event in [start, end), those planned (at any revision or reschedule) to start in it,
        and those with a report before `end` that were not closed before `start` (their
        promised items may be open, and overdue, in the period). With `before`, only the
        events that occurred before it count."""
        # The plan's start is read from the payload: a visit is planned for the period even
        # when nothing happened to it in the period yet (monthly plans are made the month before).
        query = """
            SELECT DISTINCT e.visit_id FROM visit_events e
            WHERE ($3::timestamptz IS NULL OR e.occurred_at < $3) AND (
                (e.occurred_at >= $1 AND e.occurred_at < $2)
                OR (e.type IN ('PlanSubmitted', 'PlanRevised')
                    AND (e.payload #>> '{plan,scheduled_start}')::timestamptz >= $1
                    AND (e.payload #>> '{plan,scheduled_start}')::timestamptz < $2)
                OR (e.type = 'VisitRescheduled'
                    AND (e.payload ->> 'scheduled_start')::timestamptz >= $1
                    AND (e.payload ->> 'scheduled_start')::timestamptz < $2)
                OR (e.type = 'ReportSubmitted' AND e.occurred_at < $2 AND NOT EXISTS (
                    SELECT 1 FROM visit_events c WHERE c.visit_id = e.visit_id
                    AND c.type = 'VisitClosed' AND c.occurred_at < LEAST($1, COALESCE($3, $1))))
            )
            ORDER BY e.visit_id
        """
        async with translated():
            rows = await self._pool.fetch(query, start, end, before)
        return [r["visit_id"] for r in rows]
