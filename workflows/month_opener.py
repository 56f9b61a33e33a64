"""MonthPlanOpener: on the first day of each month, every active rep's plan for the next month.

A rep who never opens their plan must still be chased at month end, when it is due: so
the engine opens it. A Temporal schedule (`ensure_schedule`, made by each worker at start,
once for the namespace) starts this workflow at local midnight on the 1st; it reads the
active reps from the directory and starts one `MonthPlanWorkflow` each, by its workflow
id. A plan already open (by its rep, or by an earlier run) is left as it is: each opens
exactly once, however many workers or runs there are.
"""

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.plan_activities import PlanActivities
    from domain.actors import SYSTEM
    from domain.calendar import zone
    from domain.month_plan import OpenMonthPlan, plan_id_of
    from domain.planning import month_of
    from workflows.command_log import APPEND_RETRY
    from workflows.plan_contract import PLAN_WORKFLOW_TYPE, plan_workflow_id

OPENER_WORKFLOW_TYPE = "MonthPlanOpener"
SCHEDULE_ID = "visitflow-month-plans"
"""One schedule per namespace and task queue's engine: workers that start together make it once."""


class OpenerReport(BaseModel):
    """What one run did: the plans it opened, those already open, the reps it could not serve."""

    month: str
    opened: list[str] = Field(default_factory=list)
    already_open: list[str] = Field(default_factory=list)
    not_opened: dict[str, str] = Field(default_factory=dict)


def next_month(month: str) -> str:
    """The month after a ``YYYY-MM`` month."""
    year, number = int(month[:4]), int(month[5:])
    return f"{year + 1:04d}-01" if number == 12 else f"{year:04d}-{number + 1:02d}"


@workflow.defn(name=OPENER_WORKFLOW_TYPE)
class MonthPlanOpener:
    """Opens next month's plan for every active rep (or `month`'s, when given)."""

    @workflow.run
    async def run(self, month: str | None = None) -> OpenerReport:
        settings = await workflow.execute_activity_method(
            PlanActivities.load_plan_settings,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
        local = workflow.now().astimezone(zone(settings.policy.timezone))
        report = OpenerReport(month=month or next_month(month_of(local.date())))
        reps = await workflow.execute_activity_method(
            PlanActivities.active_reps,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=APPEND_RETRY,
        )
        for rep in reps:
            plan_id = plan_id_of(rep.rep_id, report.month)
            if not rep.manager_id:
                report.not_opened[plan_id] = f"{rep.rep_id} has no manager in the directory."
                continue
            opening = OpenMonthPlan(
                command_id=f"opened-on-schedule:{plan_id}",
                actor=SYSTEM,
                rep_id=rep.rep_id,
                manager_id=rep.manager_id,
                director_id=rep.director_id,
                month=report.month,
            )
            try:
                await workflow.start_child_workflow(
                    PLAN_WORKFLOW_TYPE,
                    opening,
                    id=plan_workflow_id(rep.rep_id, report.month),
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    # As `MonthPlanClient.open_month_plan`: one plan per rep and month.
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                )
            except WorkflowAlreadyStartedError:
                report.already_open.append(plan_id)
            else:
                report.opened.append(plan_id)
        workflow.logger.info(
            "month plans opened for %s: %d new, %d already open",
            report.month,
            len(report.opened),
            len(report.already_open),
        )
        return report


async def ensure_schedule(client: Client, *, task_queue: str, timezone: str) -> bool:
    """Make the schedule that runs `MonthPlanOpener` at local midnight on the 1st, unless it
    exists; whether this call made it."""
    try:
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    OPENER_WORKFLOW_TYPE, id="month-plan-opener", task_queue=task_queue
                ),
                spec=ScheduleSpec(cron_expressions=["0 0 1 * *"], time_zone_name=timezone),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True
