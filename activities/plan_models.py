"""What crosses the boundary between the monthly plan workflow and its activities."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain.month_plan import MonthPlanSummary, RecordedPlanEvent
from domain.planning import PlannedVisit, PlanRules
from domain.policy import Policy


class PlanAppendRequest(BaseModel):
    """Plan events decided by the workflow, numbered and chained, with the read-model row after them."""

    model_config = ConfigDict(frozen=True)

    plan_id: str
    events: list[RecordedPlanEvent] = Field(min_length=1)
    summary: MonthPlanSummary


class PlanAppendResult(BaseModel):
    """Where the plan's log ends after the append (the same on a repeated append)."""

    model_config = ConfigDict(frozen=True)

    plan_id: str
    last_seq: int
    head_hash: str
    duplicate: bool = False


class ReviewRequest(BaseModel):
    """A submission to review against the registry and the logs, as of `submitted_at`."""

    model_config = ConfigDict(frozen=True)

    plan_id: str
    rep_id: str
    month: str
    visits: list[PlannedVisit]
    submitted_at: datetime
    policy: Policy
    rules: PlanRules
