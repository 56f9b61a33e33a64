"""`visits plan ...` driven for real against a worker on the time-skipping server."""

import asyncio
import contextlib
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.customers import CustomerStore
from domain.customers import CustomerRecord
from domain.models import CustomerTier
from tests.test_cli import one_line, servers
from workflows.contract import OPENED, workflow_id
from workflows.plan_contract import plan_workflow_id

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_a_plan_opened_submitted_from_a_file_approved_in_part_and_shown(
    env, pool, database_url, task_queue, tmp_path: Path
):
    rep = f"r-{uuid.uuid4().hex[:8]}"
    await CustomerStore(pool).upsert_many(
        CustomerRecord(id=f"{rep}-{cid}", name=name, tier=tier, owner_rep_id=rep, manager_id="m-li")
        for cid, name, tier in (
            ("C1", "Acme Trading", CustomerTier.core),
            ("C2", "Lakeside", CustomerTier.regular),
        )
    )
    now = (await env.get_current_time()).astimezone(SHANGHAI)
    first = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    month = f"{first:%Y-%m}"
    at = datetime(first.year, first.month, 12, 10, 0, tzinfo=SHANGHAI)
    v1, v2 = f"{rep}-V1", f"{rep}-V2"
    async with servers(env, pool, database_url, task_queue, tmp_path) as cli:
        try:
            opened = await cli(
                "plan", "open", "--rep", rep, "--manager", "m-li", "--director", "d-zhao", "--month", month,
                "--as", f"rep:{rep}", "--command-id", "open-1",
            )  # fmt: skip
            assert opened.code == 0, opened.stderr
            assert one_line(opened.stdout) == (
                f"open_month_plan {rep}-{month}: recorded #1 MonthPlanOpened; status awaiting_plan "
                "(command id open-1)"
            )
            plan = tmp_path / "plan.json"
            plan.write_text(
                json.dumps(
                    [
                        {"visit_id": v1, "customer_id": f"{rep}-C1", "scheduled_start": at.isoformat(),
                         "duration_minutes": 30, "purpose": "Monthly review"},
                    ]
                )
            )  # fmt: skip
            flag = f"{v2}|{rep}-C2|{(at + timedelta(days=3)).isoformat()}|20|New catalogue"
            submitted = await cli("plan", "submit", rep, month, "--json", f"@{plan}", "--as", f"rep:{rep}")
            assert submitted.code == 0, submitted.stderr
            assert "recorded #2 MonthPlanSubmitted; status submitted" in submitted.stdout
            assert "(plan.cadence)" in submitted.stdout or "(plan.coverage)" in submitted.stdout

            refused = await cli("plan", "approve", rep, month, "--as", f"rep:{rep}")
            assert refused.code == 1
            assert one_line(refused.stderr).startswith(
                "refused (role.approve_month_plan): Only the plan's manager"
            )

            # --visit flags replace the file's list of visits.
            revised = await cli(
                "plan", "submit", rep, month, "--json", f"@{plan}", "--visit",
                f"{v1}|{rep}-C1|{at.isoformat()}|30|Monthly review", "--visit", flag, "--as", f"rep:{rep}",
            )  # fmt: skip
            assert revised.code == 0, revised.stderr
            assert "recorded #3 MonthPlanSubmitted" in revised.stdout
            approved = await cli(
                "plan", "approve", rep, month, "--visit", v2, "--as", "manager:m-li", "-o", "json"
            )
            assert approved.code == 0, approved.stderr
            assert json.loads(approved.stdout)["status"] == "approved"

            final = await env.client.get_workflow_handle(plan_workflow_id(rep, month)).result()
            assert final["started"] == {v2: workflow_id(v2)}
            shown = await cli("plan", "show", rep, month)
            assert shown.code == 0, shown.stderr
            assert f"Plan {rep}-{month}: approved" in shown.stdout
            assert "declined" in shown.stdout and "started" in shown.stdout
            assert "PlannedVisitStarted" in shown.stdout
            data = json.loads((await cli("plan", "show", rep, month, "--json")).stdout)
            assert data["summary"]["declined"] == 1
            assert [e["event"]["type"] for e in data["events"]][-1] == "PlannedVisitStarted"
            missing = await cli("plan", "show", "nobody", month)
            assert missing.code == 1 and "There is no plan of nobody" in missing.stderr
        finally:
            # The started visit finishes opening first (see tests/test_month_plan_workflow.py).
            with contextlib.suppress(RPCError, WorkflowUpdateFailedError, TimeoutError):
                await asyncio.wait_for(
                    env.client.get_workflow_handle(workflow_id(v2)).execute_update(OPENED, None), 10
                )
            for wid in (plan_workflow_id(rep, month), workflow_id(v1), workflow_id(v2)):
                with contextlib.suppress(RPCError):
                    await env.client.get_workflow_handle(wid).terminate("test over")
