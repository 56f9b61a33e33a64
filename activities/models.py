"""What crosses the boundary between the visit workflow and its activities."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.events import RecordedEvent
from domain.summary import VisitSummary


class AppendRequest(BaseModel):
    """Events decided by the workflow, numbered and chained, with the read-model row after them."""

    model_config = ConfigDict(frozen=True)

    visit_id: str
    events: list[RecordedEvent] = Field(min_length=1)
    summary: VisitSummary


class AppendResult(BaseModel):
    """Where the visit's log ends after the append (the same on a repeated append)."""

    model_config = ConfigDict(frozen=True)

    visit_id: str
    last_seq: int
    head_hash: str
    duplicate: bool = False


class DeputyCheck(BaseModel):
    """Whether `deputy_id` may act for the absent `absent_id` at `at` (the directory says)."""

    model_config = ConfigDict(frozen=True)

    deputy_id: str
    absent_id: str
    at: datetime
