"""MonthPlanWorkflow: one durable workflow per rep and month.

Built like `workflows.visit.VisitWorkflow`: commands arrive as updates whose validators run
the plan's rules without side effects; each handler decides again under a lock, appends the
events through an activity (ids and time minted here) and returns once they are committed.
A submission is reviewed first: an activity reads the rep's customers from the registry,
last month's plan and the customers' last visits, and runs the plan checks on them. The
main loop sleeps until the reminder or escalation `domain.month_plan.next_alarm` names.

Once the plan is approved, each approved visit is opened as a `VisitWorkflow` child
(abandoned when the plan closes), approved by the plan's approver, then recorded as
`PlannedVisitStarted`. Temporal's history holds each child's start, so a worker that dies
mid-way and a retried approval start nothing twice. The workflow ends when every approved
visit is started, or reported as not started (its id already in use, ...).
"""

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.plan_activities import PlanActivities
    from activities.plan_models import PlanAppendRequest, ReviewRequest
    from domain.actors import SYSTEM
    from domain.deadlines import Alarm
    from domain.decide import decide as decide_visit
    from domain.errors import RuleViolation
    from domain.month_plan import (
        ApproveMonthPlan,
        MonthPlanCommand,
        MonthPlanState,
        MonthPlanStatus,
        OpenMonthPlan,
        PlanEvent,
        RecordVisitNotStarted,
        RecordVisitStarted,
        ReturnMonthPlan,
        SubmitMonthPlan,
        alarm_command,
        decide,
        fold,
        next_alarm,
        plan_envelope,
        plan_id_of,
        summarize_plan,
        validate,
        visit_opening,
    )
    from domain.plan_checks import Finding
    from workflows.contract import WORKFLOW_TYPE as VISIT_WORKFLOW_TYPE
    from workflows.contract import RecordedRef, workflow_id
    from workflows.handling import fingerprint, parse_command, refusal
    from workflows.plan_contract import PLAN_OPENED, PLAN_STATE, PLAN_WORKFLOW_TYPE, PlanCommandResult

ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    # Only a log that disagrees with the workflow is final; outages are waited out.
    non_retryable_error_types=["SequenceConflict", "AppendRefused", "ReviewFailed"],
)


@workflow.defn(name=PLAN_WORKFLOW_TYPE)
class MonthPlanWorkflow:
    """A rep's visit plan for one month, from opening to the start of every approved visit."""

    @workflow.init
    def __init__(self, start: OpenMonthPlan) -> None:
        self._plan_id = plan_id_of(start.rep_id, start.month)
        self._state: MonthPlanState | None = None
        self._lock = asyncio.Lock()
        self._version = 0  # bumped on every append; the main loop waits on it
        self._results: dict[str, tuple[str, PlanCommandResult]] = {}
        self._start_refusal: RuleViolation | None = None
        self._opened: PlanCommandResult | None = None
        self._opened_acknowledged = False

    @workflow.run
    async def run(self, start: OpenMonthPlan) -> MonthPlanState:
        settings = await workflow.execute_activity_method(
            PlanActivities.load_plan_settings,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
        )
        async with self._lock:
            try:
                events = decide(None, start, workflow.now(), settings=settings)
            except RuleViolation as violation:
                self._start_refusal = violation
                await workflow.wait_condition(workflow.all_handlers_finished)
                raise refusal(violation) from None
            self._opened = await self._record(start, events)
        await self._follow_deadline()
        await self._start_approved_visits()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._current()

    # --- the deadline --------------------------------------------------------------------------

    async def _follow_deadline(self) -> None:
        """Until the plan is approved: sleep until the next reminder or escalation, send it."""
        while self._current().status is not MonthPlanStatus.approved:
            alarm = next_alarm(self._current(), workflow.now())
            if alarm is None:
                await self._wait_for_change(None)
                continue
            delay = alarm.at - workflow.now()
            if delay > timedelta(0) and await self._wait_for_change(delay):
                continue  # the plan moved on; the next alarm may differ
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
        command = alarm_command(alarm)
        try:
            events = decide(self._current(), command, workflow.now())
        except RuleViolation as violation:
            # next_alarm and decide share the deadline rules; waiting for the next change
            # avoids a busy loop while the plan stays open and visible.
            workflow.logger.warning("timer refused: %s (%s)", violation.message, violation.rule)
            return False
        await self._record(command, events)
        workflow.logger.info("month plan %s level %s", alarm.kind, alarm.level)
        return True

    # --- the approved visits -------------------------------------------------------------------

    async def _start_approved_visits(self) -> None:
        """Open every approved visit not yet started, in the plan's order, once each."""
        for visit_id in self._current().pending_starts():
            async with self._lock:
                await self._start_visit(visit_id)

    async def _start_visit(self, visit_id: str) -> None:
        state = self._current()
        opening = visit_opening(state, visit_id)
        child_id = workflow_id(visit_id)
        command: RecordVisitStarted | RecordVisitNotStarted
        try:
            # The visit's own rules, checked here so a refusal is reported on the plan rather
            # than left to fail the child after it started.
            decide_visit(None, opening, workflow.now(), state.policy)
            await workflow.start_child_workflow(
                VISIT_WORKFLOW_TYPE,
                opening,
                id=child_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                # As `VisitClient.start_visit`: a visit id is used once.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        except RuleViolation as violation:
            command = self._not_started(visit_id, violation.rule, violation.message)
        except WorkflowAlreadyStartedError:
            command = self._not_started(
                visit_id,
                "visit.exists",
                f"Visit id {visit_id} is already in use (workflow {child_id}); the visit was not "
                "opened from this plan. Plan it anew under another id.",
            )
        else:
            command = RecordVisitStarted(
                command_id=f"start:{visit_id}", actor=SYSTEM, visit_id=visit_id, workflow_id=child_id
            )
        events = decide(self._current(), command, workflow.now())
        await self._record(command, events)
        if isinstance(command, RecordVisitNotStarted):
            workflow.logger.warning("visit %s not started: %s", visit_id, command.reason)

    @staticmethod
    def _not_started(visit_id: str, rule: str, reason: str) -> RecordVisitNotStarted:
        return RecordVisitNotStarted(
            command_id=f"start:{visit_id}", actor=SYSTEM, visit_id=visit_id, rule=rule, reason=reason
        )

    # --- the log -------------------------------------------------------------------------------

    def _current(self) -> MonthPlanState:
        if self._state is None:
            raise ApplicationError(
                "The monthly plan has not been recorded yet; try again in a moment.",
                type="plan.not_open",
            )
        return self._state

    async def _record(
        self,
        command: MonthPlanCommand,
        events: list[PlanEvent],
        *,
        occurred_at: datetime | None = None,
        findings: Sequence[Finding] = (),
    ) -> PlanCommandResult:
        """Number, chain and commit `events`, then move the state forward."""
        state = self._state
        recorded = plan_envelope(
            events,
            plan_id=self._plan_id,
            last_seq=state.last_seq if state else 0,
            head_hash=state.head_hash if state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=occurred_at or workflow.now(),
            # Minted here, not in the activity: a retried append carries the same ids.
            event_ids=[str(workflow.uuid4()) for _ in events],
        )
        after = fold(recorded, state)
        if after is None:
            raise ApplicationError("nothing to record", type="AppendRefused", non_retryable=True)
        stored = await workflow.execute_activity_method(
            PlanActivities.append_plan_events,
            PlanAppendRequest(plan_id=self._plan_id, events=recorded, summary=summarize_plan(after)),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTIVITY_RETRY,
        )
        # Chain the next append from the head the log reports (see VisitWorkflow._record).
        self._state = after.model_copy(update={"head_hash": stored.head_hash})
        self._version += 1
        result = PlanCommandResult(
            plan_id=self._plan_id,
            command_id=command.command_id,
            kind=command.kind,
            status=after.status,
            events=[RecordedRef(seq=r.seq, type=r.type, event_id=r.event_id) for r in recorded],
            findings=list(findings),
        )
        self._results[command.command_id] = (fingerprint(command), result)
        return result

    # --- commands ------------------------------------------------------------------------------

    def _known(self, command: MonthPlanCommand) -> PlanCommandResult | None:
        """The first result of a command sent again; a different command under its id is refused."""
        known = self._results.get(command.command_id)
        if known is None:
            return None
        if known[0] != fingerprint(command):
            raise ApplicationError(
                f"Command id {command.command_id} was already used for a different command on this "
                "plan; use a new id for a new command.",
                type="command.id_reused",
                non_retryable=True,
            )
        return known[1].model_copy(update={"duplicate": True})

    def _validate(self, command: MonthPlanCommand) -> None:
        """Refuse a command before it enters history: same id reused, or a rule says no."""
        if self._known(command) is not None:
            return
        try:
            validate(self._current(), command, workflow.now())
        except RuleViolation as violation:
            raise refusal(violation) from None

    async def _execute(self, command: ApproveMonthPlan | ReturnMonthPlan) -> PlanCommandResult:
        async with self._lock:
            # Checked under the lock: the same command sent twice at once runs once.
            known = self._known(command)
            if known is not None:
                return known
            try:
                events = decide(self._current(), command, workflow.now())
            except RuleViolation as violation:
                raise refusal(violation) from None
            return await self._record(command, events)

    async def _submit(self, command: SubmitMonthPlan) -> PlanCommandResult:
        async with self._lock:
            known = self._known(command)
            if known is not None:
                return known
            state = self._current()
            # Accepted now: lateness is judged at this instant, whatever the review takes.
            accepted_at = workflow.now()
            try:
                validate(state, command, accepted_at)
            except RuleViolation as violation:
                raise refusal(violation) from None
            review = await workflow.execute_activity_method(
                PlanActivities.review_month_plan,
                ReviewRequest(
                    plan_id=self._plan_id,
                    rep_id=state.rep_id,
                    month=state.month,
                    visits=command.visits,
                    submitted_at=accepted_at,
                    policy=state.policy,
                    rules=state.rules,
                ),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=ACTIVITY_RETRY,
            )
            try:
                events = decide(state, command, accepted_at, review=review)
            except RuleViolation as violation:
                raise refusal(violation) from None
            return await self._record(command, events, occurred_at=accepted_at, findings=review.findings)

    @workflow.update(name=PLAN_OPENED)
    async def opened(self, command_id: str | None = None) -> PlanCommandResult:
        """Wait until the plan is opened and return the opening command's result.

        With `command_id`, a different opening command is refused: the plan exists.
        """
        await workflow.wait_condition(lambda: self._opened is not None or self._start_refusal is not None)
        if self._start_refusal is not None or self._opened is None:
            raise refusal(self._start_refusal or RuleViolation("plan.not_open", "Not opened."))
        if command_id is not None and command_id != self._opened.command_id:
            state = self._current()
            raise refusal(
                RuleViolation(
                    "plan.exists",
                    f"The plan of {state.rep_id} for {state.month} is already open, opened by command "
                    f"{self._opened.command_id}; send changes as commands to that plan.",
                )
            )
        first = not self._opened_acknowledged
        self._opened_acknowledged = True
        return self._opened if first else self._opened.model_copy(update={"duplicate": True})

    @workflow.query(name=PLAN_STATE)
    def state(self) -> MonthPlanState:
        """The plan as it stands now (folded from the events committed so far)."""
        return self._current()

    @workflow.update(name="submit_month_plan")
    async def submit_month_plan(self, command: dict[str, Any]) -> PlanCommandResult:
        return await self._submit(parse_command(SubmitMonthPlan, command))

    @submit_month_plan.validator
    def _v_submit_month_plan(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(SubmitMonthPlan, command))

    @workflow.update(name="approve_month_plan")
    async def approve_month_plan(self, command: dict[str, Any]) -> PlanCommandResult:
        return await self._execute(parse_command(ApproveMonthPlan, command))

    @approve_month_plan.validator
    def _v_approve_month_plan(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(ApproveMonthPlan, command))

    @workflow.update(name="return_month_plan")
    async def return_month_plan(self, command: dict[str, Any]) -> PlanCommandResult:
        return await self._execute(parse_command(ReturnMonthPlan, command))

    @return_month_plan.validator
    def _v_return_month_plan(self, command: dict[str, Any]) -> None:
        self._validate(parse_command(ReturnMonthPlan, command))
