"""The hash chain that makes every event log tamper-evident.

Each row's hash is SHA-256 over the previous row's hash and the row's canonical content:

    hash = sha256_hex( prev_hash + "\\n" + canonical_json(content) )

`content` is a JSON object with exactly these keys: visit_id, seq, event_id, type,
schema_version, occurred_at, actor_id, actor_role, command_id, payload. Canonical JSON
sorts keys, uses "," and ":" with no spaces, keeps non-ASCII text as UTF-8, and writes
instants as ISO 8601 in UTC with microseconds (``2026-11-23T09:00:00.000000Z``). The
first event of a visit chains from 64 zeros. `recorded_at` is not hashed: the database
sets it, and the chain must be computable by the workflow before the row exists.

Other logs chain the same way, their content naming their own stream in place of
`visit_id`: a monthly plan's rows (`plan_events`) carry `plan_id` (`stream_content`).
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
"""The `prev_hash` of a stream's first event."""

HASHED_FIELDS = (
    "visit_id",
    "seq",
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "actor_id",
    "actor_role",
    "command_id",
    "payload",
)
"""The row fields a hash covers, in the documented order; the log's columns of the same names."""


def instant_text(value: datetime) -> str:
    """The canonical text of an instant: UTC, microseconds, a trailing Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """The one JSON text of `value` that every hash is computed over."""
    # One encoder for every call: json.dumps builds a new one per call when given options.
    return _CANONICAL.encode(value)


def stream_content(
    stream_field: str,
    stream_id: str,
    *,
    seq: int,
    event_id: str,
    type: str,
    schema_version: int,
    occurred_at: datetime,
    actor_id: str,
    actor_role: str,
    command_id: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """The hashed fields of one row of any log, its stream named by `stream_field`."""
    return {
        stream_field: stream_id,
        "seq": seq,
        "event_id": event_id,
        "type": type,
        "schema_version": schema_version,
        "occurred_at": instant_text(occurred_at),
        "actor_id": actor_id,
        "actor_role": actor_role,
        "command_id": command_id,
        "payload": payload,
    }


def row_content(*, visit_id: str, **fields: Any) -> dict[str, Any]:
    """The hashed fields of one visit's row (`visit_events`), as the canonical JSON object."""
    return stream_content("visit_id", visit_id, **fields)


def link_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """The hash of a row given its predecessor's hash and its canonical content."""
    data = (prev_hash + "\n" + canonical_json(content)).encode("utf-8")
    return hashlib.sha256(data).hexdigest()
