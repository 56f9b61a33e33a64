"""Events: the facts recorded in the log, one row each, never changed.

Each event type is a frozen model with a `schema_version`. The envelope
(`RecordedEvent`) adds where it sits in the visit's log (seq), who caused it, when, the
command it answered, and its link in the hash chain.
"""

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from domain.actors import Actor
from domain.chain import GENESIS_HASH
from domain.models import Execution, Frozen, Instant, Plan, PromisedItem, Report
from domain.policy import Policy
from domain.stream import Recorded

__all__ = ["GENESIS_HASH"]  # re-exported: readers of a visit's log find it beside the events


class EventBase(Frozen):
    schema_version: int = 1


class PlanSubmitted(EventBase):
    type: Literal["PlanSubmitted"] = "PlanSubmitted"
    visit_id: str
    rep_id: str
    manager_id: str
    director_id: str | None = None
    plan: Plan
    policy: Policy


class PlanRevised(EventBase):
    type: Literal["PlanRevised"] = "PlanRevised"
    plan: Plan
    revision: int
    note: str = ""


class PlanApproved(EventBase):
    """`approved_by` names an approval given elsewhere (a monthly plan) and recorded with the
    plan by its submitter; otherwise the approver is the event's actor."""

    type: Literal["PlanApproved"] = "PlanApproved"
    comment: str = ""
    approved_by: Actor | None = None


class PlanRejected(EventBase):
    type: Literal["PlanRejected"] = "PlanRejected"
    reason: str


class PlanReturned(EventBase):
    type: Literal["PlanReturned"] = "PlanReturned"
    reason: str


class VisitRescheduled(EventBase):
    type: Literal["VisitRescheduled"] = "VisitRescheduled"
    previous_start: Instant
    scheduled_start: Instant
    duration_minutes: int
    reason: str


class VisitCancelled(EventBase):
    type: Literal["VisitCancelled"] = "VisitCancelled"
    reason: str


class VisitCheckedIn(EventBase):
    type: Literal["VisitCheckedIn"] = "VisitCheckedIn"
    execution: Execution
    report_due_at: Instant


class ReportSubmitted(EventBase):
    type: Literal["ReportSubmitted"] = "ReportSubmitted"
    report: Report
    revision: int
    due_at: Instant
    late: bool
    items: list[PromisedItem]


class ReportAccepted(EventBase):
    type: Literal["ReportAccepted"] = "ReportAccepted"
    comment: str = ""


class ReportReturned(EventBase):
    type: Literal["ReportReturned"] = "ReportReturned"
    reason: str
    report_due_at: Instant


class ReportWaived(EventBase):
    type: Literal["ReportWaived"] = "ReportWaived"
    reason: str


class PromisedItemCompleted(EventBase):
    type: Literal["PromisedItemCompleted"] = "PromisedItemCompleted"
    item_id: str
    resolution: str
    customer_reply: str = ""
    late: bool


class ReminderSent(EventBase):
    """Version 3 counts the reminder's `repeat` (0: the first); version 2 had none (every
    reminder was the first); version 1 named the recipient as recipient_id and recipient_role."""

    schema_version: int = 3
    type: Literal["ReminderSent"] = "ReminderSent"
    concern: str
    recipient: Actor
    due_at: Instant
    message: str
    repeat: int = 0


class Escalated(EventBase):
    """Version 3 counts the `repeat` of the top rung (0: a rung told the first time); version
    2 had none; version 1 named the recipient as recipient_id and recipient_role."""

    schema_version: int = 3
    type: Literal["Escalated"] = "Escalated"
    concern: str
    level: int
    recipient: Actor
    due_at: Instant
    scheduled_for: Instant
    message: str
    repeat: int = 0


class DeputyActed(EventBase):
    """The command's actor (the row's) acted as the deputy of `for_id`, who was away (代理);
    recorded first among the events the command decided."""

    type: Literal["DeputyActed"] = "DeputyActed"
    for_id: str


class VisitOutcome(StrEnum):
    completed = "completed"
    report_waived = "report_waived"
    rejected = "rejected"
    cancelled = "cancelled"


class VisitClosed(EventBase):
    type: Literal["VisitClosed"] = "VisitClosed"
    outcome: VisitOutcome


Event = Annotated[
    PlanSubmitted
    | PlanRevised
    | PlanApproved
    | PlanRejected
    | PlanReturned
    | VisitRescheduled
    | VisitCancelled
    | VisitCheckedIn
    | ReportSubmitted
    | ReportAccepted
    | ReportReturned
    | ReportWaived
    | PromisedItemCompleted
    | ReminderSent
    | Escalated
    | VisitClosed
    | DeputyActed,
    Field(discriminator="type"),
]

NOTIFYING_EVENTS = ("ReminderSent", "Escalated")
"""Event types that put a notification in the outbox, in the same transaction."""


class RecordedEvent(Recorded):
    """One row of the visits' log (`visit_events`): a visit's event in its envelope."""

    stream_field: ClassVar[str] = "visit_id"

    visit_id: str
    event: Event
