"""`visits audit`, run as an auditor would against a real log (and Temporal's test server, for
the workflows of open visits)."""

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.store import EventStore
from settings import Settings
from starter.cli import app
from starter.cli.common import CliContext
from tests import factory as f
from tests import tamper
from tests.stories import story
from tests.test_cli import servers, start_args, visit_time
from workflows.contract import workflow_id

pytestmark = pytest.mark.store


async def visits(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=CliContext(settings=settings))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


async def test_audit_id_shows_the_verified_timeline_with_reasons_and_status(own_database, own_pool, tmp_path):
    driver = await story(EventStore(own_pool))
    code, out, err = await visits(own_database, tmp_path, "audit", driver.visit_id)
    assert code == 0, err
    assert out.startswith("Log: intact, 11 events chained from event 1 to 11")
    assert "its head matches the read model" in out
    assert f"Visit {driver.visit_id}: closed (completed)" in out
    returned = next(line for line in out.splitlines() if "ReportReturned" in line)
    assert "mgr-li (manager)" in returned and "why: Add the competitor's prices" in returned
    assert returned.rstrip(" │").endswith("report_returned")


async def test_audit_as_of_a_day_shows_the_visit_at_the_end_of_that_day(own_database, own_pool, tmp_path):
    driver = await story(EventStore(own_pool))
    code, out, err = await visits(
        own_database, tmp_path, "audit", driver.visit_id, "--as-of", "2026-11-24", "--json"
    )
    assert code == 0, err
    body = json.loads(out)
    assert body["ok"] is True and body["chain"]["ok"] is True
    assert body["as_of"] == "2026-11-24T23:59:59.999999+08:00"
    assert body["state"]["status"] == "awaiting_report"
    assert [s["entry"]["seq"] for s in body["steps"]] == [1, 2, 3, 4]
    assert body["steps"][3]["state"]["reminded"] == ["report"]


async def test_audit_of_a_tampered_visit_exits_3_and_names_the_event(own_database, own_pool, tmp_path):
    driver = await story(EventStore(own_pool))
    await tamper.delete(own_pool, driver.visit_id, 11)
    code, out, _ = await visits(own_database, tmp_path, "audit", "show", driver.visit_id)
    assert code == 3
    assert out.splitlines()[0] == (
        f"Log: NOT INTACT at event 11 (tail_mismatch): Visit {driver.visit_id}: the log ends at event 10 "
        "but the visit's head is event 11: event 11 was deleted."
    )


async def test_export_then_verify_from_the_command_line(own_database, own_pool, tmp_path):
    driver = await story(EventStore(own_pool))
    bundle = tmp_path / "bundle"
    code, out, err = await visits(own_database, tmp_path, "audit", "export", str(bundle), driver.visit_id)
    assert code == 0, err
    assert out.startswith(f"Exported 11 events of 1 visit(s) to {bundle} (visits {driver.visit_id}).")
    noted = next(line for line in out.splitlines() if line.startswith("Bundle hash: ")).split(": ")[1]
    code, out, err = await visits(
        own_database, tmp_path, "audit", "verify", str(bundle), "--expect-hash", noted
    )
    assert code == 0, err
    assert "intact. 11 events of 1 visit(s)" in out
    code, out, _ = await visits(
        own_database, tmp_path, "audit", "verify", str(bundle), "--expect-hash", "0" * 64
    )
    assert code == 3 and "This is not the bundle expected" in out


async def test_audit_input_errors_are_one_line(own_database, tmp_path):
    cases = [
        (("audit", "v-none"), 1, "The log holds no events of visit v-none."),
        (("audit", "v-none", "--as-of", "yesterday"), 2, "--as-of takes an ISO time with its offset"),
        (("audit", "export", str(tmp_path / "b")), 2, "say what to export"),
        (("audit", "verify"), 2, "give either a BUNDLE directory or --all"),
        (("audit", "verify", str(tmp_path)), 1, "is not an audit bundle"),
    ]
    for args, code, message in cases:
        ran = await visits(own_database, tmp_path, *args)
        assert ran[0] == code, (args, ran)
        assert message in ran[2], (args, ran[2])
        assert len(ran[2].strip().splitlines()) == 1


async def test_verify_all_checks_every_chain_and_names_the_bad_ones(own_database, own_pool, tmp_path):
    store = EventStore(own_pool)
    for n in range(3):
        await story(store, f"v-{n}")
    code, out, err = await visits(own_database, tmp_path, "audit", "verify", "--all", "--no-temporal")
    assert code == 0, err
    chain, plans, workflows = out.strip().splitlines()
    assert chain.startswith("Verified 33 events of 3 visits in ")
    assert chain.endswith("3 intact; every chain intact and anchored.")
    assert plans.startswith("Verified 0 events of 0 monthly plans in ")
    assert workflows == (
        "The liveness of workflows was not checked (--no-temporal): an open visit or plan whose "
        "workflow has ended would not show."
    )

    await tamper.change_payload(own_pool, "v-1", 7, reason="No reason")
    code, out, _ = await visits(own_database, tmp_path, "audit", "verify", "--all", "--no-temporal")
    assert code == 3
    assert "2 intact; NOT INTACT." in out
    assert "  - v-1: event 7 (content_changed): Visit v-1, event 7 (ReportReturned) was changed" in out
    code, out, _ = await visits(own_database, tmp_path, "audit", "verify", "--all", "--no-temporal", "--json")
    body = json.loads(out)
    assert body["ok"] is False and [b["stream_id"] for b in body["bad"]] == ["v-1"]
    assert body["plans"]["ok"] is True and body["plans"]["stream"] == "plan"
    assert body["liveness"] is None


async def test_verify_all_without_temporal_says_so_in_one_line_unless_told_to_check_the_log_alone(
    own_database, own_pool, tmp_path
):
    await story(EventStore(own_pool), "v-0")
    code, out, err = await visits(own_database, tmp_path, "audit", "verify", "--all")
    assert code == 1 and out == ""
    assert err.strip() == (
        "No Temporal server is configured: start one with `visits dev`, or set VISITFLOW_TEMPORAL_ADDRESS. "
        "The workflows of open visits and plans cannot be checked; --no-temporal verifies the log alone."
    )
    settings = Settings(database_url=own_database, temporal_address="127.0.0.1:1", data_dir=tmp_path)
    ran = await asyncio.to_thread(
        CliRunner().invoke, app, ["audit", "verify", "--all"], obj=CliContext(settings=settings)
    )
    assert ran.exit_code == 1 and ran.stdout == ""
    assert len(ran.stderr.strip().splitlines()) == 1
    assert ran.stderr.startswith("Cannot reach the Temporal server at 127.0.0.1:1 (")
    assert ran.stderr.rstrip().endswith("--no-temporal verifies the log alone.")


async def test_verify_all_reports_an_open_visit_whose_workflow_was_terminated_and_exits_3(
    env, own_pool, own_database, task_queue, tmp_path
):
    async with servers(env, own_pool, own_database, task_queue, tmp_path) as cli:
        at = await visit_time(env)
        stopped, running = f.new_id(), f.new_id()
        for visit_id in (stopped, running):
            assert (await cli(*start_args(visit_id, at))).code == 0
            assert (await cli("approve", visit_id, "--as", "manager:m-li")).code == 0
        await env.client.get_workflow_handle(workflow_id(stopped)).terminate(reason="Opened by mistake")

        ran = await cli("audit", "verify", "--all")
        assert ran.code == 3, ran.stderr
        chain, _plans, workflows, finding = ran.stdout.strip().splitlines()
        # The log is intact: only a look at Temporal shows that nothing follows the visit.
        assert chain.endswith("2 intact; every chain intact and anchored.")
        assert workflows == (
            "Workflows: 1 of the 2 open visit(s) and 0 open plan(s) have no running workflow; nothing "
            "follows their deadlines:"
        )
        assert finding.startswith(
            f"  - Visit {stopped} is open (approved) but its workflow was terminated at "
        )
        assert finding.endswith(
            f"(Opened by mistake): it takes no commands and its deadlines are no longer followed (next: "
            f"check-in due {at + timedelta(minutes=150):%Y-%m-%d %H:%M} CST). See docs/operations.md to "
            "recover it."
        )

        ran = await cli("audit", "verify", "--all", "--json")
        assert ran.code == 3
        body = json.loads(ran.stdout)
        assert body["ok"] is False and body["bad"] == []
        assert body["liveness"]["ok"] is False and body["liveness"]["running"] == 1
        [unfollowed] = body["liveness"]["unfollowed"]
        assert (unfollowed["kind"], unfollowed["stream_id"], unfollowed["workflow_id"]) == (
            "visit",
            stopped,
            workflow_id(stopped),
        )
        assert (unfollowed["ended"], unfollowed["reason"], unfollowed["concern"]) == (
            "terminated",
            "Opened by mistake",
            "check_in",
        )
