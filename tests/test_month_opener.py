"""Each month's plans are opened by the engine for every active rep, exactly once.

On the first day of a month a schedule starts `MonthPlanOpener`, which opens next month's
plan for every active rep of the directory, so a rep who never opens one is still chased
when it falls due. A plan already open is left alone; a second run opens nothing twice.
"""

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

from temporalio.client import ScheduleActionStartWorkflow, ScheduleHandle

from activities.people import PeopleStore
from activities.plan_store import PlanStore
from domain.actors import SYSTEM, Actor, Role
from domain.month_plan import MonthPlanStatus, OpenMonthPlan
from domain.people import Person
from settings import Settings
from starter.plan_client import MonthPlanClient
from tests import factory as f
from worker import build_worker
from workflows.month_opener import (
    OPENER_WORKFLOW_TYPE,
    SCHEDULE_ID,
    OpenerReport,
    ensure_schedule,
    next_month,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def team(tag: str) -> list[Person]:
    """A director, a manager, two active reps and one who left."""
    return [
        Person(id=f"d-{tag}", role=Role.director, name_zh="赵总"),
        Person(id=f"m-{tag}", role=Role.manager, manager_id=f"d-{tag}", name_zh="李经理"),
        Person(id=f"r1-{tag}", role=Role.rep, manager_id=f"m-{tag}"),
        Person(id=f"r2-{tag}", role=Role.rep, manager_id=f"m-{tag}"),
        Person(id=f"r3-{tag}", role=Role.rep, manager_id=f"m-{tag}", active=False),
    ]


def test_the_month_after_a_december_is_january():
    assert (next_month("2026-12"), next_month("2027-01")) == ("2027-01", "2027-02")


async def test_next_months_plans_open_for_every_active_rep_once(env, own_pool, task_queue):
    tag = f.new_id("t")
    await PeopleStore(own_pool).upsert_many(team(tag))
    plans = MonthPlanClient(env.client, own_pool, task_queue=task_queue)
    async with build_worker(env.client, own_pool, Settings(task_queue=task_queue)):
        first = await env.client.execute_workflow(
            OPENER_WORKFLOW_TYPE, id=f"opener-{tag}", task_queue=task_queue, result_type=OpenerReport
        )
        month = first.month
        opened = sorted(f"{rep}-{month}" for rep in (f"r1-{tag}", f"r2-{tag}"))
        assert sorted(first.opened) == opened and first.already_open == [] and first.not_opened == {}

        for rep in (f"r1-{tag}", f"r2-{tag}"):
            handle = plans.handle(rep, month)
            await handle.execute_update("opened", None)
            logged = await plans.history(rep, month)
            assert [(e.type, e.actor) for e in logged] == [("MonthPlanOpened", SYSTEM)]
            opening = logged[0].event
            assert (opening.manager_id, opening.director_id) == (f"m-{tag}", f"d-{tag}")

        again = await env.client.execute_workflow(
            OPENER_WORKFLOW_TYPE, id=f"opener-{tag}-2", task_queue=task_queue, result_type=OpenerReport
        )
        assert again.opened == [] and sorted(again.already_open) == opened
        summary = await PlanStore(own_pool).plan(f"r1-{tag}-{month}")
        assert summary is not None and summary.status is MonthPlanStatus.awaiting_plan
        # The rep opening it by hand is told it is open already, and sends their plan to it.
        rep = Actor(id=f"r1-{tag}", role=Role.rep)
        mine = OpenMonthPlan(
            command_id="c-mine", actor=rep, rep_id=rep.id, manager_id=f"m-{tag}", month=month
        )
        refused = await asyncio.gather(plans.open_month_plan(mine), return_exceptions=True)
        assert getattr(refused[0], "rule", None) == "plan.exists"
        for rep_id in (f"r1-{tag}", f"r2-{tag}"):
            await plans.handle(rep_id, month).terminate("test finished")


async def test_the_schedule_runs_the_opener_on_the_first_at_local_midnight_and_is_made_once(
    dev_env, task_queue
):
    client = dev_env.client
    assert await ensure_schedule(client, task_queue=task_queue, timezone="Asia/Shanghai")
    assert not await ensure_schedule(
        client, task_queue=task_queue, timezone="Asia/Shanghai"
    )  # another worker
    handle: ScheduleHandle = client.get_schedule_handle(SCHEDULE_ID)
    try:
        described = await handle.describe()
        spec, action = described.schedule.spec, described.schedule.action
        assert spec.time_zone_name == "Asia/Shanghai"
        assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == OPENER_WORKFLOW_TYPE
        upcoming = described.info.next_action_times[0].astimezone(SHANGHAI)
        assert (upcoming.day, upcoming.hour, upcoming.minute) == (1, 0, 0)
        assert upcoming - (await dev_env.get_current_time()) <= timedelta(days=31)
    finally:
        await handle.delete()
