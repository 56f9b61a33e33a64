"""The state of one visit and the pure fold that builds it from its events."""

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.actors import Actor
from domain.events import (
    GENESIS_HASH,
    DeputyActed,
    Escalated,
    PlanApproved,
    PlanRejected,
    PlanReturned,
    PlanRevised,
    PlanSubmitted,
    PromisedItemCompleted,
    RecordedEvent,
    ReminderSent,
    ReportAccepted,
    ReportReturned,
    ReportSubmitted,
    ReportWaived,
    VisitCancelled,
    VisitCheckedIn,
    VisitClosed,
    VisitOutcome,
    VisitRescheduled,
)
from domain.models import Execution, ItemStatus, Plan, PromisedItem, Report
from domain.policy import Policy


class VisitStatus(StrEnum):
    """Where a visit stands in its lifecycle."""

    awaiting_approval = "awaiting_approval"
    returned_for_changes = "returned_for_changes"
    approved = "approved"
    awaiting_report = "awaiting_report"
    report_submitted = "report_submitted"
    report_returned = "report_returned"
    following_up = "following_up"
    closed = "closed"


ITEM_PREFIX = "item:"
"""Concern key prefix of a promised item (``item:<item_id>``)."""

OPEN_PLAN = (VisitStatus.awaiting_approval, VisitStatus.returned_for_changes)
REPORT_MISSING = (VisitStatus.awaiting_report, VisitStatus.report_returned)
BEFORE_VISIT = (*OPEN_PLAN, VisitStatus.approved)


class VisitState(BaseModel):
    """Everything the rules need to know about one visit, folded from its events."""

    model_config = ConfigDict(extra="forbid")

    visit_id: str
    status: VisitStatus
    rep_id: str
    manager_id: str
    director_id: str | None = None
    policy: Policy
    plan: Plan
    plan_revision: int = 1
    submitted_at: datetime
    approved_at: datetime | None = None
    approved_by: Actor | None = None
    execution: Execution | None = None
    report_due_at: datetime | None = None
    report: Report | None = None
    report_revision: int = 0
    report_submitted_at: datetime | None = None
    report_late: bool = False
    report_accepted: bool = False
    report_waived: bool = False
    items: dict[str, PromisedItem] = Field(default_factory=dict)
    reminded: list[str] = Field(default_factory=list)
    reminders: dict[str, int] = Field(default_factory=dict)
    escalation_levels: dict[str, int] = Field(default_factory=dict)
    escalation_repeats: dict[str, int] = Field(default_factory=dict)
    outcome: VisitOutcome | None = None
    closed_at: datetime | None = None
    last_reason: str = ""
    last_seq: int = 0
    head_hash: str = GENESIS_HASH
    updated_at: datetime

    @property
    def closed(self) -> bool:
        return self.status is VisitStatus.closed

    def open_items(self) -> list[PromisedItem]:
        return [i for i in self.items.values() if i.status is ItemStatus.open]


def _started(recorded: RecordedEvent, event: PlanSubmitted) -> VisitState:
    return VisitState(
        visit_id=event.visit_id,
        status=VisitStatus.awaiting_approval,
        rep_id=event.rep_id,
        manager_id=event.manager_id,
        director_id=event.director_id,
        policy=event.policy,
        plan=event.plan,
        submitted_at=recorded.occurred_at,
        updated_at=recorded.occurred_at,
    )


def _clear_concern(state: VisitState, concern: str) -> None:
    # A concern that was resolved and later reopens (a returned plan, a returned report)
    # is a new deadline: its reminders and escalations start over.
    state.escalation_levels.pop(concern, None)
    state.escalation_repeats.pop(concern, None)
    state.reminders.pop(concern, None)
    if concern in state.reminded:
        state.reminded.remove(concern)


def evolve(state: VisitState | None, recorded: RecordedEvent) -> VisitState:
    """Apply one recorded event to the state; the same fold serves workflow and auditor."""
    event = recorded.event
    if state is not None and state.closed:
        # The workflow records nothing after closing (its rules refuse), so a later event
        # was written some other way: the fold says so rather than carry it along.
        raise ValueError(
            f"event {recorded.seq} ({event.type}) comes after the visit was closed (event {state.last_seq})"
        )
    if isinstance(event, PlanSubmitted):
        new = _started(recorded, event)
    else:
        if state is None:
            raise ValueError(f"event {recorded.seq} ({event.type}) comes before the plan")
        # Every nested value is a frozen model, so only the containers _apply mutates in
        # place are copied: a deep copy per event made folding a long log ten times slower.
        new = state.model_copy(
            update={
                "items": dict(state.items),
                "reminded": list(state.reminded),
                "reminders": dict(state.reminders),
                "escalation_levels": dict(state.escalation_levels),
                "escalation_repeats": dict(state.escalation_repeats),
            }
        )
        _apply(new, recorded)
    new.last_seq = recorded.seq
    new.head_hash = recorded.hash
    new.updated_at = recorded.occurred_at
    return new


def _apply(s: VisitState, recorded: RecordedEvent) -> None:
    e = recorded.event
    at = recorded.occurred_at
    match e:
        case PlanRevised():
            s.plan = e.plan
            s.plan_revision = e.revision
            s.status = VisitStatus.awaiting_approval
            s.submitted_at = at
            # A revision that follows an escalation has a new, future visit time (the old
            # one passed), so its approval is a new deadline, as after a reschedule.
            _clear_concern(s, "plan_approval")
        case PlanApproved():
            s.status = VisitStatus.approved
            s.approved_at = at
            s.approved_by = e.approved_by or recorded.actor
        case PlanRejected():
            s.last_reason = e.reason
        case PlanReturned():
            s.status = VisitStatus.returned_for_changes
            s.last_reason = e.reason
        case VisitRescheduled():
            s.plan = s.plan.model_copy(
                update={
                    "scheduled_start": e.scheduled_start,
                    "duration_minutes": e.duration_minutes,
                }
            )
            s.status = VisitStatus.awaiting_approval
            s.approved_at = None
            s.approved_by = None
            s.last_reason = e.reason
            _clear_concern(s, "plan_approval")
            _clear_concern(s, "check_in")
        case VisitCancelled():
            s.last_reason = e.reason
        case VisitCheckedIn():
            s.execution = e.execution
            s.report_due_at = e.report_due_at
            s.status = VisitStatus.awaiting_report
        case ReportSubmitted():
            s.report = e.report
            s.report_revision = e.revision
            s.report_submitted_at = at
            s.report_late = s.report_late or e.late
            for item in e.items:
                before = s.items.get(item.item_id)
                if before is None or before.due_at != item.due_at:
                    # A new or re-dated promise is a new deadline with its own ladder.
                    _clear_concern(s, ITEM_PREFIX + item.item_id)
            s.items = {item.item_id: item for item in e.items}
            s.status = VisitStatus.report_submitted
            _clear_concern(s, "review")  # each submission waits for its own review
        case ReportAccepted():
            s.report_accepted = True
            s.status = VisitStatus.following_up
        case ReportReturned():
            s.status = VisitStatus.report_returned
            s.report_due_at = e.report_due_at
            s.last_reason = e.reason
            _clear_concern(s, "report")
        case ReportWaived():
            s.report_waived = True
            s.last_reason = e.reason
            s.status = VisitStatus.following_up
        case PromisedItemCompleted():
            promise = s.items.get(e.item_id)
            if promise is None:
                raise ValueError(f"event {recorded.seq} completes unknown promised item {e.item_id!r}")
            s.items[e.item_id] = promise.model_copy(
                update={
                    "status": ItemStatus.completed,
                    "completed_at": at,
                    "completed_late": e.late,
                    "resolution": e.resolution,
                    "customer_reply": e.customer_reply,
                }
            )
        case ReminderSent():
            if e.concern not in s.reminded:
                s.reminded.append(e.concern)
            s.reminders[e.concern] = s.reminders.get(e.concern, 0) + 1
        case Escalated():
            s.escalation_levels[e.concern] = e.level
            s.escalation_repeats[e.concern] = e.repeat
        case DeputyActed():
            pass  # the who is on record; the authority was the absent manager's
        case VisitClosed():
            s.status = VisitStatus.closed
            s.outcome = e.outcome
            s.closed_at = at
        case _:
            raise ValueError(f"no rule to apply event type {e.type}")


def fold(events: Iterable[RecordedEvent], state: VisitState | None = None) -> VisitState | None:
    """Fold events, in order, into the state they produce."""
    for recorded in events:
        state = evolve(state, recorded)
    return state
