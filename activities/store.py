"""The visits' event store: the event log over `visit_events`, `visits` and `notifications`,
and the reads only visits have (overdue lists, filters, the audit's and the KPIs' reads).

Every guarantee of the log (idempotent gapless appends, the read model and the outbox in
the same transaction, rebuilds) lives once in `activities.event_log`; `VISIT_LOG` names
the visits' tables to it.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from activities.errors import translated
from activities.event_log import EventLog, LogTables, db_value
from activities.models import AppendRequest, AppendResult
from activities.outbox import Notification, notification_from_row, visit_notification
from domain.events import Event, RecordedEvent
from domain.state import VisitState, VisitStatus
from domain.summary import VisitSummary, summarize
from domain.visit import VISITS

VISIT_LOG: LogTables[VisitState, RecordedEvent, VisitSummary, AppendResult] = LogTables(
    stream=VISITS,
    events="visit_events",
    read_model="visits",
    summary=VisitSummary,
    summarize=summarize,
    result=AppendResult,
    outbox="notifications",
    outbox_row=visit_notification,
    event_union=TypeAdapter(Event),
    lock_space=0x5646,  # "VF"
)
"""The visits' log: its tables, and how its rows read."""

# The row readers and column lists other modules import, as the visit log's.
HASHED_COLUMNS = VISIT_LOG.hashed_columns
"""The `visit_events` columns covered by a row's hash (defined once, in `domain.chain`)."""
EVENT_COLUMNS = VISIT_LOG.columns
recorded_from_row = VISIT_LOG.recorded_from_row
domain_event_from_row = VISIT_LOG.event_from_row
summary_from_row = VISIT_LOG.summary_from_row


class EventStore:
    """The visits' event log (`log`) and the queries only visits have, on one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.log = EventLog(VISIT_LOG, pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.log.pool

    # --- the log (see `EventLog`) -----------------------------------------------------------

    async def append(self, req: AppendRequest) -> AppendResult:
        """Record the request's events, notifications and read-model row, atomically and once."""
        return await self.log.append(req)

    async def events(
        self, visit_id: str, *, after_seq: int = 0, until: datetime | None = None
    ) -> list[RecordedEvent]:
        """The visit's events after `after_seq`, in seq order; with `until`, those at or before it."""
        return await self.log.events(visit_id, after_seq=after_seq, until=until)

    async def raw_rows(self, visit_id: str) -> list[dict[str, Any]]:
        """The visit's rows exactly as stored, in seq order: verify hashes on these."""
        return await self.log.raw_rows(visit_id)

    async def raw_rows_of(
        self, visit_ids: list[str], *, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The stored rows of several visits, by visit then seq; with `before`, as they stood then."""
        return await self.log.raw_rows_of(visit_ids, before=before)

    async def find_command(self, visit_id: str, command_id: str) -> list[RecordedEvent]:
        """The events recorded for `command_id` on the visit (empty when it was never recorded)."""
        return await self.log.find_command(visit_id, command_id)

    async def select_visits(
        self,
        *,
        visit_ids: Iterable[str] = (),
        id_from: str | None = None,
        id_to: str | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
    ) -> list[str]:
        """Ids of the visits with logged events matching every filter given (`EventLog.select`)."""
        return await self.log.select(
            ids=visit_ids,
            id_from=id_from,
            id_to=id_to,
            occurred_from=occurred_from,
            occurred_to=occurred_to,
        )

    async def heads(self, visit_ids: list[str]) -> dict[str, tuple[int, str]]:
        """The read model's (last seq, head hash) of each visit that has a row there."""
        return await self.log.heads(visit_ids)

    async def visit(self, visit_id: str) -> VisitSummary | None:
        """The visit's read-model row, or None when no such visit is recorded."""
        return await self.log.summary(visit_id)

    async def rebuild_read_model(self, visit_id: str | None = None) -> int:
        """Rewrite `visits` rows by folding the log again (one visit, or all); returns rows written."""
        return await self.log.rebuild_read_model(visit_id)

    async def pending_notifications(self, limit: int = 100) -> list[Notification]:
        """Outbox rows not yet sent, oldest first (delivery is at least once)."""
        return [notification_from_row(r) for r in await self.log.pending_notifications(limit)]

    async def mark_sent(self, ids: Iterable[str]) -> int:
        """Record that these notifications were delivered; returns how many were still pending."""
        return await self.log.mark_sent(ids)

    async def mark_failed(self, ids: Iterable[str]) -> int:
        """Count a failed delivery attempt of these notifications; they stay pending."""
        return await self.log.mark_failed(ids)

    # --- visits' own reads ------------------------------------------------------------------

    async def overdue(self, now: datetime, limit: int = 200) -> list[VisitSummary]:
        """Open visits with a deadline before `now` or an escalation, soonest deadline first."""
        return await self.log.summaries(
            "status <> $1 AND (next_due_at < $2 OR cardinality(escalated) > 0)"
            " ORDER BY next_due_at NULLS LAST, visit_id LIMIT $3",
            VisitStatus.closed.value,
            now,
            limit,
        )

    async def list_visits(
        self,
        rep_id: str | None = None,
        manager_id: str | None = None,
        status: VisitStatus | str | None = None,
        limit: int = 100,
    ) -> list[VisitSummary]:
        """Visits matching every filter given, latest scheduled first."""
        return await self.log.summaries(
            "($1::text IS NULL OR rep_id = $1) AND ($2::text IS NULL OR manager_id = $2)"
            " AND ($3::text IS NULL OR status = $3) ORDER BY scheduled_start DESC, visit_id LIMIT $4",
            rep_id,
            manager_id,
            db_value(status),
            limit,
        )

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
            rows = await self.pool.fetch(query, start, end, before)
        return [r["visit_id"] for r in rows]
