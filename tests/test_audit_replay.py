"""Replay audit: the histories of real visits replay against the current workflow code, and a
change that would break running visits is reported per workflow, before deploy."""

import asyncio
import json
import logging
import os
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

from starter.binaries import find_binary
from starter.client import VisitClient
from starter.replay import ReplayProblem, opened_workflow_id, replay_files, replay_visits
from tests import factory as f
from tests.test_cli import visits_script
from tests.test_history_check import engine, reported_late
from workflows.contract import WORKFLOW_TYPE, workflow_id

HISTORIES = Path(__file__).parent / "histories"


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class PausingVisitWorkflow:
    """The visit workflow as a careless change might leave it: a pause before anything else.

    Unsandboxed only because it lives in a test module the sandbox would re-import.
    """

    @workflow.run
    async def run(self, start: dict[str, Any]) -> None:
        await workflow.sleep(timedelta(minutes=1))


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class BrokenVisitWorkflow:
    """The visit workflow as a change that raises might leave it (unsandboxed as above)."""

    @workflow.run
    async def run(self, start: dict[str, Any]) -> None:
        workflow.logger.warning("about to break")
        raise RuntimeError("the changed code broke")


async def closed_lifecycle(client: VisitClient, env: WorkflowEnvironment) -> str:
    """A visit from plan to closing, with a promise kept."""
    visit_id = f.new_id("rp")
    start = (await env.get_current_time()).replace(microsecond=0) + timedelta(days=6)
    await client.start_visit(f.submit_plan(visit_id, start))
    await client.send(visit_id, f.approve())
    await env.sleep(start + timedelta(hours=1) - await env.get_current_time())
    await client.send(visit_id, f.check_in(start))
    await client.send(visit_id, f.report(("samples", start + timedelta(days=3))))
    await client.send(visit_id, f.accept())
    await client.send(visit_id, f.complete("samples"))
    return visit_id


async def test_current_code_replays_real_visits_and_a_change_fails_each_with_nondeterminism(env, pool):
    async with engine(env.client, pool) as client:
        visit_ids = [await closed_lifecycle(client, env), await reported_late(client, env)]
        current = await replay_visits(env.client, visit_ids)
        changed = await replay_visits(env.client, visit_ids, workflows=[PausingVisitWorkflow])
    assert current.ok and (current.replayed, current.passed, current.failed) == (2, 2, 0)
    assert [o.workflow_id for o in current.outcomes] == [workflow_id(v) for v in visit_ids]
    assert all(o.run_id and o.source == "temporal" for o in current.outcomes)
    assert not changed.ok and (changed.replayed, changed.failed) == (2, 2)
    for outcome in changed.outcomes:
        assert outcome.problem is ReplayProblem.nondeterminism
        assert outcome.reason and outcome.reason.startswith("[TMPRL1100] Nondeterminism error")
        # Which recorded event the changed code first trips on depends on timing (an
        # activity or an update), so only the kind of failure is pinned down.
        assert outcome.detail


async def test_visit_without_history_is_reported_unavailable_not_replayed(env):
    report = await replay_visits(env.client, [f.new_id("nowhere")])
    assert not report.ok and (report.replayed, report.failed, report.unavailable) == (0, 0, 1)
    assert report.outcomes[0].problem is ReplayProblem.unavailable
    assert "retention" in (report.outcomes[0].reason or "")


async def _listed(env: WorkflowEnvironment, query: str, count: int) -> None:
    """Wait until visibility (eventually consistent) lists `count` workflows for `query`."""
    for _ in range(200):
        if (await env.client.count_workflows(query)).count == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"visibility never listed {count} workflows for {query}")


async def test_query_replays_every_visit_it_finds(dev_env, pool):
    async with engine(dev_env.client, pool) as client:
        visit_ids = [f.new_id("rq"), f.new_id("rq")]
        start = (await dev_env.get_current_time()) + timedelta(days=6)
        for visit_id in visit_ids:
            await client.start_visit(f.submit_plan(visit_id, start))
            await client.send(visit_id, f.approve())
        query = f"WorkflowType = '{WORKFLOW_TYPE}' AND TaskQueue = '{client.task_queue}'"
        await _listed(dev_env, query, 2)
        current = await replay_visits(dev_env.client, query=query)
        changed = await replay_visits(dev_env.client, query=query, workflows=[PausingVisitWorkflow])
    assert current.ok and current.passed == 2
    assert {o.workflow_id for o in current.outcomes} == {workflow_id(v) for v in visit_ids}
    assert changed.failed == 2
    assert {o.problem for o in changed.outcomes} == {ReplayProblem.nondeterminism}


async def test_histories_exported_by_the_temporal_cli_replay_without_a_server(dev_env, pool, tmp_path):
    async with engine(dev_env.client, pool) as client:
        visit_id = f.new_id("rf")
        start = (await dev_env.get_current_time()) + timedelta(days=6)
        await client.start_visit(f.submit_plan(visit_id, start))
        await client.send(visit_id, f.approve())
        exported = tmp_path / f"visit-{visit_id}.json"
        shown = await asyncio.create_subprocess_exec(
            find_binary("temporal"),
            "workflow",
            "show",
            "--workflow-id",
            workflow_id(visit_id),
            "--address",
            dev_env.client.service_client.config.target_host,
            "--output",
            "json",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(shown.communicate(), timeout=60)
        assert shown.returncode == 0
        exported.write_bytes(out)
    broken = tmp_path / "broken.json"
    broken.write_text('{"events": "not a list"}')
    committed = sorted(HISTORIES.glob("*.json"))

    current = await replay_files([exported, broken, *committed])
    changed = await replay_files([exported], workflows=[PausingVisitWorkflow])

    assert [o.ok for o in current.outcomes] == [True, False] + [True] * len(committed)
    assert current.outcomes[0].workflow_id == f"visit-{visit_id}"
    assert current.outcomes[0].source == str(exported)
    assert current.outcomes[1].problem is ReplayProblem.unavailable
    assert current.outcomes[1].source == str(broken)
    assert (current.replayed, current.failed, current.unavailable) == (1 + len(committed), 0, 1)
    assert changed.outcomes[0].problem is ReplayProblem.nondeterminism


def _changed_history(tmp_path: Path) -> tuple[Path, str]:
    """A committed history edited so the current code no longer replays it, and its workflow id."""
    text = (HISTORIES / "lifecycle_with_promised_items.json").read_text()
    changed = tmp_path / "changed.json"
    changed.write_text(text.replace('"name": "append_events"', '"name": "append_changed"'))
    found = opened_workflow_id(json.loads(text))
    assert found is not None
    return changed, found


def test_replay_command_prints_its_summary_and_one_line_per_failed_history_only(tmp_path):
    changed, failing_id = _changed_history(tmp_path)
    passing = HISTORIES / "late_report_escalated_twice.json"
    env = {**os.environ, "VISITFLOW_DATA_DIR": str(tmp_path / "none")}

    def replay(*extra: str) -> subprocess.CompletedProcess[str]:
        args = ["audit", "replay", "--file", str(changed), "--file", str(passing), *extra]
        return subprocess.run(
            [*visits_script(), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
        )

    ran = replay()
    assert ran.returncode == 3
    # No "WARN temporalio_sdk_core ... Failing workflow task" line from the SDK's core, on
    # either stream: the failure's reason is already the command's own line.
    assert ran.stdout.splitlines() == [
        f"{failing_id}: nondeterminism: [TMPRL1100] Nondeterminism error: Activity type of scheduled "
        "event 'append_changed' does not match activity type of activity command 'append_events'",
        "Replayed 2 histories: 1 passed, 1 failed, 0 unavailable; NOT every history replays.",
    ]
    assert ran.stderr == ""
    ran = replay("--json")
    assert ran.returncode == 3 and ran.stderr == ""
    body = json.loads(ran.stdout)  # the whole of stdout is the report
    assert (body["passed"], body["failed"]) == (1, 1)


async def test_a_failing_replay_is_reported_once_not_also_logged_by_the_sdk(tmp_path, caplog, capfd):
    changed, failing_id = _changed_history(tmp_path)
    with caplog.at_level(logging.INFO):
        broken = await replay_files(
            [HISTORIES / "lifecycle_with_promised_items.json"], workflows=[BrokenVisitWorkflow]
        )
        changed_report = await replay_files([changed])
    assert [(o.workflow_id, o.problem, o.reason) for o in broken.outcomes] == [
        (failing_id, ReplayProblem.error, "the changed code broke")
    ]
    assert changed_report.outcomes[0].problem is ReplayProblem.nondeterminism
    # Neither the SDK's "Failed activation on workflow ..." warning with its traceback, nor
    # the workflow's own logger, nor the core's WARN line.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
    printed = capfd.readouterr()
    assert "Failing workflow task" not in printed.out + printed.err
