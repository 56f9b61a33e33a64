"""One event log on PostgreSQL, parametrised by its tables: every stream's store guarantees, once.

A log is three tables: the events (append-only, gapless per stream, hash-chained; the
database refuses anything else, see migrations/), a read model with one row per stream
(the stream's summary) and an outbox of notifications. `LogTables` names one log's tables
and says how its rows read; `EventLog` holds the guarantees for any of them:

- an append is one transaction under a per-stream advisory lock, in which the events,
  their outbox rows and the read-model row commit together or not at all;
- a repeated append (a retried activity) writes nothing and answers the original result;
- the read model only moves forward, and can be rebuilt from the log at any time.

The database's refusals become the named errors of `activities.errors`, whose sentences
name the stream ("on visit V", "of plan P").
"""

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import cached_property
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import asyncpg
from pydantic import BaseModel, TypeAdapter, ValidationError

from activities.db import Connection
from activities.errors import DuplicateEvent, InvalidAppend, UnreadableEvent, field_problems, translated
from domain.actors import Actor
from domain.chain import HASHED_FIELDS, link_hash
from domain.stream import Recorded, Stream
from domain.upcasting import upcast

S = TypeVar("S")
R = TypeVar("R", bound=Recorded)
R_co = TypeVar("R_co", bound=Recorded, covariant=True)
M = TypeVar("M", bound=BaseModel)
A = TypeVar("A", bound=BaseModel)

Row = asyncpg.Record | Mapping[str, Any]
"""A fetched row, or one of `raw_rows`' dicts."""


class OutboxRow(NamedTuple):
    """One notification, written with the event that causes it (its id is that event's id).

    The fields are the outbox table's columns in order, `stream_id` standing for the
    table's stream column (`visit_id`, `plan_id`).
    """

    id: str
    stream_id: str
    seq: int
    kind: str
    recipient_id: str
    recipient_role: str
    level: int | None
    concern: str
    message: str
    due_at: datetime


class Summary(Protocol):
    """What the log reads of a read-model row itself: where the stream's log ends."""

    @property
    def last_seq(self) -> int: ...

    @property
    def head_hash(self) -> str: ...


class Request(Protocol[R_co]):
    """An append activity's input (`AppendRequest`, `PlanAppendRequest`): events numbered and
    chained by the workflow, and the read-model row after them. Its stream id is the field
    named like the envelope's `stream_field`."""

    @property
    def events(self) -> Sequence[R_co]: ...

    @property
    def summary(self) -> Summary: ...


@dataclass(frozen=True)
class LogTables(Generic[S, R, M, A]):
    """One log's tables and how its rows read: all that differs between two logs.

    Every table names the stream in the column the envelope calls `stream_field`; the read
    model's columns are the fields of `summary`; the outbox's are those of `OutboxRow`.
    """

    stream: Stream[S, R]
    """The stream kernel's description: the envelope (its `stream_field`), `fold`, the `name`."""
    events: str
    """The append-only log."""
    read_model: str
    """One row per stream, keyed by the stream column."""
    summary: type[M]
    summarize: Callable[[S], M]
    """The read-model row of a state (for rebuilds)."""
    result: type[A]
    """What an append answers (`AppendResult`, `PlanAppendResult`)."""
    outbox: str
    outbox_row: Callable[[R], OutboxRow | None]
    """The notification an event puts in the outbox, or None."""
    event_union: TypeAdapter[Any]
    """Reads a stored (upcast) event as one of the stream's event types."""
    lock_space: int
    """First key of the two-key advisory locks that serialise appends to one stream."""

    @property
    def word(self) -> str:
        """The stream's word in messages: "visit", "plan"."""
        return self.stream.name

    @cached_property
    def key(self) -> str:
        """The stream column of every table: `visit_id`, `plan_id`."""
        return self.stream.envelope.stream_field

    @cached_property
    def hashed_columns(self) -> tuple[str, ...]:
        """The log's columns a row's hash covers (`domain.chain`), the stream column first."""
        return (self.key, *HASHED_FIELDS[1:])

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Every column of the log, as `raw_rows` gives them."""
        return (*self.hashed_columns, "recorded_at", "prev_hash", "hash")

    @cached_property
    def summary_columns(self) -> tuple[str, ...]:
        return tuple(self.summary.model_fields)

    def event_from_row(self, event_type: str, schema_version: int, payload: Mapping[str, Any]) -> Any:
        """The event stored as (type, schema_version, payload), upcast to the current schema.

        Raises pydantic's ValidationError when the upcast payload is not a valid current event.
        """
        version, body = upcast(event_type, schema_version, dict(payload))
        return self.event_union.validate_python({**body, "type": event_type, "schema_version": version})

    def recorded_from_row(self, row: Row) -> R:
        """The recorded event of one of the log's rows, or `UnreadableEvent`."""
        key = self.key
        where = f"Event {row['seq']} of {self.word} {row[key]}"
        if not isinstance(row["payload"], Mapping):
            raise UnreadableEvent(f"{where} ({row['type']}) has a payload that is not a JSON object.")
        try:
            return self.stream.envelope.model_validate(
                {
                    key: row[key],
                    "event_id": str(row["event_id"]),
                    "seq": row["seq"],
                    "occurred_at": row["occurred_at"],
                    "actor": Actor(id=row["actor_id"], role=row["actor_role"]),
                    "command_id": row["command_id"],
                    "event": self.event_from_row(row["type"], row["schema_version"], row["payload"]),
                    "prev_hash": row["prev_hash"],
                    "hash": row["hash"],
                }
            )
        except ValidationError as exc:
            raise UnreadableEvent(
                f"{where} ({row['type']} version {row['schema_version']}) cannot be read as a current "
                f"event: {field_problems(exc)}."
            ) from exc

    def summary_from_row(self, row: Row) -> M:
        """The summary of one read-model row."""
        return self.summary.model_validate({c: row[c] for c in self.summary_columns})


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


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """A plain INSERT of `columns`, the arguments in that order."""
    params = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({params})"


def db_value(value: Any) -> Any:
    """A value as the database column takes it (an enum as its text)."""
    return value.value if isinstance(value, Enum) else value


def canonical_uuid(text: str) -> str | None:
    """The lowercase text of a UUID, or None when `text` is not one."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _event_args(e: Recorded) -> tuple[Any, ...]:
    # In the order of `LogTables.hashed_columns`, then the chain.
    return (
        e.stream_id,
        e.seq,
        e.event_id,
        e.type,
        e.event.schema_version,
        e.occurred_at,
        e.actor.id,
        e.actor.role.value,
        e.command_id,
        e.payload(),
        e.prev_hash,
        e.hash,
    )


def _as_stored(row: asyncpg.Record) -> dict[str, Any]:
    return {**dict(row), "event_id": str(row["event_id"])}


class EventLog(Generic[S, R, M, A]):
    """One log (`tables`) on one pool: idempotent gapless appends, reads, read model, outbox."""

    def __init__(self, tables: LogTables[S, R, M, A], pool: asyncpg.Pool) -> None:
        self.tables = tables
        self._pool = pool
        t, key = tables, tables.key
        self._select_events = f"SELECT {', '.join(t.columns)} FROM {t.events}"
        self._select_summaries = f"SELECT {', '.join(t.summary_columns)} FROM {t.read_model}"
        self._insert_event = insert_sql(t.events, (*t.hashed_columns, "prev_hash", "hash"))
        outbox_columns = [key if c == "stream_id" else c for c in OutboxRow._fields]
        self._insert_outbox = insert_sql(t.outbox, outbox_columns)
        self._upsert_forward = upsert_sql(t.read_model, key, t.summary_columns, forward_only=True)
        self._upsert_force = upsert_sql(t.read_model, key, t.summary_columns, forward_only=False)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def word(self) -> str:
        return self.tables.word

    # --- appending ------------------------------------------------------------------------

    def stream_of(self, req: Request[R]) -> str:
        """The id of the stream a request appends to (its field named like the stream column)."""
        return str(getattr(req, self.tables.key))

    def check_request(self, req: Request[R]) -> None:
        """Refuse (`InvalidAppend`) a request that is inconsistent in itself.

        The database checks the request against the log; this checks what only the request
        can show: one stream, consecutive seqs chained to each other, hashes that match their
        content (a row whose hash does not would later read as tampered), canonical UUID event
        ids (the uuid column would otherwise store a different text than the one hashed), and
        a summary of the state after the last event.
        """
        word, sid = self.word, self.stream_of(req)
        if not req.events:
            raise InvalidAppend(f"The request for {word} {sid} carries no event.")
        previous: Recorded | None = None
        seen: set[str] = set()
        for e in req.events:
            where = f"event {e.seq} of {word} {sid}"
            if e.stream_id != sid:
                raise InvalidAppend(f"The request for {word} {sid} carries an event of {word} {e.stream_id}.")
            if previous is not None and (e.seq != previous.seq + 1 or e.prev_hash != previous.hash):
                raise InvalidAppend(
                    f"The events of the request for {word} {sid} are not consecutive at {where}."
                )
            if canonical_uuid(e.event_id) != e.event_id:
                raise InvalidAppend(f"The id of {where} is not a lowercase UUID: {e.event_id!r}.")
            if e.event_id in seen:
                raise InvalidAppend(f"The request for {word} {sid} uses event id {e.event_id} twice.")
            if link_hash(e.prev_hash, e.content()) != e.hash:
                raise InvalidAppend(f"The hash of {where} does not match its content.")
            seen.add(e.event_id)
            previous = e
        last, s = req.events[-1], req.summary
        if (getattr(s, self.tables.key), s.last_seq, s.head_hash) != (sid, last.seq, last.hash):
            raise InvalidAppend(
                f"The summary sent with the request for {word} {sid} is not the state after event {last.seq}."
            )

    async def append(self, req: Request[R]) -> A:
        """Record the request's events, their outbox rows and the read-model row, atomically.

        A repeat of a request already recorded (a retried activity) writes nothing and
        returns the original result with `duplicate=True`. Raises `SequenceConflict` when
        another event holds the seq, `SequenceGap`, `ChainBroken`, `DuplicateEvent`,
        `InvalidAppend`, or `StoreUnavailable` for passing failures.
        """
        self.check_request(req)
        sid, last = self.stream_of(req), req.events[-1]
        async with translated(sid, stream=self.word), self._pool.acquire() as conn, conn.transaction():
            await self.lock(conn, sid)
            duplicate = await self._already_recorded(conn, req)
            if not duplicate:
                await conn.executemany(self._insert_event, [_event_args(e) for e in req.events])
                outbox = [row for e in req.events if (row := self.tables.outbox_row(e)) is not None]
                if outbox:
                    await conn.executemany(self._insert_outbox, outbox)
                await self.upsert_summary(conn, req.summary)
        return self.tables.result.model_validate(
            {self.tables.key: sid, "last_seq": last.seq, "head_hash": last.hash, "duplicate": duplicate}
        )

    async def _already_recorded(self, conn: Connection, req: Request[R]) -> bool:
        """Whether the request is recorded already, exactly; `DuplicateEvent` if only in part."""
        key, word = self.tables.key, self.word
        rows = await conn.fetch(
            f"SELECT event_id, {key} AS stream_id, seq, hash FROM {self.tables.events}"
            " WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in req.events],
        )
        if not rows:
            return False
        stored = {str(r["event_id"]): r for r in rows}
        for e in req.events:
            row = stored.get(e.event_id)
            if row is None:
                raise DuplicateEvent(
                    f"Part of this request for {word} {self.stream_of(req)} is already recorded, but event "
                    f"{e.event_id} (seq {e.seq}) is not; the request was not sent the same way twice."
                )
            if (row["stream_id"], row["seq"], row["hash"]) != (e.stream_id, e.seq, e.hash):
                raise DuplicateEvent(
                    f"Event id {e.event_id} is already recorded as event {row['seq']} of {word} "
                    f"{row['stream_id']}, with other content than event {e.seq} of this request."
                )
        return True

    async def lock(self, conn: Connection, stream_id: str) -> None:
        """Serialise writers of one stream until the current transaction ends."""
        space = self.tables.lock_space
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", space, stream_id)

    async def upsert_summary(self, conn: Connection, summary: object, *, force: bool = False) -> bool:
        """Write the stream's read-model row (a `summary` model); unless `force`, only forward.

        Returns whether the row was written.
        """
        args = [db_value(getattr(summary, c)) for c in self.tables.summary_columns]
        status = await conn.execute(self._upsert_force if force else self._upsert_forward, *args)
        return status.endswith(" 1")

    # --- reading the log ------------------------------------------------------------------

    async def events(self, stream_id: str, *, after_seq: int = 0, until: datetime | None = None) -> list[R]:
        """The stream's events after `after_seq`, in seq order; with `until`, only those that
        occurred at or before it (the log as it stood then)."""
        async with translated(stream_id, stream=self.word):
            rows = await self._pool.fetch(
                f"{self._select_events} WHERE {self.tables.key} = $1 AND seq > $2"
                " AND ($3::timestamptz IS NULL OR occurred_at <= $3) ORDER BY seq",
                stream_id,
                after_seq,
                until,
            )
        return [self.tables.recorded_from_row(r) for r in rows]

    async def raw_rows(self, stream_id: str) -> list[dict[str, Any]]:
        """The stream's rows exactly as stored (event_id as text), in seq order.

        Verify hashes on these, not on `events()`: upcasting changes what `events()` returns.
        """
        async with translated(stream_id, stream=self.word):
            rows = await self._pool.fetch(
                f"{self._select_events} WHERE {self.tables.key} = $1 ORDER BY seq", stream_id
            )
        return [_as_stored(r) for r in rows]

    async def raw_rows_of(
        self, stream_ids: list[str], *, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The stored rows of several streams (event_id as text), by stream then seq; with
        `before`, only the events that occurred before it (each log as it stood then)."""
        key = self.tables.key
        async with translated():
            rows = await self._pool.fetch(
                f"{self._select_events} WHERE {key} = ANY($1::text[])"
                f" AND ($2::timestamptz IS NULL OR occurred_at < $2) ORDER BY {key}, seq",
                stream_ids,
                before,
            )
        return [_as_stored(r) for r in rows]

    async def find_command(self, stream_id: str, command_id: str) -> list[R]:
        """The events recorded for `command_id` on the stream (empty when it was never recorded)."""
        async with translated(stream_id, stream=self.word):
            rows = await self._pool.fetch(
                f"{self._select_events} WHERE {self.tables.key} = $1 AND command_id = $2 ORDER BY seq",
                stream_id,
                command_id,
            )
        return [self.tables.recorded_from_row(r) for r in rows]

    async def state(self, stream_id: str) -> S | None:
        """The stream folded from its log, or None when nothing is recorded for it."""
        return self._fold(stream_id, await self.events(stream_id))

    def _fold(self, stream_id: str, events: Iterable[R]) -> S | None:
        try:
            return self.tables.stream.fold(events)
        except ValueError as exc:
            raise UnreadableEvent(f"The events of {self.word} {stream_id} cannot be folded: {exc}") from exc

    async def select(
        self,
        *,
        ids: Iterable[str] = (),
        id_from: str | None = None,
        id_to: str | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
    ) -> list[str]:
        """Ids of the streams with logged events matching every filter given, in id order.

        `ids` lists streams by name; `id_from`/`id_to` bound the id range (inclusive);
        `occurred_from` (inclusive) and `occurred_to` (exclusive) keep streams with at least
        one event that occurred in that period.
        """
        key = self.tables.key
        async with translated():
            rows = await self._pool.fetch(
                f"SELECT DISTINCT {key} FROM {self.tables.events}"
                f" WHERE (cardinality($1::text[]) = 0 OR {key} = ANY($1))"
                f" AND ($2::text IS NULL OR {key} >= $2) AND ($3::text IS NULL OR {key} <= $3)"
                " AND ($4::timestamptz IS NULL OR occurred_at >= $4)"
                " AND ($5::timestamptz IS NULL OR occurred_at < $5)"
                f" ORDER BY {key}",
                list(ids),
                id_from,
                id_to,
                occurred_from,
                occurred_to,
            )
        return [r[key] for r in rows]

    # --- the read model -------------------------------------------------------------------

    async def summary(self, stream_id: str) -> M | None:
        """The stream's read-model row, or None when no such stream is recorded."""
        async with translated(stream_id, stream=self.word):
            row = await self._pool.fetchrow(
                f"{self._select_summaries} WHERE {self.tables.key} = $1", stream_id
            )
        return self.tables.summary_from_row(row) if row is not None else None

    async def summaries(self, condition: str, *args: Any) -> list[M]:
        """Read-model rows chosen by `condition` (SQL after WHERE: filters, ORDER BY, LIMIT)."""
        async with translated():
            rows = await self._pool.fetch(f"{self._select_summaries} WHERE {condition}", *args)
        return [self.tables.summary_from_row(r) for r in rows]

    async def heads(self, stream_ids: list[str]) -> dict[str, tuple[int, str]]:
        """The read model's (last seq, head hash) of each stream that has a row there.

        The anchor a log's tail is checked against: deleting the newest events leaves a
        valid but shorter chain, which only a head kept elsewhere reveals.
        """
        key = self.tables.key
        async with translated():
            rows = await self._pool.fetch(
                f"SELECT {key}, last_seq, head_hash FROM {self.tables.read_model}"
                f" WHERE {key} = ANY($1::text[])",
                stream_ids,
            )
        return {r[key]: (r["last_seq"], r["head_hash"]) for r in rows}

    async def rebuild_read_model(self, stream_id: str | None = None) -> int:
        """Rewrite read-model rows by folding the log again (one stream, or all); returns rows written.

        Each stream is refolded in its own transaction under its append lock, so appends
        running meanwhile are neither lost nor overwritten. Rows of streams without events go.
        """
        t, key = self.tables, self.tables.key
        async with translated(stream_id, stream=self.word), self._pool.acquire() as conn:
            if stream_id is not None:
                ids = [stream_id]
            else:
                ids = [r[key] for r in await conn.fetch(f"SELECT DISTINCT {key} FROM {t.events}")]
                await conn.execute(
                    f"DELETE FROM {t.read_model} m WHERE NOT EXISTS"
                    f" (SELECT 1 FROM {t.events} e WHERE e.{key} = m.{key})"
                )
            written = 0
            for sid in ids:
                written += await self._rebuild_one(conn, sid)
        return written

    async def _rebuild_one(self, conn: Connection, stream_id: str) -> int:
        t = self.tables
        async with conn.transaction():
            await self.lock(conn, stream_id)
            rows = await conn.fetch(f"{self._select_events} WHERE {t.key} = $1 ORDER BY seq", stream_id)
            state = self._fold(stream_id, (t.recorded_from_row(r) for r in rows))
            if state is None:
                await conn.execute(f"DELETE FROM {t.read_model} WHERE {t.key} = $1", stream_id)
                return 0
            await self.upsert_summary(conn, t.summarize(state), force=True)
            return 1

    # --- the outbox -----------------------------------------------------------------------

    async def pending_notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        """Outbox rows not yet delivered nor dead (id as text), oldest first.

        Delivery is at least once: a relay that dies before recording an outcome sends again,
        so receivers should de-duplicate on the notification id.
        """
        async with translated():
            rows = await self._pool.fetch(
                f"SELECT * FROM {self.tables.outbox} WHERE status IN ('pending', 'delivering')"
                " ORDER BY created_at, id LIMIT $1",
                limit,
            )
        return [{**dict(r), "id": str(r["id"])} for r in rows]

    async def mark_sent(self, ids: Iterable[str]) -> int:
        """Record that these notifications were delivered; returns how many were still pending."""
        async with translated():
            status = await self._pool.execute(
                f"UPDATE {self.tables.outbox} SET sent_at = now(), delivered_at = now(),"
                " status = 'delivered', claimed_by = NULL, claimed_until = NULL, attempts = attempts + 1"
                " WHERE id = ANY($1::uuid[]) AND sent_at IS NULL AND status <> 'dead'",
                list(ids),
            )
        return int(status.split()[-1])

    async def mark_failed(self, ids: Iterable[str]) -> int:
        """Count a failed delivery attempt of these notifications; they stay pending."""
        async with translated():
            status = await self._pool.execute(
                f"UPDATE {self.tables.outbox} SET attempts = attempts + 1"
                " WHERE id = ANY($1::uuid[]) AND sent_at IS NULL AND status <> 'dead'",
                list(ids),
            )
        return int(status.split()[-1])

    # --- delivery (activities.relay): claims, outcomes, the history, re-drives ------------
    # The same statements for both outboxes; `notification_attempts` names the stream.

    @cached_property
    def _claim_sql(self) -> str:
        t, key = self.tables, self.tables.key
        # `due` locks the rows it picks and skips rows another relay has locked, so two
        # relays never claim one row; a claimed row is due again when its lease ends
        # (next_attempt_at = claimed_until), which frees the rows of a relay killed mid-send.
        return f"""
            WITH due AS (
                SELECT id, status AS was_status, claimed_by AS was_claimed_by, attempts AS was_attempts
                  FROM {t.outbox}
                 WHERE status IN ('pending', 'delivering') AND next_attempt_at <= $1
                 ORDER BY next_attempt_at, id
                 LIMIT $2
                   FOR UPDATE SKIP LOCKED
            ), expired AS (
                INSERT INTO notification_attempts
                       (notification_id, stream, attempt, at, relay, outcome, error)
                SELECT id, $5, was_attempts, $1, was_claimed_by, 'expired',
                       'the lease of relay ' || was_claimed_by || ' ended before it recorded an outcome'
                  FROM due WHERE was_status = 'delivering'
            ), claimed AS (
                UPDATE {t.outbox} n
                   SET status = 'delivering', claimed_by = $3, claimed_until = $1 + $4::interval,
                       next_attempt_at = $1 + $4::interval, attempts = n.attempts + 1
                  FROM due
                 WHERE n.id = due.id
                RETURNING n.id, n.{key}, n.seq, n.kind, n.recipient_id, n.recipient_role, n.level,
                          n.concern, n.message, n.due_at, n.created_at, n.attempts, n.retry_from,
                          n.channel, n.resolution
            )
            SELECT c.*, {self._context_sql} AS context,
                   ARRAY(SELECT DISTINCT a.person_id FROM notification_attempts a
                          WHERE a.notification_id = c.id AND a.outcome = 'delivered'
                            AND a.person_id IS NOT NULL) AS delivered_to
              FROM claimed c LEFT JOIN {t.read_model} m ON m.{key} = c.{key}
             ORDER BY c.created_at, c.id
        """

    @cached_property
    def _context_sql(self) -> str:
        """The read-model columns a notice needs, as one JSON object (`context`)."""
        wanted = [c for c in CONTEXT_COLUMNS if c in self.tables.summary_columns]
        pairs = ", ".join(f"'{c}', m.{c}" for c in wanted)
        return f"CASE WHEN m.{self.tables.key} IS NULL THEN NULL ELSE jsonb_build_object({pairs}) END"

    async def claim_notifications(
        self, *, now: datetime, limit: int, relay: str, lease: timedelta
    ) -> list[dict[str, Any]]:
        """Claim up to `limit` rows due at `now` for `relay` until `now + lease` (id as text).

        Each row has the columns a delivery reads, with `context` (from its stream's read-model
        row, `CONTEXT_COLUMNS`, as a dict; None without one) and
        `delivered_to` (the people an earlier attempt already reached). A row reclaimed after
        an expired lease gets an `expired` attempt in the history.
        """
        async with translated():
            rows = await self._pool.fetch(self._claim_sql, now, limit, relay, lease, self.word)
        return [{**dict(r), "id": str(r["id"])} for r in rows]

    async def renew_claims(
        self, ids: Sequence[str], *, now: datetime, relay: str, lease: timedelta
    ) -> set[str]:
        """Extend `relay`'s lease on these rows to `now + lease`; returns the ids still its own."""
        async with translated():
            rows = await self._pool.fetch(
                f"UPDATE {self.tables.outbox} SET claimed_until = $2 + $4::interval,"
                " next_attempt_at = $2 + $4::interval"
                " WHERE id = ANY($1::uuid[]) AND status = 'delivering' AND claimed_by = $3 RETURNING id",
                list(ids),
                now,
                relay,
                lease,
            )
        return {str(r["id"]) for r in rows}

    async def release_claims(self, ids: Sequence[str], *, now: datetime, relay: str) -> int:
        """Give back rows `relay` claimed but never tried (it is stopping): due again at `now`."""
        async with translated():
            status = await self._pool.execute(
                f"UPDATE {self.tables.outbox} SET status = 'pending', claimed_by = NULL,"
                " claimed_until = NULL, next_attempt_at = $2, attempts = attempts - 1"
                " WHERE id = ANY($1::uuid[]) AND status = 'delivering' AND claimed_by = $3",
                list(ids),
                now,
                relay,
            )
        return int(status.split()[-1])

    async def record_deliveries(
        self,
        conn: Connection,
        updates: Sequence["DeliveryUpdate"],
        attempts: Sequence["AttemptRow"],
        *,
        relay: str,
    ) -> set[str]:
        """Write the outcome of claimed rows and their attempts, in `conn`'s transaction.

        A row is only updated while `relay` still holds its claim; returns the ids updated
        (a row missing there was reclaimed after its lease ended, and its outcome is left
        to the relay that holds it now). The attempts are history and are always written.
        """
        if attempts:
            await conn.execute(
                "INSERT INTO notification_attempts (notification_id, stream, attempt, at, relay,"
                " channel, person_id, outcome, error, duration_ms)"
                " SELECT a.id, $1, a.attempt, a.at, $2, a.channel, a.person_id, a.outcome, a.error, a.ms"
                " FROM unnest($3::uuid[], $4::int[], $5::timestamptz[], $6::text[], $7::text[], $8::text[],"
                " $9::text[], $10::int[]) AS a(id, attempt, at, channel, person_id, outcome, error, ms)",
                self.word,
                relay,
                *(list(column) for column in zip(*attempts, strict=True)),
            )
        if not updates:
            return set()
        rows = await conn.fetch(
            f"UPDATE {self.tables.outbox} n SET status = u.status, next_attempt_at = u.next_at,"
            " retry_from = n.retry_from + u.refund, channel = COALESCE(u.channel, n.channel),"
            " last_error = u.error, resolution = COALESCE(u.resolution::jsonb, n.resolution),"
            " delivered_at = u.delivered_at, sent_at = COALESCE(u.delivered_at, n.sent_at),"
            " claimed_by = NULL, claimed_until = NULL"
            " FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int[], $5::text[], $6::text[],"
            " $7::text[], $8::timestamptz[]) AS u(id, status, next_at, refund, channel, error,"
            " resolution, delivered_at)"
            " WHERE n.id = u.id AND n.status = 'delivering' AND n.claimed_by = $9"
            " RETURNING n.id",
            *(list(column) for column in zip(*updates, strict=True)),
            relay,
        )
        return {str(r["id"]) for r in rows}

    async def notifications(
        self, *, status: str | None = None, limit: int = 50, ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Outbox rows, newest first: all, those with `status`, or those whose id starts with
        one of `ids` (a whole id or its first characters). `stream` names the outbox."""
        async with translated():
            rows = await self._pool.fetch(
                f"SELECT *, $4::text AS stream FROM {self.tables.outbox}"
                " WHERE ($1::text IS NULL OR status = $1)"
                " AND (cardinality($3::text[]) = 0 OR id::text LIKE ANY ($3::text[]))"
                " ORDER BY created_at DESC, id DESC LIMIT $2",
                status,
                limit,
                [f"{i.lower()}%" for i in ids],
                self.word,
            )
        return [{**dict(r), "id": str(r["id"])} for r in rows]

    async def delivery_attempts(self, notification_id: str) -> list[dict[str, Any]]:
        """The history of one notification of this outbox, in order."""
        async with translated():
            rows = await self._pool.fetch(
                "SELECT attempt, at, relay, channel, person_id, outcome, error, duration_ms"
                " FROM notification_attempts WHERE notification_id = $1::uuid AND stream = $2"
                " ORDER BY attempt, id",
                notification_id,
                self.word,
            )
        return [dict(r) for r in rows]

    async def redrive(self, *, now: datetime, ids: Sequence[str] = (), dead: bool = False) -> list[str]:
        """Send rows again from `now`: the `ids` (pending or dead), or with `dead` every dead row.

        The recipients are resolved anew and the retry budget starts again; people an earlier
        attempt reached are not told twice. Rows delivered or being delivered are left alone.
        Returns the ids re-driven.
        """
        async with translated():
            rows = await self._pool.fetch(
                f"UPDATE {self.tables.outbox} SET status = 'pending', next_attempt_at = $1,"
                " resolution = NULL, last_error = NULL, retry_from = attempts"
                " WHERE status IN ('pending', 'dead')"
                " AND (id = ANY($2::uuid[]) OR ($3 AND status = 'dead')) RETURNING id",
                now,
                list(ids),
                dead,
            )
        return [str(r["id"]) for r in rows]


CONTEXT_COLUMNS = ("manager_id", "rep_id", "customer_name", "month")
"""The read-model columns a claimed notification comes with, where its stream's read model has them."""


class DeliveryUpdate(NamedTuple):
    """The outcome of one claimed row (`EventLog.record_deliveries`), in the order of its columns."""

    id: str
    status: str
    next_attempt_at: datetime
    refund: int
    """1 for an attempt that only met quiet hours: it does not use up the retry budget."""
    channel: str | None
    last_error: str | None
    resolution: str | None
    """JSON text of the recorded resolution (`domain.people.Resolved` and the date)."""
    delivered_at: datetime | None


class AttemptRow(NamedTuple):
    """One line of `notification_attempts`, less the stream and relay."""

    notification_id: str
    attempt: int
    at: datetime
    channel: str | None
    person_id: str | None
    outcome: str
    error: str | None
    duration_ms: int | None
