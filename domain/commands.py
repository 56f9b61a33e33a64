"""Commands: what people (and the engine's timers) ask of a visit.

Every command names its actor and carries a client-supplied `command_id`; sending the
same command twice records it once. `kind` tells the commands apart in JSON and has a
default, so a client that calls a named update need not send it.
"""

from typing import Annotated, Literal

from pydantic import Field

from domain.actors import Actor, CommandBase, Reason
from domain.alarms import Escalate, Remind
from domain.models import Execution, Instant, Name, Plan, Report

VisitId = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class SubmitPlan(CommandBase):
    """Open a visit with its plan. `approved_by` records an approval already given."""

    kind: Literal["submit_plan"] = "submit_plan"
    visit_id: VisitId
    rep_id: Name
    manager_id: Name
    director_id: Name | None = None
    plan: Plan
    approved_by: Actor | None = None
    approval_comment: str = Field(default="", max_length=2_000)


class RevisePlan(CommandBase):
    """The rep revises a plan that was returned (or is still waiting) and resubmits it."""

    kind: Literal["revise_plan"] = "revise_plan"
    plan: Plan
    note: str = Field(default="", max_length=2_000)


class ApprovePlan(CommandBase):
    kind: Literal["approve_plan"] = "approve_plan"
    comment: str = Field(default="", max_length=2_000)


class RejectPlan(CommandBase):
    kind: Literal["reject_plan"] = "reject_plan"
    reason: Reason


class ReturnPlan(CommandBase):
    """修改意见: the manager sends the plan back for changes."""

    kind: Literal["return_plan"] = "return_plan"
    reason: Reason


class Reschedule(CommandBase):
    """Move the visit before it happens; the new time needs approval again."""

    kind: Literal["reschedule"] = "reschedule"
    scheduled_start: Instant
    duration_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    reason: Reason


class CancelVisit(CommandBase):
    kind: Literal["cancel"] = "cancel"
    reason: Reason


class CheckIn(CommandBase):
    """The rep records the visit: method, start and end, optional location."""

    kind: Literal["check_in"] = "check_in"
    execution: Execution


class SubmitReport(CommandBase):
    kind: Literal["submit_report"] = "submit_report"
    report: Report


class AcceptReport(CommandBase):
    kind: Literal["accept_report"] = "accept_report"
    comment: str = Field(default="", max_length=2_000)


class ReturnReport(CommandBase):
    """The manager returns the report for revision; a new deadline starts now."""

    kind: Literal["return_report"] = "return_report"
    reason: Reason


class CompleteItem(CommandBase):
    kind: Literal["complete_item"] = "complete_item"
    item_id: Name
    resolution: Reason
    customer_reply: str = Field(default="", max_length=2_000)


class WaiveReport(CommandBase):
    """A manager waives a missing report, with a reason; the waiver is on record."""

    kind: Literal["waive_report"] = "waive_report"
    reason: Reason


Command = Annotated[
    SubmitPlan
    | RevisePlan
    | ApprovePlan
    | RejectPlan
    | ReturnPlan
    | Reschedule
    | CancelVisit
    | CheckIn
    | SubmitReport
    | AcceptReport
    | ReturnReport
    | CompleteItem
    | WaiveReport
    | Remind
    | Escalate,
    Field(discriminator="kind"),
]
