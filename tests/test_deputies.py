"""A deputy acts for an absent manager only while the directory says so.

The workflow asks the directory (an activity) before deciding a command sent "for" an
absent manager: named deputy, and the manager away on the company's date of the command.
Otherwise the command is refused as `role.deputy` and nothing is recorded.
"""

from datetime import timedelta

import pytest

from activities.people import PeopleStore
from domain.actors import Actor, Role
from domain.calendar import local_date
from domain.commands import ApprovePlan
from domain.people import Person
from domain.policy import Policy
from settings import Settings
from starter.client import CommandRefused, VisitClient
from tests import factory as f
from worker import build_worker


async def test_a_deputy_acts_for_the_absent_manager_only_on_the_days_they_are_away(env, own_pool, task_queue):
    today = local_date(await env.get_current_time(), Policy())
    deputy = Actor(id="mgr-zhou", role=Role.manager)
    await PeopleStore(own_pool).upsert_many(
        [
            Person(id=f.DIRECTOR.id, role=Role.director),
            Person(
                id=f.MANAGER.id,
                role=Role.manager,
                manager_id=f.DIRECTOR.id,
                away_from=today,
                away_to=today,
                deputy_id=deputy.id,
            ),
            Person(id=deputy.id, role=Role.manager, manager_id=f.DIRECTOR.id),
            Person(id=f.REP.id, role=Role.rep, manager_id=f.MANAGER.id),
        ]
    )
    client = VisitClient(env.client, own_pool, task_queue=task_queue)
    async with build_worker(env.client, own_pool, Settings(task_queue=task_queue)):
        visit_id = f.new_id()
        start = (await env.get_current_time()) + timedelta(days=5)
        await client.start_visit(f.submit_plan(visit_id, start))
        try:
            # Not the manager's deputy: refused, nothing recorded.
            stranger = Actor(id="mgr-sun", role=Role.manager)
            with pytest.raises(CommandRefused) as refused:
                await client.send(
                    visit_id,
                    ApprovePlan(command_id=f.new_id("c"), actor=stranger, on_behalf_of=f.MANAGER.id),
                )
            assert refused.value.rule == "role.deputy"
            assert [e.type for e in await client.history(visit_id)] == ["PlanSubmitted"]

            approval = ApprovePlan(command_id=f.new_id("c"), actor=deputy, on_behalf_of=f.MANAGER.id)
            result = await client.send(visit_id, approval)
            assert [e.type for e in result.events] == ["DeputyActed", "PlanApproved"]
            logged = await client.history(visit_id)
            assert [(e.type, e.actor.id) for e in logged[1:]] == [
                ("DeputyActed", deputy.id),
                ("PlanApproved", deputy.id),
            ]
        finally:
            await client.handle(visit_id).terminate("test finished")

        # Once the manager is back, the same deputy is refused.
        later_id = f.new_id()
        await client.start_visit(f.submit_plan(later_id, start))
        try:
            await env.sleep(timedelta(days=2))
            with pytest.raises(CommandRefused) as back:
                await client.send(
                    later_id, ApprovePlan(command_id=f.new_id("c"), actor=deputy, on_behalf_of=f.MANAGER.id)
                )
            assert back.value.rule == "role.deputy" and "deputy on" in back.value.message
        finally:
            await client.handle(later_id).terminate("test finished")
