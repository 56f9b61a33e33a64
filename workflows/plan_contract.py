"""The public contract of the monthly plan workflow, shared by the worker and every client.

Kept stable: clients in any language call these names with these JSON shapes.
"""

from pydantic import BaseModel, ConfigDict, Field

from domain.month_plan import MonthPlanCommand, MonthPlanStatus, plan_id_of
from domain.plan_checks import Finding
from workflows.contract import RecordedRef, commands_by_name

PLAN_WORKFLOW_TYPE = "MonthPlanWorkflow"
PLAN_WORKFLOW_ID_PREFIX = "month-plan-"

PLAN_OPENED = "opened"
PLAN_STATE = "state"

#: Update name for each command a person sends to a plan (the same words as `kind`).
PLAN_UPDATES = ("submit_month_plan", "approve_month_plan", "return_month_plan")

PLAN_COMMANDS = commands_by_name(MonthPlanCommand, PLAN_UPDATES)
"""The command model of each update."""


def plan_workflow_id(rep_id: str, month: str) -> str:
    """The workflow id of a rep's plan for a month: ``month-plan-<rep_id>-<YYYY-MM>``."""
    return f"{PLAN_WORKFLOW_ID_PREFIX}{plan_id_of(rep_id, month)}"


class PlanCommandResult(BaseModel):
    """The outcome of an accepted plan command, returned once its events are committed.

    `findings` are those recorded with a submission (none block it, or it would be refused).
    """

    model_config = ConfigDict(frozen=True)

    plan_id: str
    command_id: str
    kind: str
    status: MonthPlanStatus
    events: list[RecordedRef]
    findings: list[Finding] = Field(default_factory=list)
    duplicate: bool = False
