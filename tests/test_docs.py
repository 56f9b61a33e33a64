"""The README and docs/ cannot drift from the code: their examples are files the tests and CI run.

The Python example is `examples/quickstart.py`'s `story`, run here on the time-skipping
server; the `temporal` CLI walkthrough is `examples/temporal-cli.sh`, which `.ci/run` runs
against `visits dev`; the JSON shapes, settings and commands the pages name are checked
against the models, the settings object and the CLI; every `visits` command line they
show parses with the real CLI; the customer CSV example is imported for real; and every
relative link between the pages resolves.
"""

import asyncio
import importlib.util
import json
import os
import re
import shlex
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from domain.commands import SubmitPlan
from domain.events import Escalated
from domain.month_plan import OpenMonthPlan, SubmitMonthPlan
from domain.planning import PlanRules
from domain.policy import Policy
from settings import NotifySettings, Settings
from starter.cli import app
from starter.cli.common import CliContext
from starter.client import VisitClient
from worker import build_worker
from workflows.contract import CommandResult
from workflows.plan_contract import PlanCommandResult

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = {path: path.read_text(encoding="utf-8") for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]}
README = PAGES[ROOT / "README.md"]
QUICKSTART = ROOT / "examples" / "quickstart.py"
WALKTHROUGH = ROOT / "examples" / "temporal-cli.sh"
CLI = typer.main.get_command(app)

FENCE = re.compile(r"^ *```.*?^ *```", flags=re.DOTALL | re.MULTILINE)


def fenced(language: str, text: str | None = None) -> list[str]:
    """The code blocks of `language` in one page's text, or in every page."""
    texts = [text] if text is not None else list(PAGES.values())
    return [block for t in texts for block in re.findall(rf"```{language}\n(.*?)```", t, flags=re.DOTALL)]


def page(name: str) -> str:
    return PAGES[DOCS / name]


def story_source() -> str:
    text = QUICKSTART.read_text(encoding="utf-8")
    start = text.index("# --8<-- [start:story]\n") + len("# --8<-- [start:story]\n")
    return text[start : text.index("# --8<-- [end:story]")].rstrip() + "\n"


def test_the_python_example_is_the_story_in_examples_quickstart():
    assert story_source() in fenced("python", page("python-client.md"))


def test_the_temporal_cli_walkthrough_is_examples_temporal_cli_sh():
    script = WALKTHROUGH.read_text(encoding="utf-8").rstrip() + "\n"
    assert script in fenced("bash", page("contract.md"))
    assert os.access(WALKTHROUGH, os.X_OK)


def test_the_walkthrough_opens_with_the_contracts_id_policies_and_says_where_temporal_is():
    script = WALKTHROUGH.read_text(encoding="utf-8")
    start = script[script.index("temporal workflow start") :].split("--input", 1)[0]
    assert "--id-reuse-policy AllowDuplicateFailedOnly" in start
    assert "--id-conflict-policy UseExisting" in start
    assert 'export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"' in script
    assert "export TEMPORAL_ADDRESS=host:port" in page("contract.md")


def test_the_front_door_is_short_and_shows_the_two_commands():
    assert len(README.splitlines()) <= 200
    quick_start = fenced("bash", README)[0]
    assert "./scripts/dev" in quick_start and "./scripts/test" in quick_start
    for path in ("scripts/dev", "scripts/test", ".ci/run"):
        assert os.access(ROOT / path, os.X_OK), path


async def test_quickstart_story_runs_to_an_escalated_promise(env, pool, task_queue):
    spec = importlib.util.spec_from_file_location("quickstart", QUICKSTART)
    assert spec is not None and spec.loader is not None
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    visit_id = f"V-docs-{task_queue[-8:]}"

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


def test_the_json_examples_match_the_models():
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


def every_setting() -> set[str]:
    nested = ("policy", "planning", "notify")
    names = {f"VISITFLOW_{name.upper()}" for name in Settings.model_fields if name not in nested}
    names |= {f"VISITFLOW_POLICY__{name.upper()}" for name in Policy.model_fields}
    names |= {f"VISITFLOW_PLANNING__{name.upper()}" for name in PlanRules.model_fields}
    names |= {f"VISITFLOW_NOTIFY__{name.upper()}" for name in NotifySettings.model_fields}
    return names


def settings_named(text: str) -> set[str]:
    return set(re.findall(r"VISITFLOW_[A-Z_]*[A-Z]", text))


def test_the_settings_page_lists_every_setting_and_the_pages_name_only_real_ones():
    expected = every_setting()
    assert expected - settings_named(page("settings.md")) == set(), "settings missing from docs/settings.md"
    named = set().union(*(settings_named(text) for text in PAGES.values()))
    assert named - expected == {"VISITFLOW_TEST_DATABASE_URL"}, "the pages name unknown settings"


def test_the_settings_page_gives_each_setting_its_unit():
    rows = {
        name: line
        for line in page("settings.md").splitlines()
        if line.startswith("| `VISITFLOW_")
        for name in settings_named(line.split("|")[1])
    }
    assert set(rows) == every_setting()
    for name, row in rows.items():
        assert row.split("|")[3].strip(), f"{name} has no description"
    durations = [name for name, field in Policy.model_fields.items() if field.annotation is timedelta]
    assert durations
    for name in [*durations, "escalation_ladder"]:
        assert "a duration" in rows[f"VISITFLOW_POLICY__{name.upper()}"], name


def test_the_settings_shown_in_commands_are_valid(monkeypatch):
    shown = [
        (name, value)
        for block in fenced("bash")
        for word in shlex.split(block.replace("\\\n", " "), comments=True)
        if (found := re.fullmatch(r"(VISITFLOW_(?:POLICY|PLANNING)__[A-Z_]+)=(.*)", word))
        for name, value in [found.groups()]
    ]
    assert "VISITFLOW_POLICY__REPORT_DEADLINE" in {name for name, _ in shown}
    for name, value in shown:
        with monkeypatch.context() as env:
            env.setenv(name, value)
            Settings()  # raises when the value is refused


def resolve(args: list[str]) -> str:
    """Parse one `visits` command line as the CLI would, without running it; its command's name."""
    command, name = CLI, "visits"
    context = command.make_context(name, list(args))
    while isinstance(command, TyperGroup):
        # typer's click keeps the sub-command's name apart from its arguments.
        rest = [*context._protected_args, *context.args]
        found, sub, rest = command.resolve_command(context, rest)
        assert found is not None and sub is not None
        command, name = sub, found
        context = command.make_context(name, rest, parent=context)
    return name


def visits_lines() -> list[str]:
    """Every `visits ...` command line in the pages' shell blocks (and `$ visits` in text blocks)."""
    lines = []
    for block in fenced("bash"):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    for block in fenced("text"):
        lines += [line[2:] for line in block.splitlines() if line.startswith("$ visits ")]
    return [line for line in lines if line.startswith("visits ")]


def test_every_visits_command_line_shown_parses_with_the_cli():
    lines = visits_lines()
    assert any(line.startswith("visits accept-report V1") for line in lines)  # the front door's lifecycle
    for line in lines:
        resolve(shlex.split(line, comments=True)[1:])


def test_the_pages_name_only_real_visits_commands():
    commands = set(CLI.commands)  # type: ignore[attr-defined]
    text = "\n".join(PAGES.values())
    named = set(re.findall(r"`visits ([a-z][a-z-]*)", text))
    named |= set(re.findall(r"^\$? ?visits ([a-z][a-z-]*)", text, flags=re.MULTILINE))
    assert named and named - commands == set()
    for group in ("plan", "audit", "customers"):
        subcommands = set(CLI.commands[group].commands)  # type: ignore[attr-defined]
        named = set(re.findall(rf"visits {group} ([a-z][a-z-]*)", text))
        assert named and named - subcommands == set(), group


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def prose(text: str) -> str:
    """A page without its code blocks and code spans, where links and headings live."""
    return re.sub(r"`[^`]*`", "", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", text), flags=re.MULTILINE):
        base = slug(heading)
        anchor, n = base, 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return found


def test_every_relative_link_between_the_pages_resolves():
    checked = 0
    for path, text in PAGES.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{path.relative_to(ROOT)}: {target} points nowhere"
            if anchor and linked.suffix == ".md":
                assert anchor in anchors(linked.read_text(encoding="utf-8")), (
                    f"{path.relative_to(ROOT)}: {target} names no heading"
                )
            checked += 1
    assert checked > 20
    for doc in DOCS.glob("*.md"):
        if doc.name != "README.md":
            assert f"({doc.name})" in page("README.md"), f"docs/README.md does not list {doc.name}"


async def run_visits(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=CliContext(settings=settings))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.store
async def test_the_customers_page_example_file_and_commands_run(own_database, tmp_path, monkeypatch):
    text = page("customers.md")
    example = re.search(r"```text\n(.*?)```", text, flags=re.DOTALL)
    commands = re.search(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    assert example is not None and commands is not None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "customers.csv").write_bytes(example.group(1).encode("utf-8-sig"))  # as Excel saves it
    for line in commands.group(1).splitlines():
        args = shlex.split(line, comments=True)
        assert args[:2] == ["visits", "customers"], line
        code, out, err = await run_visits(own_database, tmp_path, *args[1:])
        assert code == 0, (line, out, err)
    code, out, _ = await run_visits(own_database, tmp_path, "customers", "show", "C-17", "--as", "rep:r-wang")
    assert "李娜, 店长" in out
