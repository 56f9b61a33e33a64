"""The monthly plans' PostgreSQL log: idempotent gapless appends, reads, read model and outbox.

Built like `activities.store.EventStore`: an append is one transaction under a per-plan
advisory lock, in which the events, their outbox rows and the plan's `month_plans` row
commit together or not at all. The database refuses gaps, broken chains and any change to
recorded rows (migrations/0006_month_plans.sql); its refusals become the named errors of
`activities.errors`.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from activities.db import Connection
from activities.errors import DuplicateEvent, InvalidAppend, UnreadableEvent, field_problems, translated
from activities.plan_models import PlanAppendRequest, PlanAppendResult
from activities.store import canonical_uuid, db_value, upsert_sql
from domain.actors import Actor
from domain.calendar import local_date, zone
from domain.chain import PLAN_HASHED_FIELDS, link_hash
from domain.month_plan import (
    PLAN_NOTIFYING_EVENTS,
    MonthPlanEscalated,
    MonthPlanReminderSent,
    MonthPlanState,
    MonthPlanStatus,
    MonthPlanSummary,
    PlanEvent,
    RecordedPlanEvent,
    fold,
    plan_id_of,
    summarize_plan,
)
from domain.planning import MonthPlanVisits, month_bounds, previous_month
from domain.policy import Policy
from domain.upcasting import upcast

PLAN_LOCK_SPACE = 0x504C
"""First key of the two-key advisory locks that serialise appends to one plan ("PL")."""

PLAN_EVENT_COLUMNS = (*PLAN_HASHED_FIELDS, "recorded_at", "prev_hash", "hash")

PLAN_SUMMARY_COLUMNS = tuple(MonthPlanSummary.model_fields)

VISITED = ("awaiting_report", "report_submitted", "report_returned", "following_up")
"""Visit statuses that mean the visit took place (a closed one counts unless cancelled or rejected)."""

_SELECT_EVENTS = f"SELECT {', '.join(PLAN_EVENT_COLUMNS)} FROM plan_events"

_INSERT_EVENT = """
INSERT INTO plan_events (plan_id, seq, event_id, type, schema_version, occurred_at,
                         actor_id, actor_role, command_id, payload, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""

_INSERT_NOTIFICATION = """
INSERT INTO plan_notifications
    (id, plan_id, seq, kind, recipient_id, recipient_role, level, concern, message, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

_SELECT_PLANS = f"SELECT {', '.join(PLAN_SUMMARY_COLUMNS)} FROM month_plans"

_EVENT_ADAPTER: TypeAdapter[PlanEvent] = TypeAdapter(PlanEvent)

Row = asyncpg.Record | Mapping[str, Any]


_UPSERT_FORWARD = upsert_sql("month_plans", "plan_id", PLAN_SUMMARY_COLUMNS, forward_only=True)
_UPSERT_FORCE = upsert_sql("month_plans", "plan_id", PLAN_SUMMARY_COLUMNS, forward_only=False)


def plan_event_from_row(event_type: str, schema_version: int, payload: Mapping[str, Any]) -> PlanEvent:
    """The plan event stored as (type, schema_version, payload), upcast to the current schema."""
    version, body = upcast(event_type, schema_version, dict(payload))
    return _EVENT_ADAPTER.validate_python({**body, "type": event_type, "schema_version": version})


def recorded_plan_event_from_row(row: Row) -> RecordedPlanEvent:
    """The `RecordedPlanEvent` of a `plan_events` row, or `UnreadableEvent`."""
    where = f"Event {row['seq']} of plan {row['plan_id']} ({row['type']})"
    if not isinstance(row["payload"], Mapping):
        raise UnreadableEvent(f"{where} has a payload that is not a JSON object.")
    try:
        return RecordedPlanEvent(
            event_id=str(row["event_id"]),
            plan_id=row["plan_id"],
            seq=row["seq"],
            occurred_at=row["occurred_at"],
            actor=Actor(id=row["actor_id"], role=row["actor_role"]),
            command_id=row["command_id"],
            event=plan_event_from_row(row["type"], row["schema_version"], row["payload"]),
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )
    except ValidationError as exc:
        problems = field_problems(exc)
        raise UnreadableEvent(
            f"{where}, version {row['schema_version']}, cannot be read as a current event: {problems}."
        ) from exc


def plan_summary_from_row(row: Row) -> MonthPlanSummary:
    """The `MonthPlanSummary` of a `month_plans` row."""
    return MonthPlanSummary.model_validate({c: row[c] for c in PLAN_SUMMARY_COLUMNS})


def _event_args(e: RecordedPlanEvent) -> tuple[Any, ...]:
    return (
        e.plan_id,
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


def _notification_args(e: RecordedPlanEvent) -> tuple[Any, ...] | None:
    event = e.event
    if event.type not in PLAN_NOTIFYING_EVENTS:
        return None
    if isinstance(event, MonthPlanReminderSent):
        kind, level = "reminder", None
    elif isinstance(event, MonthPlanEscalated):
        kind, level = "escalation", event.level
    else:
        raise ValueError(f"no outbox row is defined for notifying plan event {event.type}")
    return (
        e.event_id,
        e.plan_id,
        e.seq,
        kind,
        event.recipient.id,
        event.recipient.role.value,
        level,
        "month_plan",
        event.message,
        event.due_at,
    )


def check_plan_request(req: PlanAppendRequest) -> None:
    """Refuse (`InvalidAppend`) a request that is inconsistent in itself (as `check_request` does)."""
    p = req.plan_id
    previous: RecordedPlanEvent | None = None
    seen: set[str] = set()
    for e in req.events:
        where = f"event {e.seq} of plan {p}"
        if e.plan_id != p:
            raise InvalidAppend(f"The request for plan {p} carries an event of plan {e.plan_id}.")
        if previous is not None and (e.seq != previous.seq + 1 or e.prev_hash != previous.hash):
            raise InvalidAppend(f"The events of the request for plan {p} are not consecutive at {where}.")
        if canonical_uuid(e.event_id) != e.event_id:
            raise InvalidAppend(f"The id of {where} is not a lowercase UUID: {e.event_id!r}.")
        if e.event_id in seen:
            raise InvalidAppend(f"The request for plan {p} uses event id {e.event_id} twice.")
        if link_hash(e.prev_hash, e.content()) != e.hash:
            raise InvalidAppend(f"The hash of {where} does not match its content.")
        seen.add(e.event_id)
        previous = e
    last = req.events[-1]
    s = req.summary
    if (s.plan_id, s.last_seq, s.head_hash) != (p, last.seq, last.hash):
        raise InvalidAppend(
            f"The summary sent with the request for plan {p} is not the state after event {last.seq}."
        )


async def lock_plan(conn: Connection, plan_id: str) -> None:
    """Serialise writers of one plan until the current transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", PLAN_LOCK_SPACE, plan_id)


class PlanStore:
    """The plans' log, the `month_plans` read model and the plans' outbox on one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def append(self, req: PlanAppendRequest) -> PlanAppendResult:
        """Record the request's events, their notifications and the read-model row, atomically.

        A repeat of a request already recorded (a retried activity) writes nothing and returns
        the original result with `duplicate=True`. Raises the named errors of
        `activities.errors` (`SequenceConflict`, `SequenceGap`, `ChainBroken`, ...).
        """
        check_plan_request(req)
        last = req.events[-1]
        async with (
            translated(req.plan_id, stream="plan"),
            self._pool.acquire() as conn,
            conn.transaction(),
        ):
            await lock_plan(conn, req.plan_id)
            if await self._already_recorded(conn, req):
                return PlanAppendResult(
                    plan_id=req.plan_id, last_seq=last.seq, head_hash=last.hash, duplicate=True
                )
            await conn.executemany(_INSERT_EVENT, [_event_args(e) for e in req.events])
            outbox = [args for e in req.events if (args := _notification_args(e)) is not None]
            if outbox:
                await conn.executemany(_INSERT_NOTIFICATION, outbox)
            await conn.execute(_UPSERT_FORWARD, *self._summary_args(req.summary))
        return PlanAppendResult(plan_id=req.plan_id, last_seq=last.seq, head_hash=last.hash)

    @staticmethod
    def _summary_args(summary: MonthPlanSummary) -> list[Any]:
        return [db_value(getattr(summary, c)) for c in PLAN_SUMMARY_COLUMNS]

    async def _already_recorded(self, conn: Connection, req: PlanAppendRequest) -> bool:
        rows = await conn.fetch(
            "SELECT event_id, plan_id, seq, hash FROM plan_events WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in req.events],
        )
        if not rows:
            return False
        stored = {str(r["event_id"]): r for r in rows}
        for e in req.events:
            row = stored.get(e.event_id)
            if row is None:
                raise DuplicateEvent(
                    f"Part of this request for plan {req.plan_id} is already recorded, but event "
                    f"{e.event_id} (seq {e.seq}) is not; the request was not sent the same way twice."
                )
            if (row["plan_id"], row["seq"], row["hash"]) != (e.plan_id, e.seq, e.hash):
                raise DuplicateEvent(
                    f"Event id {e.event_id} is already recorded as event {row['seq']} of plan "
                    f"{row['plan_id']}, with other content than event {e.seq} of this request."
                )
        return True

    async def events(
        self, plan_id: str, *, after_seq: int = 0, until: datetime | None = None
    ) -> list[RecordedPlanEvent]:
        """The plan's events after `after_seq`, in seq order; with `until`, those at or before it."""
        async with translated(plan_id, stream="plan"):
            rows = await self._pool.fetch(
                f"{_SELECT_EVENTS} WHERE plan_id = $1 AND seq > $2"
                " AND ($3::timestamptz IS NULL OR occurred_at <= $3) ORDER BY seq",
                plan_id,
                after_seq,
                until,
            )
        return [recorded_plan_event_from_row(r) for r in rows]

    async def raw_rows(self, plan_id: str) -> list[dict[str, Any]]:
        """The plan's rows exactly as stored (event_id as text), in seq order: verify hashes on these."""
        async with translated(plan_id, stream="plan"):
            rows = await self._pool.fetch(f"{_SELECT_EVENTS} WHERE plan_id = $1 ORDER BY seq", plan_id)
        return [{**dict(r), "event_id": str(r["event_id"])} for r in rows]

    async def find_command(self, plan_id: str, command_id: str) -> list[RecordedPlanEvent]:
        """The events recorded for `command_id` on the plan (empty when it was never recorded)."""
        async with translated(plan_id, stream="plan"):
            rows = await self._pool.fetch(
                f"{_SELECT_EVENTS} WHERE plan_id = $1 AND command_id = $2 ORDER BY seq",
                plan_id,
                command_id,
            )
        return [recorded_plan_event_from_row(r) for r in rows]

    async def state(self, plan_id: str) -> MonthPlanState | None:
        """The plan folded from its log, or None when nothing is recorded for it."""
        events = await self.events(plan_id)
        try:
            return fold(events)
        except ValueError as exc:
            raise UnreadableEvent(f"The events of plan {plan_id} cannot be folded: {exc}") from exc

    async def plan(self, plan_id: str) -> MonthPlanSummary | None:
        """The plan's read-model row, or None."""
        async with translated(plan_id, stream="plan"):
            row = await self._pool.fetchrow(f"{_SELECT_PLANS} WHERE plan_id = $1", plan_id)
        return plan_summary_from_row(row) if row is not None else None

    async def list_plans(
        self,
        *,
        rep_id: str | None = None,
        manager_id: str | None = None,
        month: str | None = None,
        status: MonthPlanStatus | str | None = None,
        limit: int = 100,
    ) -> list[MonthPlanSummary]:
        """Plans matching every filter given, latest month first, then by rep."""
        async with translated():
            rows = await self._pool.fetch(
                f"{_SELECT_PLANS} WHERE ($1::text IS NULL OR rep_id = $1)"
                " AND ($2::text IS NULL OR manager_id = $2) AND ($3::text IS NULL OR month = $3)"
                " AND ($4::text IS NULL OR status = $4) ORDER BY month DESC, rep_id LIMIT $5",
                rep_id,
                manager_id,
                month,
                db_value(status),
                limit,
            )
        return [plan_summary_from_row(r) for r in rows]

    async def rebuild_read_model(self, plan_id: str) -> bool:
        """Rewrite one plan's `month_plans` row by folding its log again; whether a row was written."""
        async with translated(plan_id, stream="plan"), self._pool.acquire() as conn, conn.transaction():
            await lock_plan(conn, plan_id)
            rows = await conn.fetch(f"{_SELECT_EVENTS} WHERE plan_id = $1 ORDER BY seq", plan_id)
            try:
                state = fold(recorded_plan_event_from_row(r) for r in rows)
            except ValueError as exc:
                raise UnreadableEvent(f"The events of plan {plan_id} cannot be folded: {exc}") from exc
            if state is None:
                await conn.execute("DELETE FROM month_plans WHERE plan_id = $1", plan_id)
                return False
            await conn.execute(_UPSERT_FORCE, *self._summary_args(summarize_plan(state)))
            return True

    # --- what a submission is reviewed against -------------------------------------------------

    async def previous_plan(self, rep_id: str, month: str) -> MonthPlanVisits | None:
        """The rep's plan for the month before `month`: its approved visits once approved,
        else the visits last submitted; None when there is none."""
        before = previous_month(month)
        state = await self.state(plan_id_of(rep_id, before))
        if state is None or not state.visits:
            return None
        visits = state.visits
        if state.status is MonthPlanStatus.approved:
            chosen = set(state.approved)
            visits = [v for v in visits if v.visit_id in chosen]
        return MonthPlanVisits(rep_id=rep_id, month=before, visits=visits)

    async def last_visits(self, customer_ids: Iterable[str], month: str, policy: Policy) -> dict[str, date]:
        """Per customer, the local date of its last visit that took place before `month`
        (from the `visits` read model: checked in, and not cancelled or rejected)."""
        first, _ = month_bounds(month)
        start = datetime.combine(first, datetime.min.time(), tzinfo=zone(policy.timezone)).astimezone(UTC)
        async with translated():
            rows = await self._pool.fetch(
                "SELECT customer_id, max(scheduled_start) AS last FROM visits"
                " WHERE customer_id = ANY($1::text[]) AND scheduled_start < $2"
                " AND (status = ANY($3::text[]) OR (status = 'closed'"
                "      AND outcome IN ('completed', 'report_waived')))"
                " GROUP BY customer_id",
                list(customer_ids),
                start,
                list(VISITED),
            )
        return {r["customer_id"]: local_date(r["last"], policy) for r in rows}

    async def pending_notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        """Plan outbox rows not yet sent, oldest first (delivery is at least once)."""
        async with translated():
            rows = await self._pool.fetch(
                "SELECT * FROM plan_notifications WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1",
                limit,
            )
        return [{**dict(r), "id": str(r["id"])} for r in rows]
