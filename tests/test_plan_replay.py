"""Replay: recorded monthly plan histories must replay against the current workflow code.

`tests/histories/plans/*.json` are histories of real runs, committed (apart from the visits'
histories, which `tests/test_replay.py` replays). To record them anew (only when a change is
meant to be incompatible and running plans are migrated):
``VISITFLOW_RECORD_HISTORIES=1 python -m pytest tests/test_plan_replay.py``.
"""

import contextlib
import os
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.worker import Replayer

from domain.month_plan import ReturnMonthPlan
from starter.replay import history_from_json
from tests import factory as f
from tests.test_month_plan_workflow import MANAGER, sales_team, skip_to
from workflows.month_plan import MonthPlanWorkflow
from workflows.plan_contract import plan_workflow_id

HISTORIES = Path(__file__).parent / "histories" / "plans"
RECORD = os.environ.get("VISITFLOW_RECORD_HISTORIES") == "1"
SCENARIO = "late_plan_returned_revised_and_approved_in_part"


def replayer() -> Replayer:
    return Replayer(workflows=[MonthPlanWorkflow], data_converter=pydantic_data_converter)


async def test_a_fresh_plan_history_replays_deterministically(env, pool, task_queue):
    """Chased past its deadline, submitted late, returned, revised, approved in part, visits opened."""
    async with sales_team(env, pool, task_queue) as team:
        await team.open()
        await skip_to(env, team.due + timedelta(hours=25))
        await team.submit(team.three_visits()[:2])
        back = ReturnMonthPlan(command_id=f.new_id("c"), actor=MANAGER, reason="Add the third visit")
        await team.plans.return_month_plan(team.rep.id, team.month, back)
        await team.submit(team.three_visits())
        approval = team.approval(team.visit_ids[:2])
        await team.plans.approve_month_plan(team.rep.id, team.month, approval)
        await team.plans.approve_month_plan(team.rep.id, team.month, approval)  # a repeat
        await team.plans.result(team.rep.id, team.month)
        handle = env.client.get_workflow_handle(plan_workflow_id(team.rep.id, team.month))
        with contextlib.suppress(RPCError):  # a plan whose visits are all started has completed
            await handle.terminate("recorded")
        history = await handle.fetch_history()
    await replayer().replay_workflow(history)
    if RECORD:
        HISTORIES.mkdir(parents=True, exist_ok=True)
        (HISTORIES / f"{SCENARIO}.json").write_text(history.to_json())


def _committed() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_a_plan_history_is_committed():
    assert SCENARIO in {p.stem for p in _committed()}


async def test_committed_plan_histories_replay_against_current_code():
    for path in _committed():
        history = history_from_json(path.read_text(), path.stem)
        await replayer().replay_workflow(history)
