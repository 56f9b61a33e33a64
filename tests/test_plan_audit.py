"""Monthly plans under the auditor's tools: cross-checked with Temporal's history like visits.

A plan's log (`plan_events`) is chained like a visit's; its workflow appends through
`append_plan_events`. The same check compares the two records and names what differs.
"""

from starter.history_check import PLANS, DifferenceKind, check_history
from tests import tamper
from tests.test_month_plan_workflow import sales_team


async def test_a_plan_log_agrees_with_its_workflow_history_and_a_deleted_row_shows(env, pool, task_queue):
    async with sales_team(env, pool, task_queue) as team:
        opened = await team.open()
        await team.submit(team.three_visits())
        await team.plans.approve_month_plan(team.rep.id, team.month, team.approval())
        await team.plans.result(team.rep.id, team.month)
        plan_id = opened.plan_id

        check = await check_history(env.client, team.plans.store, plan_id, kind=PLANS)
        assert check.ok, check.differences
        assert (check.stream, check.stream_id, check.workflow_status) == ("plan", plan_id, "completed")
        assert check.appends_completed == check.log_rows == 6  # opened, submitted, approved, 3 starts

        await tamper.delete_plan_rows(pool, plan_id, 6)
        after = await check_history(env.client, team.plans.store, plan_id, kind=PLANS)
        assert [(d.kind, d.seq) for d in after.differences] == [(DifferenceKind.missing, 6)]
        assert after.differences[0].message.startswith("Event 6 (PlannedVisitStarted")
