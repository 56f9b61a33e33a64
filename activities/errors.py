"""Named errors of the event store, and the map from PostgreSQL's SQLSTATEs onto them.

Callers branch on the class (the activity turns it into `ApplicationError(type=...)`);
people read the message, a sentence. Raw driver errors never leave `activities/`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar

import asyncpg
from pydantic import ValidationError

APPEND_ONLY_SQLSTATE = "VF001"
"""Raised by the log's triggers on UPDATE, DELETE or TRUNCATE of `visit_events`."""

SEQUENCE_GAP_SQLSTATE = "VF002"
"""Raised by the log's insert trigger when a row's seq is not the visit's next one."""

CHAIN_BROKEN_SQLSTATE = "VF003"
"""Raised by the log's insert trigger when a row's prev_hash is not its predecessor's hash."""

EVENT_PKEY = "visit_events_pkey"
EVENT_ID_KEY = "visit_events_event_id_key"
NOTIFICATION_PKEY = "notifications_pkey"
PLAN_EVENT_PKEY = "plan_events_pkey"
PLAN_EVENT_ID_KEY = "plan_events_event_id_key"
PLAN_NOTIFICATION_PKEY = "plan_notifications_pkey"

# Failures that go away by themselves (a restart, a failover, a lock timeout): retry them.
_TRANSIENT_CLASSES = ("08", "53", "57")
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03"})
# The request carries a value PostgreSQL cannot store or a column refuses: retrying is futile.
_INVALID_DATA_CLASSES = ("22", "23")


class StoreError(Exception):
    """Something the event store could not do; `non_retryable` says whether trying again helps."""

    non_retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class StoreUnavailable(StoreError):
    """PostgreSQL could not be reached or gave up for a passing reason; retry later."""


class AppendRefused(StoreError):
    """An append that can never succeed as it stands (the log already says otherwise)."""

    non_retryable = True


class SequenceConflict(AppendRefused):
    """The seq an event claims is already taken by a different event."""


class SequenceGap(AppendRefused):
    """An event skips seq numbers: the log is gapless."""


class ChainBroken(AppendRefused):
    """An event's prev_hash is not the hash of the event before it."""


class DuplicateEvent(AppendRefused):
    """An event id is already recorded, but not as the same event of this request."""


class InvalidAppend(AppendRefused):
    """The request is inconsistent in itself, or holds data PostgreSQL refuses to store."""


class AppendOnlyViolation(StoreError):
    """Someone tried to change or remove recorded events."""

    non_retryable = True


class UnreadableEvent(StoreError):
    """A stored row cannot be read back as a current domain event (an upcaster is missing)."""

    non_retryable = True


def from_postgres(
    exc: asyncpg.PostgresError, visit_id: str | None = None, *, stream: str = "visit"
) -> StoreError:
    """The named error for a PostgreSQL error; the server's text stays in the message.

    `visit_id` names the stream the error is about (a monthly plan's id with `stream="plan"`).
    """
    state = exc.sqlstate or ""
    where = f" on {stream} {visit_id}" if visit_id else ""
    text = getattr(exc, "message", None) or str(exc)
    constraint = getattr(exc, "constraint_name", None)
    if state == APPEND_ONLY_SQLSTATE:
        return AppendOnlyViolation(f"The event log is append-only{where}: {text}")
    if state == SEQUENCE_GAP_SQLSTATE:
        return SequenceGap(f"The event log refused an event out of sequence{where}: {text}")
    if state == CHAIN_BROKEN_SQLSTATE:
        return ChainBroken(f"The event log refused an event that breaks its hash chain{where}: {text}")
    if state == "23505" and constraint in (EVENT_PKEY, PLAN_EVENT_PKEY):
        return SequenceConflict(
            f"Another event already holds this seq{where}; the log has moved on ({text})."
        )
    if state == "23505" and constraint in (
        EVENT_ID_KEY,
        NOTIFICATION_PKEY,
        PLAN_EVENT_ID_KEY,
        PLAN_NOTIFICATION_PKEY,
    ):
        return DuplicateEvent(f"An event id of this request is already recorded elsewhere{where} ({text}).")
    if state.startswith(_TRANSIENT_CLASSES) or state in _TRANSIENT_STATES:
        return StoreUnavailable(f"PostgreSQL is unavailable for now{where}: {text}")
    if state.startswith(_INVALID_DATA_CLASSES):
        return InvalidAppend(f"PostgreSQL refused the data{where}: {text} (SQLSTATE {state})")
    return StoreError(f"The event store failed{where}: {text} (SQLSTATE {state})")


@asynccontextmanager
async def translated(visit_id: str | None = None, *, stream: str = "visit") -> AsyncIterator[None]:
    """Raise the named `StoreError` for any driver error inside the block."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        raise from_postgres(exc, visit_id, stream=stream) from exc
    except (OSError, asyncpg.InterfaceError) as exc:
        # Refused or dropped connections, timeouts, a pool closing under us: all pass.
        where = f" for {stream} {visit_id}" if visit_id else ""
        raise StoreUnavailable(f"PostgreSQL could not be reached{where}: {exc}") from exc


def field_problems(exc: ValidationError) -> str:
    """A stored row's validation errors as one line: field locations and reasons only, since
    the input values may be customer data."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())
