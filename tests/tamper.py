"""Tampering with the log as a database administrator could: past the append-only triggers.

The triggers refuse UPDATE, DELETE and out-of-chain INSERTs for everyone; a superuser can
still switch them off for a session (`session_replication_role = replica`). These helpers
do that inside one transaction, to show that the chain catches what the triggers cannot
prevent.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from activities.db import Connection
from activities.store import HASHED_COLUMNS
from domain.chain import link_hash, row_content


@asynccontextmanager
async def past_the_triggers(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        yield conn


async def change_payload(pool: asyncpg.Pool, visit_id: str, seq: int, **fields: Any) -> None:
    """Rewrite fields of one event's payload, leaving its hash as it was."""
    async with past_the_triggers(pool) as conn:
        await conn.execute(
            "UPDATE visit_events SET payload = payload || $3::jsonb WHERE visit_id = $1 AND seq = $2",
            visit_id,
            seq,
            fields,
        )


async def delete(pool: asyncpg.Pool, visit_id: str, *seqs: int) -> None:
    async with past_the_triggers(pool) as conn:
        await conn.execute("DELETE FROM notifications WHERE visit_id = $1 AND seq = ANY($2)", visit_id, seqs)
        await conn.execute("DELETE FROM visit_events WHERE visit_id = $1 AND seq = ANY($2)", visit_id, seqs)


async def delete_plan_rows(pool: asyncpg.Pool, plan_id: str, *seqs: int) -> None:
    """Delete rows of a monthly plan's log (and their outbox rows)."""
    async with past_the_triggers(pool) as conn:
        await conn.execute(
            "DELETE FROM plan_notifications WHERE plan_id = $1 AND seq = ANY($2)", plan_id, seqs
        )
        await conn.execute("DELETE FROM plan_events WHERE plan_id = $1 AND seq = ANY($2)", plan_id, seqs)


_ASIDE = 1_000_000
"""Added to seqs moved out of the way (seq must stay positive)."""


async def insert_copy(pool: asyncpg.Pool, visit_id: str, seq: int, *, at_seq: int) -> None:
    """Slip a copy of event `seq` in at `at_seq` (later rows move up by one), as a forger would."""
    async with past_the_triggers(pool) as conn:
        await conn.execute(
            "UPDATE visit_events SET seq = seq + $3 WHERE visit_id = $1 AND seq >= $2",
            visit_id,
            at_seq,
            _ASIDE,
        )
        await conn.execute(
            "UPDATE visit_events SET seq = seq - $2 + 1 WHERE visit_id = $1 AND seq > $2", visit_id, _ASIDE
        )
        await conn.execute(
            "INSERT INTO visit_events (visit_id, seq, event_id, type, schema_version, occurred_at,"
            " actor_id, actor_role, command_id, payload, prev_hash, hash)"
            " SELECT visit_id, $3, $4, type, schema_version, occurred_at, actor_id, actor_role,"
            " command_id, payload, prev_hash, hash FROM visit_events WHERE visit_id = $1 AND seq = $2",
            visit_id,
            seq if seq < at_seq else seq + 1,
            at_seq,
            uuid.uuid4(),
        )


async def swap(pool: asyncpg.Pool, visit_id: str, a: int, b: int) -> None:
    """Exchange the seq numbers of two events."""
    async with past_the_triggers(pool) as conn:
        for old, new in ((a, a + _ASIDE), (b, a), (a + _ASIDE, b)):
            await conn.execute(
                "UPDATE visit_events SET seq = $3 WHERE visit_id = $1 AND seq = $2", visit_id, old, new
            )


async def append_chained(
    pool: asyncpg.Pool,
    visit_id: str,
    type_: str,
    version: int,
    payload: Any,
    *,
    move_head: bool = False,
) -> int:
    """Append a well-chained row after the visit's newest, as a write outside the engine would:
    the database accepts it. With `move_head`, the read model's head is moved onto it too, as
    a forger who knows of the anchor would. Returns its seq."""
    async with pool.acquire() as conn, conn.transaction():
        last = await conn.fetchrow(
            "SELECT * FROM visit_events WHERE visit_id = $1 ORDER BY seq DESC LIMIT 1", visit_id
        )
        row = {
            **dict(last),
            "seq": last["seq"] + 1,
            "event_id": str(uuid.uuid4()),
            "type": type_,
            "schema_version": version,
            "payload": payload,
            "prev_hash": last["hash"],
        }
        row["hash"] = link_hash(row["prev_hash"], row_content(**{c: row[c] for c in HASHED_COLUMNS}))
        await conn.execute(
            "INSERT INTO visit_events (visit_id, seq, event_id, type, schema_version, occurred_at,"
            " actor_id, actor_role, command_id, payload, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            *(row[c] for c in (*HASHED_COLUMNS, "prev_hash", "hash")),
        )
        if move_head:
            await conn.execute(
                "UPDATE visits SET last_seq = $2, head_hash = $3 WHERE visit_id = $1",
                visit_id,
                row["seq"],
                row["hash"],
            )
    return int(row["seq"])
