"""The read model of one visit: what lists and dashboards need, derived from its state."""

from datetime import datetime

from domain.deadlines import open_concerns
from domain.events import VisitOutcome
from domain.models import Frozen
from domain.state import VisitState, VisitStatus


class VisitSummary(Frozen):
    """One row of the `visits` read model (rebuilt from events at any time)."""

    visit_id: str
    status: VisitStatus
    outcome: VisitOutcome | None
    rep_id: str
    manager_id: str
    director_id: str | None
    customer_id: str
    customer_name: str
    scheduled_start: datetime
    report_due_at: datetime | None
    report_late: bool
    next_due_at: datetime | None
    next_due_concern: str | None
    open_items: int
    escalated: list[str]
    escalation_level: int
    last_seq: int
    head_hash: str
    updated_at: datetime


def summarize(state: VisitState) -> VisitSummary:
    """The read-model row for `state`."""
    concerns = sorted(open_concerns(state), key=lambda c: c.due_at)
    open_keys = {c.key for c in concerns}
    escalated = sorted(k for k, level in state.escalation_levels.items() if level and k in open_keys)
    return VisitSummary(
        visit_id=state.visit_id,
        status=state.status,
        outcome=state.outcome,
        rep_id=state.rep_id,
        manager_id=state.manager_id,
        director_id=state.director_id,
        customer_id=state.plan.customer.id,
        customer_name=state.plan.customer.name,
        scheduled_start=state.plan.scheduled_start,
        report_due_at=state.report_due_at,
        report_late=state.report_late,
        next_due_at=concerns[0].due_at if concerns else None,
        next_due_concern=concerns[0].key if concerns else None,
        open_items=len(state.open_items()),
        escalated=escalated,
        escalation_level=max((state.escalation_levels[k] for k in escalated), default=0),
        last_seq=state.last_seq,
        head_hash=state.head_hash,
        updated_at=state.updated_at,
    )
