"""Workflow tier: the visit workflow on Temporal's time-skipping server with a real PostgreSQL.

Time is skipped, never waited out: `env.sleep` moves the test server's clock and the
workflow's timers fire at their exact instants.
"""

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.actors import Role
from domain.commands import ApprovePlan, CancelVisit, Reschedule, SubmitPlan
from domain.events import Escalated, ReminderSent, ReportSubmitted
from domain.policy import DeadlineMode, Policy
from domain.state import VisitStatus
from settings import Settings
from starter.client import CommandRefused, VisitClient
from tests import factory as f
from worker import build_worker
from workflows.contract import CommandResult

SHANGHAI = ZoneInfo("Asia/Shanghai")


class TrackingClient(VisitClient):
    """A client that remembers the visits it opened, so a test can end them all."""

    opened: list[str]

    async def start_visit(self, command: SubmitPlan) -> CommandResult:
        self.opened.append(command.visit_id)
        return await super().start_visit(command)


@asynccontextmanager
async def engine(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, policy: Policy | None = None
) -> AsyncIterator[VisitClient]:
    """A worker on this test's task queue and a client that talks to it.

    Visits still running at the end are terminated: the time-skipping server does not skip
    time past activities that no worker will ever pick up again.
    """
    settings = Settings(task_queue=task_queue, policy=policy or Policy())
    client = TrackingClient(env.client, pool, task_queue=task_queue)
    client.opened = []
    async with build_worker(env.client, pool, settings):
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


async def types_of(client: VisitClient, visit_id: str) -> list[str]:
    return [e.type for e in await client.history(visit_id)]


async def opened_approved(
    client: VisitClient, env: WorkflowEnvironment, days: int = 7
) -> tuple[str, datetime]:
    visit_id = f.new_id()
    start = (await env.get_current_time()).replace(microsecond=0) + timedelta(days=days)
    await client.start_visit(f.submit_plan(visit_id, start))
    await client.send(visit_id, f.approve())
    return visit_id, start


def near(a: datetime, b: datetime) -> bool:
    return abs(a - b) < timedelta(seconds=2)


async def test_full_lifecycle_closes_after_report_accepted_and_items_completed(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id, start = await opened_approved(client, env)
        await skip_to(env, start + timedelta(minutes=40))
        result = await client.send(visit_id, f.check_in(start))
        assert result.status is VisitStatus.awaiting_report
        await client.send(visit_id, f.report(("samples", start + timedelta(days=5))))
        await client.send(visit_id, f.accept())
        state = await client.state(visit_id)
        assert state.status is VisitStatus.following_up
        done = await client.send(visit_id, f.complete("samples"))
        assert done.status is VisitStatus.closed
        final = await client.handle(visit_id).result()
        assert final.outcome == "completed"
        logged = await client.history(visit_id)
        assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
        assert [e.type for e in logged] == [
            "PlanSubmitted",
            "PlanApproved",
            "VisitCheckedIn",
            "ReportSubmitted",
            "ReportAccepted",
            "PromisedItemCompleted",
            "VisitClosed",
        ]
        summary = await client.summary(visit_id)
        assert summary is not None and summary.status is VisitStatus.closed
        assert summary.last_seq == len(logged)


async def test_missing_report_is_reminded_then_escalated_up_the_ladder_on_time(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id, start = await opened_approved(client, env)
        await skip_to(env, start + timedelta(hours=1))
        await client.send(visit_id, f.check_in(start, minutes=30))
        ended = start + timedelta(minutes=30)
        due = ended + timedelta(hours=48)
        await skip_to(env, due + timedelta(hours=25))
        events = await client.history(visit_id)
        reminders = [e for e in events if isinstance(e.event, ReminderSent)]
        escalations = [e for e in events if isinstance(e.event, Escalated)]
        assert len(reminders) == 1 and near(reminders[0].occurred_at, due - timedelta(hours=24))
        assert [(e.event.level, e.event.recipient.role, e.event.recipient.id) for e in escalations] == [
            (1, Role.manager, f.MANAGER.id),
            (2, Role.director, f.DIRECTOR.id),
        ]
        assert near(escalations[0].occurred_at, due)
        assert near(escalations[1].occurred_at, due + timedelta(hours=24))
        # The visit stays open and visible: nothing closes silently.
        summary = await client.summary(visit_id)
        assert summary is not None and summary.status is VisitStatus.awaiting_report
        assert summary.escalated == ["report"] and summary.escalation_level == 2
        assert visit_id in {s.visit_id for s in await client.overdue(await env.get_current_time())}
        rows = await pool.fetch(
            "SELECT kind, recipient_id, level FROM notifications WHERE visit_id = $1 ORDER BY seq", visit_id
        )
        assert [(r["kind"], r["recipient_id"], r["level"]) for r in rows] == [
            ("reminder", f.REP.id, None),
            ("escalation", f.MANAGER.id, 1),
            ("escalation", f.DIRECTOR.id, 2),
        ]
        # A late report is accepted and marked late from the recorded times.
        await client.send(visit_id, f.report())
        submitted = [e for e in await client.history(visit_id) if isinstance(e.event, ReportSubmitted)]
        assert submitted[0].event.late is True


async def test_report_due_in_working_days_skips_weekend_and_public_holiday_in_shanghai(env, pool, task_queue):
    now = (await env.get_current_time()).astimezone(SHANGHAI)
    friday = (now + timedelta(days=7)).date()
    while friday.weekday() != 4:
        friday += timedelta(days=1)
    monday_holiday = friday + timedelta(days=3)
    policy = Policy(report_deadline_mode=DeadlineMode.working_days, holidays=[monday_holiday])
    async with engine(env, pool, task_queue, policy) as client:
        visit_id = f.new_id()
        start = datetime(friday.year, friday.month, friday.day, 16, 0, tzinfo=SHANGHAI)
        await client.start_visit(f.submit_plan(visit_id, start))
        await client.send(visit_id, f.approve())
        await skip_to(env, start + timedelta(hours=1))
        await client.send(visit_id, f.check_in(start, minutes=30))
        # Friday 16:30 + 2 working days: Sat, Sun (weekend) and Mon (holiday) skipped → Wed 16:30.
        expected_due = datetime(friday.year, friday.month, friday.day, 16, 30, tzinfo=SHANGHAI) + timedelta(
            days=5
        )
        state = await client.state(visit_id)
        assert state.report_due_at == expected_due
        await skip_to(env, expected_due + timedelta(minutes=1))
        escalations = [e for e in await client.history(visit_id) if isinstance(e.event, Escalated)]
        assert len(escalations) == 1 and near(escalations[0].occurred_at, expected_due)


async def test_unapproved_plan_is_escalated_at_visit_time_and_cannot_then_be_approved(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id = f.new_id()
        start = (await env.get_current_time()).replace(microsecond=0) + timedelta(days=4)
        await client.start_visit(f.submit_plan(visit_id, start))
        await skip_to(env, start + timedelta(minutes=1))
        escalations = [e for e in await client.history(visit_id) if isinstance(e.event, Escalated)]
        assert [e.event.concern for e in escalations] == ["plan_approval"]
        assert near(escalations[0].occurred_at, start)
        with pytest.raises(CommandRefused) as refused:
            await client.send(visit_id, f.approve())
        assert refused.value.rule == "plan.approval_after_visit_time"
        later = start + timedelta(days=3)
        moved = await client.send(
            visit_id,
            Reschedule(command_id=f.new_id("c"), actor=f.REP, scheduled_start=later, reason="Customer away"),
        )
        assert moved.status is VisitStatus.awaiting_approval
        assert (await client.send(visit_id, f.approve())).status is VisitStatus.approved


async def test_missing_check_in_is_escalated_after_scheduled_end_plus_grace(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id, start = await opened_approved(client, env)
        expected = start + timedelta(minutes=30) + timedelta(hours=2)
        await skip_to(env, expected + timedelta(minutes=1))
        escalations = [e for e in await client.history(visit_id) if isinstance(e.event, Escalated)]
        assert [e.event.concern for e in escalations] == ["check_in"]
        assert near(escalations[0].occurred_at, expected)


async def test_overdue_promised_item_is_escalated_to_the_manager(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id, start = await opened_approved(client, env)
        await skip_to(env, start + timedelta(hours=1))
        await client.send(visit_id, f.check_in(start))
        item_due = start + timedelta(days=3)
        await client.send(visit_id, f.report(("price-list", item_due)))
        await client.send(visit_id, f.accept())
        await skip_to(env, item_due + timedelta(minutes=1))
        escalations = [e for e in await client.history(visit_id) if isinstance(e.event, Escalated)]
        assert [(e.event.concern, e.event.recipient.id) for e in escalations] == [
            ("item:price-list", f.MANAGER.id)
        ]
        assert near(escalations[0].occurred_at, item_due)
        done = await client.send(visit_id, f.complete("price-list"))
        assert done.status is VisitStatus.closed


async def test_refused_commands_name_their_rule_and_record_nothing(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id = f.new_id()
        start = (await env.get_current_time()) + timedelta(days=5)
        await client.start_visit(f.submit_plan(visit_id, start))
        refusals = {
            "role.approve_plan": ApprovePlan(command_id=f.new_id("c"), actor=f.REP),
            "role.auditor": ApprovePlan(command_id=f.new_id("c"), actor=f.AUDITOR),
            "state.check_in": f.check_in(start - timedelta(days=6)),
            "state.accept_report": f.accept(),
        }
        for rule, command in refusals.items():
            with pytest.raises(CommandRefused) as refused:
                await client.send(visit_id, command)
            assert refused.value.rule == rule
            assert refused.value.message.endswith(".")
        assert await types_of(client, visit_id) == ["PlanSubmitted"]
        history = await client.handle(visit_id).fetch_history()
        accepted = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert len(accepted) == 1  # only the `opened` call: validators kept refusals out of history


async def test_repeated_command_id_returns_first_result_and_records_once(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id = f.new_id()
        start = (await env.get_current_time()) + timedelta(days=5)
        opening = f.submit_plan(visit_id, start)
        first_open = await client.start_visit(opening)
        again_open = await client.start_visit(opening)
        assert again_open.duplicate and again_open.events == first_open.events
        approval = f.approve()
        first = await client.send(visit_id, approval)
        again = await asyncio.gather(*(client.send(visit_id, approval) for _ in range(3)))
        assert all(r.duplicate and r.events == first.events for r in again)
        assert await types_of(client, visit_id) == ["PlanSubmitted", "PlanApproved"]
        with pytest.raises(CommandRefused) as reused:
            await client.send(visit_id, approval.model_copy(update={"comment": "changed"}))
        assert reused.value.rule == "command.id_reused"
        with pytest.raises(CommandRefused) as exists:
            await client.start_visit(f.submit_plan(visit_id, start))
        assert exists.value.rule == "visit.exists"


async def test_refused_opening_records_nothing_and_the_visit_id_can_be_used_again(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id = f.new_id()
        past = (await env.get_current_time()) - timedelta(hours=1)
        with pytest.raises(CommandRefused) as refused:
            await client.start_visit(f.submit_plan(visit_id, past))
        assert refused.value.rule == "plan.in_past"
        assert await client.history(visit_id) == []
        fixed = await client.start_visit(f.submit_plan(visit_id, past + timedelta(days=5)))
        assert fixed.status is VisitStatus.awaiting_approval


async def test_concurrent_commands_are_appended_in_order_without_gaps(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id, start = await opened_approved(client, env)
        await skip_to(env, start + timedelta(hours=1))
        await client.send(visit_id, f.check_in(start))
        due = start + timedelta(days=4)
        items = [f"i{n}" for n in range(4)]
        await client.send(visit_id, f.report(*((i, due) for i in items)))
        await client.send(visit_id, f.accept())
        results = await asyncio.gather(*(client.send(visit_id, f.complete(i)) for i in items))
        assert sorted(r.events[0].seq for r in results) == [6, 7, 8, 9]
        logged = await client.history(visit_id)
        assert [e.seq for e in logged] == list(range(1, 11))
        assert logged[-1].type == "VisitClosed"
        for before, after in itertools.pairwise(logged):
            assert after.prev_hash == before.hash


async def test_commands_to_a_closed_visit_are_refused_but_repeats_still_answered(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id, _start = await opened_approved(client, env)
        cancel = {"command_id": f.new_id("c"), "actor": f.REP, "reason": "Customer closed for renovation"}
        cancelled = await client.send(visit_id, CancelVisit.model_validate(cancel))
        assert cancelled.status is VisitStatus.closed
        await client.handle(visit_id).result()
        repeat = await client.send(visit_id, CancelVisit.model_validate(cancel))
        assert repeat.duplicate and repeat.events == cancelled.events
        with pytest.raises(CommandRefused) as closed:
            await client.send(visit_id, f.approve())
        assert closed.value.rule == "state.closed"


async def test_malformed_command_is_refused_in_one_line_and_records_nothing(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id = f.new_id()
        await client.start_visit(f.submit_plan(visit_id, (await env.get_current_time()) + timedelta(days=5)))
        handle = client.handle(visit_id)
        for body in (
            {"command_id": "c-bad-1", "actor": {"id": "mgr-li"}},
            {"command_id": "c-bad-2", "actor": {"id": "mgr-li", "role": "manager"}, "comment": "ok\x00"},
        ):
            with pytest.raises(WorkflowUpdateFailedError) as failed:
                await handle.execute_update("approve_plan", body, result_type=CommandResult)
            cause = failed.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == "command.invalid"
            assert cause.non_retryable and "\n" not in cause.message
        assert await types_of(client, visit_id) == ["PlanSubmitted"]


async def test_opening_a_closed_visits_id_again_is_refused_and_a_repeat_answered(env, pool, task_queue):
    async with engine(env, pool, task_queue) as client:
        visit_id = f.new_id()
        start = (await env.get_current_time()) + timedelta(days=5)
        opening = f.submit_plan(visit_id, start)
        first = await client.start_visit(opening)
        cancel = CancelVisit(command_id=f.new_id("c"), actor=f.REP, reason="Customer closed")
        await client.send(visit_id, cancel)
        await client.handle(visit_id).result()
        repeat = await client.start_visit(opening)
        assert repeat.duplicate and repeat.events == first.events
        with pytest.raises(CommandRefused) as exists:
            await client.start_visit(f.submit_plan(visit_id, start))
        assert exists.value.rule == "visit.exists"
        assert "cancelled" in exists.value.message
