"""Replay: recorded histories must replay against the current workflow code.

`tests/histories/*.json` are histories of real runs, committed. A change to the workflow
that would break visits already running fails here, before deploy. To record them anew
(only when a change is meant to be incompatible and running visits are migrated):
``VISITFLOW_RECORD_HISTORIES=1 python -m pytest tests/test_replay.py``.
"""

import contextlib
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.commands import ReturnPlan, RevisePlan
from settings import Settings
from starter.client import CommandRefused, VisitClient
from starter.replay import history_from_json
from tests import factory as f
from worker import build_worker
from workflows.visit import VisitWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("VISITFLOW_RECORD_HISTORIES") == "1"

Scenario = Callable[[VisitClient, WorkflowEnvironment], Awaitable[str]]


async def _skip(env: WorkflowEnvironment, delta: timedelta) -> None:
    await env.sleep(delta)


async def lifecycle_with_promised_items(client: VisitClient, env: WorkflowEnvironment) -> str:
    visit_id = f.new_id("replay-lifecycle")
    start = (await env.get_current_time()) + timedelta(days=6)
    await client.start_visit(f.submit_plan(visit_id, start))
    await client.send(visit_id, f.approve())
    await _skip(env, start + timedelta(hours=1) - await env.get_current_time())
    await client.send(visit_id, f.check_in(start))
    await client.send(visit_id, f.report(("a", start + timedelta(days=3)), ("b", start + timedelta(days=4))))
    await client.send(visit_id, f.accept())
    await client.send(visit_id, f.complete("a"))
    await client.send(visit_id, f.complete("b"))
    return visit_id


async def late_report_escalated_twice(client: VisitClient, env: WorkflowEnvironment) -> str:
    visit_id = f.new_id("replay-late")
    start = (await env.get_current_time()) + timedelta(days=6)
    await client.start_visit(f.submit_plan(visit_id, start))
    await client.send(visit_id, f.approve())
    await _skip(env, start + timedelta(hours=1) - await env.get_current_time())
    await client.send(visit_id, f.check_in(start))
    await _skip(env, timedelta(days=3, hours=2))
    await client.send(visit_id, f.report())
    await client.send(visit_id, f.accept())
    return visit_id


async def returned_plan_refusals_and_repeats(client: VisitClient, env: WorkflowEnvironment) -> str:
    visit_id = f.new_id("replay-returned")
    start = (await env.get_current_time()) + timedelta(days=6)
    opening = f.submit_plan(visit_id, start)
    await client.start_visit(opening)
    await client.send(
        visit_id, ReturnPlan(command_id=f.new_id("c"), actor=f.MANAGER, reason="Add the agenda")
    )
    with pytest.raises(CommandRefused):
        await client.send(visit_id, f.approve())
    revision = RevisePlan(command_id=f.new_id("c"), actor=f.REP, plan=opening.plan, note="Agenda added")
    await client.send(visit_id, revision)
    await client.send(visit_id, revision)  # a repeat: answered from the first result
    await client.send(visit_id, f.approve())
    return visit_id


async def review_chased_and_top_rung_repeated(client: VisitClient, env: WorkflowEnvironment) -> str:
    """Recorded with the chasing rules on (the settings' defaults): the report's review is
    reminded, escalated up the ladder and its top rung told again, then the report accepted."""
    visit_id = f.new_id("replay-review")
    start = (await env.get_current_time()) + timedelta(days=6)
    await client.start_visit(f.submit_plan(visit_id, start))
    await client.send(visit_id, f.approve())
    await _skip(env, start + timedelta(hours=1) - await env.get_current_time())
    await client.send(visit_id, f.check_in(start))
    await client.send(visit_id, f.report())
    await _skip(env, timedelta(days=7))
    await client.send(visit_id, f.accept())
    return visit_id


SCENARIOS: list[Scenario] = [
    lifecycle_with_promised_items,
    late_report_escalated_twice,
    returned_plan_refusals_and_repeats,
    review_chased_and_top_rung_repeated,
]


def replayer() -> Replayer:
    return Replayer(workflows=[VisitWorkflow], data_converter=pydantic_data_converter)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_fresh_history_replays_deterministically(scenario, env, pool, task_queue):
    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        client = VisitClient(env.client, pool, task_queue=task_queue)
        visit_id = await scenario(client, env)
        handle = client.handle(visit_id)
        with contextlib.suppress(RPCError):  # a closed visit has already completed
            await handle.terminate("recorded")
        history = await handle.fetch_history()
    await replayer().replay_workflow(history)
    if RECORD:
        (HISTORIES / f"{scenario.__name__}.json").write_text(history.to_json())


def _committed() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


@pytest.mark.parametrize("path", _committed(), ids=lambda p: p.stem)
async def test_committed_history_replays_against_current_code(path: Path):
    history = history_from_json(path.read_text(), path.stem)
    await replayer().replay_workflow(history)


def test_every_scenario_has_a_committed_history():
    assert {p.stem for p in _committed()} >= {s.__name__ for s in SCENARIOS}
