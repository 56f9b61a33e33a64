"""The monthly plans' event store: the event log over `plan_events`, `month_plans` and
`plan_notifications`, and the reads only plans have (listing plans, what a submission is
reviewed against).

Every guarantee of the log lives once in `activities.event_log`; `PLAN_LOG` names the
plans' tables to it.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from activities.errors import translated
from activities.event_log import EventLog, LogTables, db_value
from activities.outbox import plan_notification
from activities.plan_models import PlanAppendRequest, PlanAppendResult
from domain.calendar import local_date, zone
from domain.month_plan import (
    PLANS,
    MonthPlanState,
    MonthPlanStatus,
    MonthPlanSummary,
    PlanEvent,
    RecordedPlanEvent,
    plan_id_of,
    summarize_plan,
)
from domain.planning import MonthPlanVisits, month_bounds, previous_month
from domain.policy import Policy

PLAN_LOG: LogTables[MonthPlanState, RecordedPlanEvent, MonthPlanSummary, PlanAppendResult] = LogTables(
    stream=PLANS,
    events="plan_events",
    read_model="month_plans",
    summary=MonthPlanSummary,
    summarize=summarize_plan,
    result=PlanAppendResult,
    outbox="plan_notifications",
    outbox_row=plan_notification,
    event_union=TypeAdapter(PlanEvent),
    lock_space=0x504C,  # "PL"
)
"""The plans' log: its tables, and how its rows read."""

# The row readers and column list of the plans' log, by the names they had.
PLAN_EVENT_COLUMNS = PLAN_LOG.columns
recorded_plan_event_from_row = PLAN_LOG.recorded_from_row
plan_event_from_row = PLAN_LOG.event_from_row
plan_summary_from_row = PLAN_LOG.summary_from_row

VISITED = ("awaiting_report", "report_submitted", "report_returned", "following_up")
"""Visit statuses that mean the visit took place (a closed one counts unless cancelled or rejected)."""


class PlanStore:
    """The plans' event log (`log`) and the queries only plans have, on one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.log = EventLog(PLAN_LOG, pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.log.pool

    # --- the log (see `EventLog`) -----------------------------------------------------------

    async def append(self, req: PlanAppendRequest) -> PlanAppendResult:
        """Record the request's events, notifications and read-model row, atomically and once."""
        return await self.log.append(req)

    async def events(
        self, plan_id: str, *, after_seq: int = 0, until: datetime | None = None
    ) -> list[RecordedPlanEvent]:
        """The plan's events after `after_seq`, in seq order; with `until`, those at or before it."""
        return await self.log.events(plan_id, after_seq=after_seq, until=until)

    async def raw_rows(self, plan_id: str) -> list[dict[str, Any]]:
        """The plan's rows exactly as stored, in seq order: verify hashes on these."""
        return await self.log.raw_rows(plan_id)

    async def find_command(self, plan_id: str, command_id: str) -> list[RecordedPlanEvent]:
        """The events recorded for `command_id` on the plan (empty when it was never recorded)."""
        return await self.log.find_command(plan_id, command_id)

    async def state(self, plan_id: str) -> MonthPlanState | None:
        """The plan folded from its log, or None when nothing is recorded for it."""
        return await self.log.state(plan_id)

    async def plan(self, plan_id: str) -> MonthPlanSummary | None:
        """The plan's read-model row, or None."""
        return await self.log.summary(plan_id)

    async def rebuild_read_model(self, plan_id: str) -> bool:
        """Rewrite one plan's `month_plans` row by folding its log again; whether a row was written."""
        return await self.log.rebuild_read_model(plan_id) > 0

    async def pending_notifications(self, limit: int = 100) -> list[dict[str, Any]]:
        """Plan outbox rows not yet sent (id as text), oldest first (delivery is at least once)."""
        return await self.log.pending_notifications(limit)

    # --- plans' own reads -------------------------------------------------------------------

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
        return await self.log.summaries(
            "($1::text IS NULL OR rep_id = $1) AND ($2::text IS NULL OR manager_id = $2)"
            " AND ($3::text IS NULL OR month = $3) AND ($4::text IS NULL OR status = $4)"
            " ORDER BY month DESC, rep_id LIMIT $5",
            rep_id,
            manager_id,
            month,
            db_value(status),
            limit,
        )

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
            rows = await self.pool.fetch(
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
