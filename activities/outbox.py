"""The notification outboxes: which events notify someone, and the rows a relay delivers.

Each log has its outbox table (`notifications`, `plan_notifications`), with the same
columns apart from the stream's; an append writes the rows of its notifying events in the
same transaction (`activities.event_log`). Here, per stream, the row an event puts there.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from activities.event_log import OutboxRow
from domain.events import NOTIFYING_EVENTS, Escalated, RecordedEvent, ReminderSent
from domain.month_plan import (
    PLAN_NOTIFYING_EVENTS,
    MonthPlanEscalated,
    MonthPlanReminderSent,
    RecordedPlanEvent,
)
from domain.stream import Recorded

NotificationKind = Literal["reminder", "escalation"]


class Notification(BaseModel):
    """One row of the `notifications` outbox; its id is the event id that caused it."""

    model_config = ConfigDict(frozen=True)

    id: str
    visit_id: str
    seq: int
    kind: NotificationKind
    recipient_id: str
    recipient_role: str
    level: int | None
    concern: str
    message: str
    due_at: datetime
    created_at: datetime
    sent_at: datetime | None
    attempts: int


def notification_from_row(row: Any) -> Notification:
    """A `Notification` from a `notifications` row."""
    return Notification.model_validate({**dict(row), "id": str(row["id"])})


def _row(recorded: Recorded, kind: NotificationKind, level: int | None, concern: str) -> OutboxRow:
    # Every notifying event names its recipient, message and deadline alike.
    event = recorded.event
    return OutboxRow(
        recorded.event_id,
        recorded.stream_id,
        recorded.seq,
        kind,
        event.recipient.id,
        event.recipient.role.value,
        level,
        concern,
        event.message,
        event.due_at,
    )


def visit_notification(recorded: RecordedEvent) -> OutboxRow | None:
    """The `notifications` row a visit's event puts in the outbox, if any."""
    event = recorded.event
    if event.type not in NOTIFYING_EVENTS:
        return None
    if isinstance(event, ReminderSent):
        return _row(recorded, "reminder", None, event.concern)
    if isinstance(event, Escalated):
        return _row(recorded, "escalation", event.level, event.concern)
    # A type added to NOTIFYING_EVENTS must say here what it tells whom.
    raise ValueError(f"no outbox row is defined for notifying event {event.type}")


def plan_notification(recorded: RecordedPlanEvent) -> OutboxRow | None:
    """The `plan_notifications` row a plan's event puts in the outbox, if any."""
    event = recorded.event
    if event.type not in PLAN_NOTIFYING_EVENTS:
        return None
    if isinstance(event, MonthPlanReminderSent):
        return _row(recorded, "reminder", None, event.concern)
    if isinstance(event, MonthPlanEscalated):
        return _row(recorded, "escalation", event.level, event.concern)
    raise ValueError(f"no outbox row is defined for notifying plan event {event.type}")
