"""VisitWorkflow: one durable workflow per visit.

Commands arrive as updates. Each update's validator runs `domain.decide` without side
effects, so a refused command never enters history; the handler decides again under a
lock (state may have moved since validation), appends the events through an activity,
and returns only after they are committed. The main loop sleeps until the next reminder
or escalation that `domain.deadlines.next_alarm` names and sends it through the same
`decide`.
"""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import AppendRequest
    from activities.visit_activities import VisitActivities
    from domain.actors import SYSTEM
    from domain.chain import envelope
    from domain.commands import (
        AcceptReport,
        ApprovePlan,
        CancelVisit,
        CheckIn,
        Command,
        CompleteItem,
        Escalate,
        RejectPlan,
        Remind,
        Reschedule,
        ReturnPlan,
        ReturnReport,
        RevisePlan,
        SubmitPlan,
        SubmitReport,
        WaiveReport,
    )
    from domain.deadlines import Alarm, AlarmKind, next_alarm
    from domain.decide import decide
    from domain.errors import RuleViolation
    from domain.events import Event
    from domain.policy import Policy
    from domain.state import VisitState, fold
    from domain.summary import summarize
    from workflows.contract import OPENED, STATE, WORKFLOW_TYPE, CommandResult, RecordedRef
    from workflows.handling import fingerprint, parse_command, refusal

APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    # Only a log that disagrees with the workflow is final; outages are waited out.
    non_retryable_error_types=["SequenceConflict", "AppendRefused"],
)


@workflow.defn(name=WORKFLOW_TYPE)
class VisitWorkflow:
    """The lifecycle of one customer visit, from plan to closing."""

    @workflow.init
    def __init__(self, start: SubmitPlan) -> None:
        self._visit_id = start.visit_id
        self._state: VisitState | None = None
        self._policy: Policy | None = None
        self._lock = asyncio.Lock()
        self._version = 0  # bumped on every append; the main loop waits on it
        self._results: dict[str, tuple[str, CommandResult]] = {}
        self._start_refusal: RuleViolation | None = None
        self._opened: CommandResult | None = None
        self._opened_acknowledged = False

    @workflow.run
    async def run(self, start: SubmitPlan) -> VisitState:
        self._policy = await workflow.execute_activity_method(
            VisitActivities.load_policy,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
        async with self._lock:
            try:
                events = decide(None, start, workflow.now(), self._policy)
            except RuleViolation as violation:
                self._start_refusal = violation
                await workflow.wait_condition(workflow.all_handlers_finished)
                raise refusal(violation) from None
            self._opened = await self._record(start, events)
        await self._follow_deadlines()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._current()

    async def _follow_deadlines(self) -> None:
        """Sleep until the next reminder or escalation, send it, repeat until closed."""
        while True:
            state = self._current()
            alarm = next_alarm(state, workflow.now())
            if alarm is None:
                if state.closed:
                    return
                await self._wait_for_change(None)
                continue
            delay = alarm.at - workflow.now()
            if delay > timedelta(0) and await self._wait_for_change(delay):
                continue  # the visit moved on; the next alarm may differ
            async with self._lock:
                # A command may have landed while this task waited for the lock.
                if next_alarm(self._current(), workflow.now()) != alarm:
                    continue
                if not await self._fire(alarm):
                    await self._wait_for_change(None)

    async def _wait_for_change(self, limit: timedelta | None) -> bool:
        """Wait for the next append (True) or for `limit` to pass (False)."""
        seen = self._version
        try:
            await workflow.wait_condition(lambda: self._version != seen, timeout=limit)
        except TimeoutError:
            return False
        return True

    async def _fire(self, alarm: Alarm) -> bool:
        command: Remind | Escalate
        if alarm.kind is AlarmKind.remind:
            command = Remind(command_id=alarm.command_id, actor=SYSTEM, concern=alarm.concern)
        else:
            command = Escalate(
                command_id=alarm.command_id, actor=SYSTEM, concern=alarm.concern, level=alarm.level
            )
        try:
            events = decide(self._current(), command, workflow.now(), self._current().policy)
        except RuleViolation as violation:
            # Should not happen: next_alarm and decide share the deadline rules. Waiting for
            # the next change avoids a busy loop while keeping the visit open and visible.
            workflow.logger.warning("timer refused: %s (%s)", violation.message, violation.rule)
            return False
        await self._record(command, events)
        workflow.logger.info("%s %s level %s", alarm.kind, alarm.concern, alarm.level)
        return True

    def _current(self) -> VisitState:
        if self._state is None:
            raise ApplicationError(
                "The visit's plan has not been recorded yet; try again in a moment.",
                type="visit.not_open",
            )
        return self._state

    async def _record(self, command: Command | SubmitPlan, events: list[Event]) -> CommandResult:
        """Number, chain and commit `events`, then move the state forward."""
        now = workflow.now()
        state = self._state
        recorded = envelope(
            events,
            visit_id=self._visit_id,
            last_seq=state.last_seq if state else 0,
            head_hash=state.head_hash if state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=now,
            # Minted here, not in the activity: a retried append carries the same ids.
            event_ids=[str(workflow.uuid4()) for _ in events],
        )
        after = fold(recorded, state)
        if after is None:
            raise ApplicationError("nothing to record", type="AppendRefused", non_retryable=True)
        stored = await workflow.execute_activity_method(
            VisitActivities.append_events,
            AppendRequest(visit_id=self._visit_id, events=recorded, summary=summarize(after)),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
        # Chain the next append from the head the log reports, not the one computed here:
        # replayed after an upgrade that changed an event's stored form (a new schema
        # version), this code computes other hashes than those the log holds.
        self._state = after.model_copy(update={"head_hash": stored.head_hash})
        self._version += 1
        result = CommandResult(
            visit_id=self._visit_id,
            command_id=command.command_id,
            kind=command.kind,
            status=after.status,
            events=[RecordedRef(seq=r.seq, type=r.type, event_id=r.event_id) for r in recorded],
        )
        self._results[command.command_id] = (fingerprint(command), result)
        return result

    # --- commands -----------------------------------------------------------------------

    def _validate(self, command: Command) -> None:
        """Refuse a command before it enters history: same id reused, or a rule says no."""
        known = self._results.get(command.command_id)
        if known is not None:
            if known[0] != fingerprint(command):
                raise ApplicationError(
                    f"Command id {command.command_id} was already used for a different "
                    "command on this visit; use a new id for a new command.",
                    type="command.id_reused",
                    non_retryable=True,
                )
            return
        try:
            decide(self._current(), command, workflow.now(), self._current().policy)
        except RuleViolation as violation:
            raise refusal(violation) from None

    async def _execute(self, command: Command) -> CommandResult:
        async with self._lock:
            # Checked under the lock: the same command sent twice at once runs once.
            known = self._results.get(command.command_id)
            if known is not None:
                return known[1].model_copy(update={"duplicate": True})
            state = self._current()
            try:
                events = decide(state, command, workflow.now(), state.policy)
            except RuleViolation as violation:
                raise refusal(violation) from None
            return await self._record(command, events)

    @workflow.update(name=OPENED)
    async def opened(self, command_id: str | None = None) -> CommandResult:
        """Wait until the plan is recorded and return the opening command's result.

        With `command_id`, a different opening command is refused: the visit exists.
        """
        await workflow.wait_condition(lambda: self._opened is not None or self._start_refusal is not None)
        if self._start_refusal is not None or self._opened is None:
            raise refusal(self._start_refusal or RuleViolation("visit.not_open", "Not opened."))
        if command_id is not None and command_id != self._opened.command_id:
            raise refusal(
                RuleViolation(
                    "visit.exists",
                    f"Visit {self._visit_id} already exists, opened by command "
                    f"{self._opened.command_id}; send changes as commands to that visit.",
                )
            )
        first = not self._opened_acknowledged
        self._opened_acknowledged = True
        return self._opened if first else self._opened.model_copy(update={"duplicate": True})

    @workflow.query(name=STATE)
    def state(self) -> VisitState:
        """The visit as it stands now (folded from the events committed so far)."""
        return self._current()

    @workflow.update(name="revise_plan")
    async def revise_plan(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(RevisePlan, command))

    @revise_plan.validator
    def _v_revise_plan(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(RevisePlan, command))

    @workflow.update(name="approve_plan")
    async def approve_plan(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(ApprovePlan, command))

    @approve_plan.validator
    def _v_approve_plan(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(ApprovePlan, command))

    @workflow.update(name="reject_plan")
    async def reject_plan(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(RejectPlan, command))

    @reject_plan.validator
    def _v_reject_plan(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(RejectPlan, command))

    @workflow.update(name="return_plan")
    async def return_plan(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(ReturnPlan, command))

    @return_plan.validator
    def _v_return_plan(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(ReturnPlan, command))

    @workflow.update(name="reschedule")
    async def reschedule(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(Reschedule, command))

    @reschedule.validator
    def _v_reschedule(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(Reschedule, command))

    @workflow.update(name="cancel")
    async def cancel(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(CancelVisit, command))

    @cancel.validator
    def _v_cancel(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(CancelVisit, command))

    @workflow.update(name="check_in")
    async def check_in(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(CheckIn, command))

    @check_in.validator
    def _v_check_in(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(CheckIn, command))

    @workflow.update(name="submit_report")
    async def submit_report(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(SubmitReport, command))

    @submit_report.validator
    def _v_submit_report(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(SubmitReport, command))

    @workflow.update(name="accept_report")
    async def accept_report(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(AcceptReport, command))

    @accept_report.validator
    def _v_accept_report(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(AcceptReport, command))

    @workflow.update(name="return_report")
    async def return_report(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(ReturnReport, command))

    @return_report.validator
    def _v_return_report(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(ReturnReport, command))

    @workflow.update(name="complete_item")
    async def complete_item(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(CompleteItem, command))

    @complete_item.validator
    def _v_complete_item(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(CompleteItem, command))

    @workflow.update(name="waive_report")
    async def waive_report(self, command: dict[str, Any]) -> CommandResult:
        return await self._execute(parse_command(WaiveReport, command))

    @waive_report.validator
    def _v_waive_report(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(WaiveReport, command))
