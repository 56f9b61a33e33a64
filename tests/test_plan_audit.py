"""Monthly plans under the auditor's tools: cross-checked with Temporal's history like visits.

A plan's log (`plan_events`) is chained like a visit's; its workflow appends through
`append_plan_events`. The same check compares the two records and names what differs.
"""

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from activities.plan_store import PLAN_LOG, PlanStore
from activities.store import EventStore
from domain.month_plan import MonthPlanStatus
from domain.verify import ChainProblem
from starter.audit import Auditor, NotLogged
from starter.bundle import Selection, export_bundle, verify_bundle
from starter.history_check import PLANS, DifferenceKind, check_history
from starter.log_check import verify_log
from tests import tamper
from tests.helpers import PlanDriver
from tests.stories import story
from tests.test_cli_audit import visits
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


async def test_a_plan_is_replayed_from_its_log_and_a_rewritten_row_is_located(env, pool, task_queue):
    async with sales_team(env, pool, task_queue) as team:
        opened = await team.open()
        await team.submit(team.three_visits())
        await env.sleep(timedelta(hours=2))  # the manager approves later that day
        approved = await team.plans.approve_month_plan(team.rep.id, team.month, team.approval())
        await team.plans.result(team.rep.id, team.month)
        auditor = Auditor(EventStore(pool), team.plans.store)

        audit = await auditor.audit_plan(opened.plan_id)
        assert audit.ok and audit.anchored and audit.chain.stream == "plan"
        assert [s.entry.type for s in audit.steps][:3] == [
            "MonthPlanOpened",
            "MonthPlanSubmitted",
            "MonthPlanApproved",
        ]
        assert audit.state is not None and audit.state.complete
        assert audit.summary is not None and audit.summary.started == 3

        approval_time = audit.steps[2].entry.occurred_at
        before = await auditor.audit_plan(opened.plan_id, as_of=approval_time - timedelta(seconds=1))
        assert before.state is not None and before.state.status is MonthPlanStatus.submitted
        assert before.chain.ok  # the whole log is verified, whatever moment is shown

        async with tamper.past_the_triggers(pool) as conn:
            await conn.execute(
                "UPDATE plan_events SET payload = jsonb_set(payload, '{comment}', '\"Approved by phone\"')"
                " WHERE plan_id = $1 AND seq = $2",
                opened.plan_id,
                approved.events[0].seq,
            )
        tampered = await auditor.audit_plan(opened.plan_id)
        assert not tampered.ok
        assert (tampered.chain.first_bad_seq, tampered.chain.kind) == (3, ChainProblem.content_changed)
        assert tampered.chain.problem and tampered.chain.problem.startswith(f"Plan {opened.plan_id}, event 3")

        with pytest.raises(NotLogged):
            await auditor.audit_plan("nobody-2026-12")


async def test_verify_all_checks_the_plans_log_and_locates_a_deleted_tail(own_pool):
    plans = PlanStore(own_pool)
    intact, victim = PlanDriver(), PlanDriver()
    for driver in (intact, victim):
        await plans.append(driver.open())
        await plans.append(driver.submit(driver.visit(1, "2026-12-08 10:00")))
    report = await verify_log(own_pool, tables=PLAN_LOG)
    assert report.ok and (report.stream, report.streams, report.events) == ("plan", 2, 4)

    await tamper.delete_plan_rows(own_pool, victim.plan_id, 2)
    report = await verify_log(own_pool, tables=PLAN_LOG)
    assert not report.ok and report.intact == 1
    (bad,) = report.bad
    assert (bad.stream, bad.stream_id, bad.first_bad_seq, bad.kind) == (
        "plan",
        victim.plan_id,
        2,
        ChainProblem.tail_mismatch,
    )
    assert bad.problem.startswith(f"Plan {victim.plan_id}: the log ends at event 1")


async def test_a_bundle_carries_the_plans_log_and_verifies_it_offline(own_pool, tmp_path):
    store, plans = EventStore(own_pool), PlanStore(own_pool)
    visit = await story(store)
    plan = PlanDriver()
    await plans.append(plan.open())
    await plans.append(plan.submit(plan.visit(1, "2026-12-08 10:00")))

    whole = await export_bundle(store, tmp_path / "whole", Selection())
    assert (whole.format_version, whole.visit_count, whole.plan_count, whole.plan_event_count) == (2, 1, 1, 2)
    report = verify_bundle(tmp_path / "whole", expect_hash=whole.bundle_hash)
    assert report.ok, report.problems
    assert [(c.stream, c.stream_id, c.status) for c in report.plans] == [("plan", plan.plan_id, "submitted")]

    only_plan = await export_bundle(store, tmp_path / "plan", Selection(plan_ids=[plan.plan_id]))
    assert (only_plan.visit_count, only_plan.plan_count) == (0, 1)
    only_visit = await export_bundle(store, tmp_path / "visit", Selection(visit_ids=[visit.visit_id]))
    assert (only_visit.visit_count, only_visit.plan_count, only_visit.plan_events_file) == (1, 0, None)
    assert verify_bundle(tmp_path / "plan").ok and verify_bundle(tmp_path / "visit").ok

    # A plan's line rewritten in the bundle: its chain and the file's hash both say so.
    path = tmp_path / "whole" / "plan_events.jsonl"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"revision":1', '"revision":2', 1), encoding="utf-8")
    tampered = verify_bundle(tmp_path / "whole")
    assert not tampered.ok
    assert any(p.startswith(f"Plan {plan.plan_id}, event 2") for p in tampered.problems), tampered.problems
    assert "plan_events.jsonl was changed after export: its SHA-256 does not match." in tampered.problems


async def test_the_audit_commands_take_monthly_plans(own_database, own_pool, tmp_path):
    plans = PlanStore(own_pool)
    plan = PlanDriver()
    await plans.append(plan.open())
    await plans.append(plan.submit(plan.visit(1, "2026-12-08 10:00")))
    await plans.append(plan.approve())
    rep, month = plan.rep.id, plan.month

    code, out, err = await visits(own_database, tmp_path, "audit", "plan", rep, month)
    assert code == 0, err
    assert out.startswith("Log: intact, 3 events chained from event 1 to 3")
    assert f"Plan {plan.plan_id}: approved" in out
    approved = next(line for line in out.splitlines() if "MonthPlanApproved" in line)
    assert "Plan approved:" in approved and approved.rstrip(" │").endswith("approved")
    code, out, _ = await visits(
        own_database, tmp_path, "audit", "plan", rep, month, "--as-of", "2026-11-21", "--json"
    )
    body = json.loads(out)
    assert code == 0 and body["ok"] and body["state"]["status"] == "submitted"

    code, out, err = await visits(
        own_database, tmp_path, "audit", "export", str(tmp_path / "b"), "--plan", f"{rep}:{month}"
    )
    assert code == 0, err
    assert out.startswith(
        f"Exported 0 events of 0 visit(s) and 3 events of 1 monthly plan(s) to {tmp_path / 'b'}"
    )
    code, out, _ = await visits(own_database, tmp_path, "audit", "verify", str(tmp_path / "b"))
    assert code == 0 and "3 events of 1 monthly plan(s)" in out

    await tamper.delete_plan_rows(own_pool, plan.plan_id, 3)
    code, out, _ = await visits(own_database, tmp_path, "audit", "plan", rep, month)
    assert code == 3 and out.startswith("Log: NOT INTACT at event 3 (tail_mismatch)")
    code, out, _ = await visits(own_database, tmp_path, "audit", "verify", "--all", "--no-temporal")
    assert code == 3
    assert "of 1 monthly plans in " in out and "0 intact; NOT INTACT." in out
    assert f"  - {plan.plan_id}: event 3 (tail_mismatch): Plan {plan.plan_id}: the log ends at event 2" in out

    code, _, err = await visits(
        own_database, tmp_path, "audit", "export", str(tmp_path / "c"), "--plan", "r-wang"
    )
    assert code == 2 and "--plan takes REP_ID:MONTH" in err


async def test_audit_plan_refuses_bad_input_and_unknown_plans_in_one_line(own_database, tmp_path):
    code, out, err = await visits(own_database, tmp_path, "audit", "plan", "r-wang", "2030-13")
    assert (code, out) == (
        2,
        "",
    ) and err.strip() == "MONTH: a month is written YYYY-MM, for example 2026-12 (got '2030-13')"
    code, out, err = await visits(own_database, tmp_path, "audit", "plan", "r-nobody", "2030-01")
    assert (code, out) == (1, "") and err.strip() == "The log holds no events of plan r-nobody-2030-01."


async def test_the_standard_library_checker_verifies_a_bundles_plans_too(own_pool, tmp_path):
    plans = PlanStore(own_pool)
    plan = PlanDriver()
    await plans.append(plan.open())
    await story(EventStore(own_pool))
    await export_bundle(EventStore(own_pool), tmp_path / "b", Selection())
    checker = Path(__file__).resolve().parent.parent / "examples" / "check_bundle_chains.py"
    command = [sys.executable, str(checker), str(tmp_path / "b")]
    ran = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"{plan.plan_id}: intact (1 events verified)" in ran.stdout.splitlines()
