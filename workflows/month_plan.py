"""MonthPlanWorkflow: one durable workflow per rep and month.

Built on the same command log as `workflows.visit.VisitWorkflow` (`workflows.command_log`):
commands arrive as updates whose validators run the plan's rules without side effects; each
handler, under the lock, records every alarm whose time has come, decides, appends and
returns once the events are committed. A submission is reviewed first: an activity reads
the rep's customers from the registry, last month's plan and the customers' last visits,
and runs the plan checks on them. The main loop sleeps until the reminder or escalation
`domain.month_plan.next_alarm` names.

Once the plan is approved, each approved visit is opened as a `VisitWorkflow` child
(abandoned when the plan closes), approved by the plan's approver, then recorded as
`PlannedVisitStarted`. Temporal's history holds each child's start, so a worker that dies
mid-way and a retried approval start nothing twice. The workflow ends when every approved
visit is started, or reported as not started (its id already in use, ...).
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.plan_activities import PlanActivities
    from activities.plan_models import PlanAppendRequest, ReviewRequest
    from domain.actors import SYSTEM, CommandBase
    from domain.decide import decide as decide_visit
    from domain.errors import RuleViolation
    from domain.month_plan import (
        PLANS,
        MonthPlanCommand,
        MonthPlanState,
        MonthPlanStatus,
        OpenMonthPlan,
        PlanEvent,
        RecordedPlanEvent,
        RecordVisitNotStarted,
        RecordVisitStarted,
        SubmitMonthPlan,
        decide,
        plan_id_of,
        summarize_plan,
        validate,
        visit_opening,
    )
    from workflows.command_log import APPEND_RETRY, NULL, CommandLog, Decided, decode, invalid
    from workflows.contract import WORKFLOW_TYPE as VISIT_WORKFLOW_TYPE
    from workflows.contract import RecordedRef, workflow_id
    from workflows.plan_contract import (
        PLAN_COMMANDS,
        PLAN_OPENED,
        PLAN_STATE,
        PLAN_WORKFLOW_ID_PREFIX,
        PLAN_WORKFLOW_TYPE,
        PlanCommandResult,
    )


def _request(plan_id: str, events: list[RecordedPlanEvent], after: MonthPlanState) -> PlanAppendRequest:
    return PlanAppendRequest(plan_id=plan_id, events=events, summary=summarize_plan(after))


def _result(
    command: CommandBase, state: MonthPlanState, events: list[RecordedPlanEvent], **extra: object
) -> PlanCommandResult:
    return PlanCommandResult.model_validate(
        {
            "plan_id": state.plan_id,
            "command_id": command.command_id,
            "kind": getattr(command, "kind", ""),
            "status": state.status,
            "events": [RecordedRef(seq=e.seq, type=e.type, event_id=e.event_id) for e in events],
            **extra,
        }
    )


@workflow.defn(name=PLAN_WORKFLOW_TYPE)
class MonthPlanWorkflow:
    """A rep's visit plan for one month, from opening to the start of every approved visit."""

    def __init__(self) -> None:
        self._log: CommandLog[MonthPlanState, RecordedPlanEvent, PlanCommandResult] = CommandLog(
            PLANS,
            append=PlanActivities.append_plan_events,
            request=_request,
            result=_result,
            not_open="The monthly plan has not been recorded yet; try again in a moment.",
        )

    @workflow.run
    async def run(self, start: RawValue) -> MonthPlanState:
        await self._log.open_stream(
            start,
            OpenMonthPlan,
            identify=lambda command: plan_id_of(command.rep_id, command.month),
            workflow_id_of=lambda plan_id: f"{PLAN_WORKFLOW_ID_PREFIX}{plan_id}",
            decide=self._decide_opening,
        )
        await self._log.follow_deadlines(until=lambda state: state.status is MonthPlanStatus.approved)
        await self._start_approved_visits()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._log.current()

    @staticmethod
    async def _decide_opening(command: OpenMonthPlan) -> list[PlanEvent]:
        # A new plan records the policy and plan rules configured now; it keeps them.
        settings = await workflow.execute_activity_method(
            PlanActivities.load_plan_settings,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
        return decide(None, command, workflow.now(), settings=settings)

    # --- the approved visits -------------------------------------------------------------------

    async def _start_approved_visits(self) -> None:
        """Open every approved visit not yet started, in the plan's order, once each."""
        for visit_id in self._log.current().pending_starts():
            async with self._log.lock:
                await self._start_visit(visit_id)

    async def _start_visit(self, visit_id: str) -> None:
        state = self._log.current()
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
        events = decide(self._log.current(), command, workflow.now())
        await self._log.record(command, events)
        if isinstance(command, RecordVisitNotStarted):
            workflow.logger.warning("visit %s not started: %s", visit_id, command.reason)

    @staticmethod
    def _not_started(visit_id: str, rule: str, reason: str) -> RecordVisitNotStarted:
        return RecordVisitNotStarted(
            command_id=f"start:{visit_id}", actor=SYSTEM, visit_id=visit_id, rule=rule, reason=reason
        )

    # --- commands ------------------------------------------------------------------------------

    @workflow.update(name=PLAN_OPENED)
    async def opened(self, command_id: RawValue = NULL) -> PlanCommandResult:
        """Wait until the plan is opened and return the opening command's result.

        With `command_id`, a different opening command is refused: the plan exists.
        """
        return await self._log.opened(command_id)

    @workflow.query(name=PLAN_STATE)
    def state(self) -> MonthPlanState:
        """The plan as it stands now (folded from the events committed so far)."""
        return self._log.current()

    @workflow.update(dynamic=True)
    async def command(self, name: str, args: Sequence[RawValue]) -> PlanCommandResult:
        """Every command a person sends to a plan: `workflows.plan_contract.PLAN_UPDATES`."""
        command = self._decode(name, args)
        if isinstance(command, SubmitMonthPlan):
            return await self._log.execute(command, lambda state, now: self._submit(state, command, now))
        return await self._log.execute(command, lambda state, now: decide(state, command, now))

    @command.validator
    def _validate(self, name: str, args: Sequence[RawValue]) -> None:
        command = self._decode(name, args)
        self._log.validate(command, lambda state, now: validate(state, command, now))

    @staticmethod
    def _decode(name: str, args: Sequence[RawValue]) -> MonthPlanCommand:
        model = PLAN_COMMANDS.get(name)
        if model is None:
            known = ", ".join(PLAN_COMMANDS)
            raise invalid(f"A monthly plan takes no command {name!r}; its commands are {known}.")
        if len(args) != 1:
            raise invalid(f"The {name} update takes one argument, the command; it got {len(args)}.")
        return decode(model, args[0])  # type: ignore[return-value]  # PLAN_COMMANDS holds plan commands

    async def _submit(self, state: MonthPlanState, command: SubmitMonthPlan, at: datetime) -> Decided:
        """Review the submission against the registry, then decide it, as of its acceptance
        (lateness is judged then, whatever the review takes); the findings go with the result."""
        validate(state, command, at)
        review = await workflow.execute_activity_method(
            PlanActivities.review_month_plan,
            ReviewRequest(
                plan_id=self._log.stream_id,
                rep_id=state.rep_id,
                month=state.month,
                visits=command.visits,
                submitted_at=at,
                policy=state.policy,
                rules=state.rules,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=APPEND_RETRY,
        )
        events = decide(state, command, at, review=review)
        return Decided(events, occurred_at=at, extra={"findings": review.findings})
