"""Input that cannot be read as a command is refused as `command.invalid`, and loses nothing.

A foreign client (the `temporal` CLI, another language's SDK) can send anything: a start
whose input is not a valid opening, an opening sent to another stream's workflow id, an
update whose argument is not a JSON object or not JSON at all. Each is refused in one line,
non-retryable, and a refused opening ends its run so the id can be used again.
"""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain.actors import Role
from domain.state import VisitStatus
from settings import Settings
from starter.client import VisitClient
from tests import factory as f
from worker import build_worker
from workflows.contract import OPENED, WORKFLOW_TYPE, CommandResult, workflow_id


def invalid(err: BaseException) -> ApplicationError:
    """The `command.invalid` refusal behind a client error (fails the test otherwise)."""
    cause = err.cause if isinstance(err, WorkflowUpdateFailedError | WorkflowFailureError) else err
    assert isinstance(cause, ApplicationError), repr(err)
    assert cause.type == "command.invalid" and cause.non_retryable, (cause.type, cause.message)
    assert "\n" not in cause.message
    return cause


async def start_raw(env: WorkflowEnvironment, task_queue: str, wid: str, opening: Any) -> WorkflowHandle:
    """Start a visit workflow the way a foreign client would, with the documented id policies."""
    return await env.client.start_workflow(
        WORKFLOW_TYPE,
        opening,
        id=wid,
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def refused_opening(handle: WorkflowHandle) -> ApplicationError:
    """The refusal the `opened` update answers, after checking that the run ended as failed."""
    with pytest.raises(WorkflowUpdateFailedError) as answered:
        # Bounded: a start that wedges its workflow task would never answer.
        await asyncio.wait_for(handle.execute_update(OPENED, None, result_type=CommandResult), timeout=30)
    cause = invalid(answered.value)
    with pytest.raises(WorkflowFailureError) as ended:
        await asyncio.wait_for(handle.result(), timeout=30)
    assert invalid(ended.value).message == cause.message
    return cause


def opening_json(visit_id: str, start: Any) -> dict[str, Any]:
    return f.submit_plan(visit_id, start).model_dump(mode="json")


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda body: body.pop("rep_id"), id="missing rep_id"),
        pytest.param(lambda body: body["plan"]["customer"].update(name="Acme\x00"), id="NUL in a name"),
        pytest.param(lambda body: body.update(visit_id="has space"), id="id with a space"),
        pytest.param(lambda body: body["plan"].update(scheduled_start=1_900_000_000), id="epoch time"),
    ],
)
async def test_malformed_opening_is_refused_and_the_corrected_one_opens_under_the_same_id(
    env, pool, task_queue, spoil
):
    client = VisitClient(env.client, pool, task_queue=task_queue)
    visit_id = f.new_id()
    start = (await env.get_current_time()) + timedelta(days=5)
    bad = opening_json(visit_id, start)
    spoil(bad)
    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        refusal = await refused_opening(await start_raw(env, task_queue, workflow_id(visit_id), bad))
        assert refusal.message.startswith("The command is malformed")
        assert await client.history(visit_id) == []
        # Awaiting a result lets the time-skipping server move its clock: plan from its time now.
        later = (await env.get_current_time()) + timedelta(days=5)
        opened = await client.start_visit(f.submit_plan(visit_id, later))
        assert opened.status is VisitStatus.awaiting_approval
        await client.handle(visit_id).terminate("test finished")


@pytest.mark.parametrize(
    "opening",
    [
        pytest.param(["not", "an", "object"], id="array"),
        pytest.param(
            RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b"{broken")), id="broken JSON"
        ),
    ],
)
async def test_opening_that_is_not_a_json_object_is_refused(env, pool, task_queue, opening):
    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        handle = await start_raw(env, task_queue, workflow_id(f.new_id()), opening)
        await refused_opening(handle)


async def test_opening_sent_to_another_visits_workflow_id_is_refused(env, pool, task_queue):
    client = VisitClient(env.client, pool, task_queue=task_queue)
    named, other = f.new_id(), f.new_id()
    start = (await env.get_current_time()) + timedelta(days=5)
    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        handle = await start_raw(env, task_queue, workflow_id(other), opening_json(named, start))
        refusal = await refused_opening(handle)
        assert named in refusal.message and workflow_id(other) in refusal.message
        assert await client.history(named) == [] and await client.history(other) == []


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param(["an", "array"], id="array"),
        pytest.param("a string", id="string"),
        pytest.param(
            RawValue(Payload(metadata={"encoding": b"json/plain"}, data=b"[1, 2")), id="broken JSON"
        ),
        pytest.param(RawValue(Payload(metadata={"encoding": b"no/such"}, data=b"{}")), id="unknown encoding"),
    ],
)
async def test_update_argument_that_is_not_a_json_object_is_refused_not_retryable(
    env, pool, task_queue, argument
):
    client = VisitClient(env.client, pool, task_queue=task_queue)
    visit_id = f.new_id()
    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        await client.start_visit(f.submit_plan(visit_id, (await env.get_current_time()) + timedelta(days=5)))
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await client.handle(visit_id).execute_update("approve_plan", argument, result_type=CommandResult)
        invalid(failed.value)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await client.handle(visit_id).execute_update("approve_everything", {}, result_type=CommandResult)
        assert "approve_plan" in invalid(unknown.value).message
        assert [e.type for e in await client.history(visit_id)] == ["PlanSubmitted"]
        await client.handle(visit_id).terminate("test finished")


async def test_visit_opened_already_approved_records_the_approval_as_the_approvers(env, pool, task_queue):
    client = VisitClient(env.client, pool, task_queue=task_queue)
    visit_id = f.new_id()
    start = (await env.get_current_time()) + timedelta(days=5)
    async with build_worker(env.client, pool, Settings(task_queue=task_queue)):
        await client.start_visit(f.submit_plan(visit_id, start, approved_by=f.MANAGER))
        logged = await client.history(visit_id)
        assert [(e.type, e.actor) for e in logged] == [
            ("PlanSubmitted", f.REP),
            ("PlanApproved", f.MANAGER),
        ]
        rows = await pool.fetch(
            "SELECT actor_id, actor_role FROM visit_events WHERE visit_id = $1 ORDER BY seq", visit_id
        )
        assert [(r["actor_id"], r["actor_role"]) for r in rows] == [
            (f.REP.id, Role.rep.value),
            (f.MANAGER.id, Role.manager.value),
        ]
        await client.handle(visit_id).terminate("test finished")
