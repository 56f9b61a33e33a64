"""The log cross-checked with Temporal's history: real visits on Temporal's servers, a real
PostgreSQL, and the log tampered with the way only an administrator could."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.store import EventStore
from domain.chain import link_hash, row_content
from domain.commands import CancelVisit, SubmitPlan
from settings import Settings
from starter.client import VisitClient, VisitNotFound
from starter.history_check import (
    AppendStatus,
    DifferenceKind,
    HistoryUnavailable,
    UpdateStatus,
    VisitHistory,
    assess,
    check_history,
    compare,
    notes,
    read_history,
)
from tests import factory as f
from tests.helpers import VisitDriver
from worker import build_worker
from workflows.contract import CommandResult

Rows = list[dict[str, Any]]


class _Tracking(VisitClient):
    """Remembers the visits it opened, so each test ends them (a running one stalls time skipping)."""

    opened: list[str]

    async def start_visit(self, command: SubmitPlan) -> CommandResult:
        self.opened.append(command.visit_id)
        return await super().start_visit(command)


@asynccontextmanager
async def engine(temporal: Client, pool: asyncpg.Pool) -> AsyncIterator[VisitClient]:
    """A worker on a task queue of its own and a client for it; visits are ended afterwards."""
    task_queue = f"tq-{uuid.uuid4().hex}"
    client = _Tracking(temporal, pool, task_queue=task_queue)
    client.opened = []
    async with build_worker(temporal, pool, Settings(task_queue=task_queue)):
        try:
            yield client
        finally:
            for visit_id in client.opened:
                with contextlib.suppress(RPCError):
                    await client.handle(visit_id).terminate("test finished")


async def skip_to(env: WorkflowEnvironment, instant: datetime) -> None:
    now = await env.get_current_time()
    if instant > now:
        await env.sleep(instant - now)


async def reported_late(client: VisitClient, env: WorkflowEnvironment) -> str:
    """A visit whose report came after a reminder and an escalation (appends without updates)."""
    visit_id = f.new_id("hc")
    start = (await env.get_current_time()).replace(microsecond=0) + timedelta(days=6)
    await client.start_visit(f.submit_plan(visit_id, start))
    await client.send(visit_id, f.approve())
    await skip_to(env, start + timedelta(hours=1))
    await client.send(visit_id, f.check_in(start))
    await skip_to(env, start + timedelta(hours=50))
    await client.send(visit_id, f.report())
    return visit_id


async def as_administrator(pool: asyncpg.Pool, sql: str, *args: Any) -> None:
    """Run `sql` past the log's append-only triggers, as only a database superuser can."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(sql, *args)


async def delete_row(pool: asyncpg.Pool, row: dict[str, Any]) -> None:
    await as_administrator(
        pool, "DELETE FROM visit_events WHERE visit_id = $1 AND seq = $2", row["visit_id"], row["seq"]
    )


def _content(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    fields = {k: row[k] for k in ("visit_id", "seq", "event_id", "type", "schema_version", "occurred_at")}
    fields |= {k: row[k] for k in ("actor_id", "actor_role", "command_id", "payload")}
    return row_content(**(fields | changes))


async def forge_next(pool: asyncpg.Pool, last: dict[str, Any]) -> None:
    """Append a well-chained row no command produced: the chain alone cannot tell."""
    row = {
        **last,
        "seq": last["seq"] + 1,
        "event_id": str(uuid.uuid4()),
        "type": "ReportAccepted",
        "actor_id": f.MANAGER.id,
        "actor_role": "manager",
        "command_id": "forged",
        "payload": {"comment": "Fine"},
    }
    digest = link_hash(last["hash"], _content(row))
    await as_administrator(
        pool,
        "INSERT INTO visit_events (visit_id, seq, event_id, type, schema_version, occurred_at, actor_id,"
        " actor_role, command_id, payload, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        *(row[k] for k in ("visit_id", "seq", "event_id", "type", "schema_version", "occurred_at")),
        *(row[k] for k in ("actor_id", "actor_role", "command_id", "payload")),
        last["hash"],
        digest,
    )


async def rewrite_payload(pool: asyncpg.Pool, row: dict[str, Any], *, rehash: bool) -> None:
    payload = {**row["payload"], "comment": "Approved without reservation"}
    digest = link_hash(row["prev_hash"], _content(row, payload=payload)) if rehash else row["hash"]
    await as_administrator(
        pool,
        "UPDATE visit_events SET payload = $3, hash = $4 WHERE visit_id = $1 AND seq = $2",
        row["visit_id"],
        row["seq"],
        payload,
        digest,
    )


async def test_intact_visit_agrees_with_its_history_including_timer_appends(env, pool):
    async with engine(env.client, pool) as client:
        visit_id = await reported_late(client, env)
        check = await check_history(env.client, client.store, visit_id)
        rows = await client.store.raw_rows(visit_id)
    assert check.ok and check.differences == [] and check.notes == []
    assert [r["type"] for r in rows] == [
        "PlanSubmitted",
        "PlanApproved",
        "VisitCheckedIn",
        "ReminderSent",
        "Escalated",
        "ReportSubmitted",
    ]
    assert (check.log_rows, check.appends, check.appends_completed) == (6, 6, 6)
    # opened, approve_plan, check_in, submit_report: the timers' events came without updates.
    assert (check.updates_accepted, check.updates_completed) == (4, 4)
    assert check.anchor is not None
    assert (check.anchor.last_seq, check.anchor.head_hash) == (6, rows[-1]["hash"])
    assert check.workflow_status == "running" and check.history_events > 20
    assert '"ok":true' in check.model_dump_json()


Tamper = Callable[[asyncpg.Pool, Rows], Awaitable[None]]

TAMPERING = [
    # The newest row deleted, or a well-chained row added: the hash chain alone cannot tell.
    pytest.param(
        lambda p, r: delete_row(p, r[-1]), DifferenceKind.missing, 6, "deleted", id="deleted_newest"
    ),
    pytest.param(lambda p, r: delete_row(p, r[1]), DifferenceKind.missing, 2, "deleted", id="deleted_middle"),
    pytest.param(lambda p, r: forge_next(p, r[-1]), DifferenceKind.inserted, 7, "inserted", id="forged_next"),
    pytest.param(
        lambda p, r: rewrite_payload(p, r[1], rehash=False),
        DifferenceKind.rewritten,
        2,
        "content",
        id="payload_changed",
    ),
    pytest.param(
        lambda p, r: rewrite_payload(p, r[1], rehash=True),
        DifferenceKind.rewritten,
        2,
        "hash",
        id="payload_changed_and_rehashed",
    ),
]


@pytest.mark.parametrize(("tamper", "kind", "seq", "words"), TAMPERING)
async def test_tampered_log_differs_from_history_at_the_tampered_seq(
    tamper: Tamper, kind: DifferenceKind, seq: int, words: str, env, pool
):
    async with engine(env.client, pool) as client:
        visit_id = await reported_late(client, env)
        await tamper(pool, await client.store.raw_rows(visit_id))
        check = await check_history(env.client, client.store, visit_id)
    assert not check.ok
    assert [(d.kind, d.seq) for d in check.differences] == [(kind, seq)]
    assert words in check.differences[0].message
    assert check.anchor is not None and check.anchor.last_seq == 6


async def restarted_after_closing(temporal: WorkflowEnvironment, pool: asyncpg.Pool) -> None:
    """A visit cancelled through the engine, its id then started again directly, past the
    client's id policies, as the `temporal` CLI or an SDK can: that run fails having written
    nothing. The check must compare the log with the run that wrote it."""
    async with engine(temporal.client, pool) as client:
        visit_id = f.new_id("hc-rerun")
        start = (await temporal.get_current_time()).replace(microsecond=0) + timedelta(days=6)
        opening = f.submit_plan(visit_id, start)
        await client.start_visit(opening)
        await client.send(visit_id, f.approve())
        await client.send(
            visit_id, CancelVisit(command_id=f.new_id("c"), actor=f.REP, reason="Customer moved")
        )
        await client.handle(visit_id).result()
        first_run = (await client.handle(visit_id).describe()).run_id
        later = await temporal.client.start_workflow(
            "VisitWorkflow",
            opening.model_dump(mode="json"),
            id=f"visit-{visit_id}",
            task_queue=client.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        with pytest.raises(WorkflowFailureError):
            await later.result()
        assert later.result_run_id != first_run
        check = await check_history(temporal.client, client.store, visit_id)
    assert check.ok and check.differences == []
    assert (check.run_id, check.workflow_status, check.log_rows) == (first_run, "completed", 4)
    assert check.anchor is not None and check.anchor.last_seq == 4
    (note,) = [n for n in check.notes if later.result_run_id in n]
    assert "(failed" in note and "started later" in note and "wrote nothing to the log" in note


async def test_a_later_run_that_wrote_nothing_is_a_note_and_the_run_that_wrote_the_log_is_compared(env, pool):
    # The time-skipping server lists runs only through the older open and closed lists.
    await restarted_after_closing(env, pool)


async def test_the_run_that_wrote_the_log_is_found_through_a_visibility_query_too(dev_env, pool):
    await restarted_after_closing(dev_env, pool)


@pytest_asyncio.fixture(scope="module")
async def recorded(env, pool) -> tuple[VisitHistory, Rows]:
    """One real visit's decoded history and rows, for the rules that need a history edited."""
    async with engine(env.client, pool) as client:
        visit_id = await reported_late(client, env)
        history = await read_history(env.client, visit_id)
        rows = await client.store.raw_rows(visit_id)
    return history, rows


def _with_last_append(history: VisitHistory, **changes: Any) -> VisitHistory:
    appends = [*history.appends[:-1], history.appends[-1].model_copy(update=changes)]
    return history.model_copy(update={"appends": appends})


def test_failed_append_whose_events_are_logged_is_a_difference(recorded):
    history, rows = recorded
    failed = _with_last_append(history, status=AppendStatus.failed, failure="SequenceConflict: seq 6 taken")
    found = compare(failed, rows)
    assert [(d.kind, d.seq) for d in found] == [(DifferenceKind.unconfirmed_append_logged, 6)]
    assert "SequenceConflict" in found[0].message


def test_append_in_flight_of_a_running_workflow_is_a_note_not_a_difference(recorded):
    history, rows = recorded
    pending = _with_last_append(history, status=AppendStatus.pending, result=None)
    assert compare(pending, rows) == []
    assert any("in progress" in n and "is in the log" in n for n in notes(pending, rows))
    ended = pending.model_copy(update={"workflow_status": "terminated"})
    assert [d.kind for d in compare(ended, rows)] == [DifferenceKind.unconfirmed_append_logged]


def test_failed_append_that_logged_nothing_is_a_note(recorded):
    history, rows = recorded
    last = history.appends[-1]
    refused = last.model_copy(
        update={
            "events": [e.model_copy(update={"seq": 7, "event_id": str(uuid.uuid4())}) for e in last.events],
            "status": AppendStatus.failed,
            "failure": "SequenceConflict: seq 7 taken",
        }
    )
    history = history.model_copy(update={"appends": [*history.appends, refused]})
    assert compare(history, rows) == []
    assert any("did not complete (SequenceConflict" in n for n in notes(history, rows))


def test_answered_update_whose_event_the_log_lacks_is_a_difference(recorded):
    history, rows = recorded
    # The approval's append is still in flight in this history, so only the answer the
    # approve_plan update gave vouches for event 2.
    approval = history.appends[1]
    appends = [
        a if a is not approval else a.model_copy(update={"status": AppendStatus.pending})
        for a in history.appends
    ]
    edited = history.model_copy(update={"appends": appends})
    found = compare(edited, [r for r in rows if r["seq"] != 2])
    assert [(d.kind, d.seq) for d in found] == [(DifferenceKind.update_unrecorded, 2)]
    assert "approve_plan" in found[0].message


def test_unfinished_update_is_a_note(recorded):
    history, rows = recorded
    last = history.updates[-1].model_copy(update={"status": UpdateStatus.unfinished, "events": []})
    edited = history.model_copy(update={"updates": [*history.updates[:-1], last]})
    check = assess(edited, rows)
    assert check.ok and check.updates_completed == 3
    assert any("submit_report" in n and "still running" in n for n in check.notes)


def test_history_beside_an_empty_log_finds_every_event_missing_and_asks_which_database(recorded):
    history, _ = recorded
    check = assess(history, [])
    assert [(d.kind, d.seq) for d in check.differences] == [(DifferenceKind.missing, s) for s in range(1, 7)]
    assert any("is this the database" in n for n in check.notes)


async def test_unknown_visit_is_not_found(env, pool):
    with pytest.raises(VisitNotFound):
        await check_history(env.client, EventStore(pool), f.new_id("nowhere"))


async def test_logged_visit_without_temporal_history_says_the_history_is_gone(env, pool):
    store = EventStore(pool)
    driver = VisitDriver()
    start = datetime.now().astimezone() + timedelta(days=6)
    await store.append(driver.send(f.submit_plan(f.new_id("retained"), start), start - timedelta(days=5)))
    with pytest.raises(HistoryUnavailable) as gone:
        await check_history(env.client, store, driver.visit_id)
    assert "retention" in gone.value.message and "1 event in the log" in gone.value.message


async def _reset_after_first_append(temporal: Client, workflow: str) -> None:
    history = await temporal.get_workflow_handle(workflow).fetch_history()
    events = list(history.events)
    scheduled = next(
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "append_events"
    )
    first_append = next(
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id == scheduled
    )
    point = next(
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and e.event_id > first_append
    )
    await temporal.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=temporal.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow),
            reason="test: back to the plan",
            workflow_task_finish_event_id=point,
            request_id=str(uuid.uuid4()),
        )
    )


async def test_event_of_a_run_reset_away_is_named_as_such(dev_env, pool):
    async with engine(dev_env.client, pool) as client:
        visit_id = f.new_id("hc-reset")
        start = datetime.now().astimezone() + timedelta(days=6)
        await client.start_visit(f.submit_plan(visit_id, start))
        await client.send(visit_id, f.approve())
        await _reset_after_first_append(dev_env.client, f"visit-{visit_id}")
        # The reset run exists once the call returns: its history ends before the approval.
        check = await check_history(dev_env.client, client.store, visit_id)
    assert [(d.kind, d.seq) for d in check.differences] == [(DifferenceKind.earlier_run, 2)]
    assert any("was reset from run" in n for n in check.notes)
