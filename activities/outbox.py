"""The notification outbox: which events notify someone, and the rows a relay delivers."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from domain.events import NOTIFYING_EVENTS, Escalated, RecordedEvent, ReminderSent

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


INSERT_NOTIFICATION = """
INSERT INTO notifications
    (id, visit_id, seq, kind, recipient_id, recipient_role, level, concern, message, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


def notification_args(recorded: RecordedEvent) -> tuple[Any, ...] | None:
    """The outbox row `recorded` puts in the outbox (INSERT_NOTIFICATION's arguments), if any."""
    event = recorded.event
    if event.type not in NOTIFYING_EVENTS:
        return None
    if isinstance(event, ReminderSent):
        kind: NotificationKind = "reminder"
        level = None
    elif isinstance(event, Escalated):
        kind, level = "escalation", event.level
    else:
        # A type added to NOTIFYING_EVENTS must say here what it tells whom.
        raise ValueError(f"no outbox row is defined for notifying event {event.type}")
    return (
        recorded.event_id,
        recorded.visit_id,
        recorded.seq,
        kind,
        event.recipient.id,
        event.recipient.role.value,
        level,
        event.concern,
        event.message,
        event.due_at,
    )


def notification_from_row(row: Any) -> Notification:
    """A `Notification` from a `notifications` row."""
    return Notification.model_validate({**dict(row), "id": str(row["id"])})
