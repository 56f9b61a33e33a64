"""The README cannot drift from the code: its examples are files the tests and CI run.

The Python example is `examples/quickstart.py`'s `story`, run here on the time-skipping
server; the `temporal` CLI walkthrough is `examples/temporal-cli.sh`, which `.ci/run` runs
against `visits dev`; the JSON shapes, settings and commands it names are checked against
the models, the settings object and the CLI.
"""

import importlib.util
import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import typer.main

from domain.commands import SubmitPlan
from domain.events import Escalated
from domain.month_plan import OpenMonthPlan, SubmitMonthPlan
from domain.planning import PlanRules
from domain.policy import Policy
from settings import Settings
from starter.cli import app
from starter.client import VisitClient
from worker import build_worker
from workflows.contract import CommandResult
from workflows.plan_contract import PlanCommandResult

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
QUICKSTART = ROOT / "examples" / "quickstart.py"


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def story_source() -> str:
    text = QUICKSTART.read_text(encoding="utf-8")
    start = text.index("# --8<-- [start:story]\n") + len("# --8<-- [start:story]\n")
    return text[start : text.index("# --8<-- [end:story]")].rstrip() + "\n"


def test_readme_python_example_is_the_story_in_examples_quickstart():
    assert story_source() in fenced("python")


def test_readme_temporal_cli_walkthrough_is_examples_temporal_cli_sh():
    script = (ROOT / "examples" / "temporal-cli.sh").read_text(encoding="utf-8").rstrip() + "\n"
    assert script in fenced("bash")
    assert os.access(ROOT / "examples" / "temporal-cli.sh", os.X_OK)


def test_readme_quick_start_scripts_and_ci_are_executable():
    for path in ("scripts/dev", "scripts/test", ".ci/run"):
        assert os.access(ROOT / path, os.X_OK), path
    quick_start = fenced("bash")[0]
    assert "./scripts/dev" in quick_start and "./scripts/test" in quick_start


async def test_quickstart_story_runs_to_an_escalated_promise(env, pool, task_queue):
    spec = importlib.util.spec_from_file_location("quickstart", QUICKSTART)
    assert spec is not None and spec.loader is not None
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    visit_id = f"V-readme-{task_queue[-8:]}"

    async def wait_until(instant: datetime) -> None:
        ahead = instant - await env.get_current_time()
        if ahead > timedelta(0):
            await env.sleep(ahead)

    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        visits = VisitClient(env.client, pool, task_queue=task_queue)
        await quickstart.story(visits, visit_id, env.get_current_time, wait_until)
        events = await visits.history(visit_id)
        summary = await visits.summary(visit_id)
        await visits.handle(visit_id).terminate("test over")  # its item would escalate again
    assert [e.type for e in events] == [
        "PlanSubmitted", "PlanApproved", "VisitCheckedIn", "ReportSubmitted",
        "ReportAccepted", "ReminderSent", "Escalated",
    ]  # fmt: skip
    escalated = events[-1].event
    assert isinstance(escalated, Escalated)
    assert (escalated.concern, escalated.level, escalated.recipient.id) == ("item:samples", 1, "m-li")
    assert summary is not None and summary.escalated == ["item:samples"]


def test_readme_json_examples_match_the_models():
    blocks = [json.loads(block) for block in fenced("json")]
    plans = [b for b in blocks if "plan" in b]
    results = [b for b in blocks if "events" in b and "visit_id" in b]
    assert plans and results
    for body in plans:
        SubmitPlan.model_validate(body)
    for body in results:
        CommandResult.model_validate(body)
    # The monthly plan's contract: its opening, a submission and a result.
    openings = [b for b in blocks if "month" in b]
    submissions = [b for b in blocks if "visits" in b]
    plan_results = [b for b in blocks if "plan_id" in b]
    assert openings and submissions and plan_results
    for body in openings:
        OpenMonthPlan.model_validate(body)
    for body in submissions:
        SubmitMonthPlan.model_validate(body)
    for body in plan_results:
        PlanCommandResult.model_validate(body)


def test_readme_names_every_setting_and_only_real_ones():
    expected = {
        f"VISITFLOW_{name.upper()}" for name in Settings.model_fields if name not in ("policy", "planning")
    }
    expected |= {f"VISITFLOW_POLICY__{name.upper()}" for name in Policy.model_fields}
    expected |= {f"VISITFLOW_PLANNING__{name.upper()}" for name in PlanRules.model_fields}
    named = set(re.findall(r"VISITFLOW_[A-Z_]*[A-Z]", README))
    assert expected - named == set(), "settings missing from the README"
    assert named - expected == {"VISITFLOW_TEST_DATABASE_URL"}, "the README names unknown settings"


def test_readme_names_only_real_visits_commands():
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    named = set(re.findall(r"`visits ([a-z][a-z-]*)", README))
    named |= set(re.findall(r"^visits ([a-z][a-z-]*)", README, flags=re.MULTILINE))
    assert named and named - commands == set()
