"""The typed Python client for monthly plans: open, submit, approve, return, read.

Built like `starter.client.VisitClient`, and as thin: commands are `domain.month_plan`
models judged by the workflow; refusals come back as `CommandRefused(rule, message)`.
"""

from collections.abc import Sequence

import asyncpg
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.plan_store import PlanStore
from domain.month_plan import (
    ApproveMonthPlan,
    MonthPlanState,
    MonthPlanSummary,
    OpenMonthPlan,
    RecordedPlanEvent,
    ReturnMonthPlan,
    SubmitMonthPlan,
    plan_id_of,
)
from settings import TASK_QUEUE
from starter.errors import CommandRefused, refusal_in
from workflows.contract import RecordedRef
from workflows.month_plan import MonthPlanWorkflow
from workflows.plan_contract import (
    PLAN_OPENED,
    PLAN_STATE,
    PLAN_WORKFLOW_TYPE,
    PlanCommandResult,
    plan_workflow_id,
)

PlanCommand = OpenMonthPlan | SubmitMonthPlan | ApproveMonthPlan | ReturnMonthPlan


class PlanNotFound(CommandRefused):
    def __init__(self, rep_id: str, month: str) -> None:
        super().__init__("plan.unknown", f"There is no plan of {rep_id} for {month}.")


def _repeat_of(
    command: PlanCommand, events: Sequence[RecordedPlanEvent], state: MonthPlanState
) -> PlanCommandResult:
    return PlanCommandResult(
        plan_id=events[0].plan_id,
        command_id=command.command_id,
        kind=command.kind,
        status=state.status,
        events=[RecordedRef(seq=e.seq, type=e.type, event_id=e.event_id) for e in events],
        duplicate=True,
    )


class MonthPlanClient:
    """Talks to the monthly plan workflows through Temporal and reads their log from PostgreSQL."""

    def __init__(
        self, temporal: Client, pool: asyncpg.Pool | None = None, task_queue: str = TASK_QUEUE
    ) -> None:
        self.temporal = temporal
        self.task_queue = task_queue
        self._store = PlanStore(pool) if pool is not None else None

    @property
    def store(self) -> PlanStore:
        if self._store is None:
            raise RuntimeError("this client was made without a database pool; the plans' log needs one")
        return self._store

    def handle(self, rep_id: str, month: str) -> WorkflowHandle[MonthPlanWorkflow, MonthPlanState]:
        return self.temporal.get_workflow_handle_for(MonthPlanWorkflow.run, plan_workflow_id(rep_id, month))

    async def open_month_plan(self, command: OpenMonthPlan) -> PlanCommandResult:
        """Open a rep's plan for a month; returns once the opening is committed to the log.

        Sending the same command again returns the first result (`duplicate=True`); another
        opening of the same rep and month is refused (`plan.exists`).
        """
        rep_id, month = command.rep_id, command.month
        try:
            handle = await self.temporal.start_workflow(
                PLAN_WORKFLOW_TYPE,
                command,
                result_type=MonthPlanState,
                id=plan_workflow_id(rep_id, month),
                task_queue=self.task_queue,
                # One plan per rep and month; only a plan whose opening was refused may be retried.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            # The plan's workflow has completed (every approved visit started).
            return await self._after_completion(rep_id, month, command, self.handle(rep_id, month))
        try:
            return await handle.execute_update(PLAN_OPENED, command.command_id, result_type=PlanCommandResult)
        except WorkflowUpdateFailedError as err:
            raise refusal_in(err) or err from None
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return await self._after_completion(rep_id, month, command, handle)

    async def send(
        self, rep_id: str, month: str, command: SubmitMonthPlan | ApproveMonthPlan | ReturnMonthPlan
    ) -> PlanCommandResult:
        """Send one command to a plan; returns once its events are committed."""
        handle = self.handle(rep_id, month)
        try:
            return await handle.execute_update(command.kind, command, result_type=PlanCommandResult)
        except WorkflowUpdateFailedError as err:
            raise refusal_in(err) or err from None
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return await self._after_completion(rep_id, month, command, handle)

    async def submit_month_plan(self, rep_id: str, month: str, command: SubmitMonthPlan) -> PlanCommandResult:
        """The rep submits (or revises) the plan; non-blocking findings come back in the result."""
        return await self.send(rep_id, month, command)

    async def approve_month_plan(
        self, rep_id: str, month: str, command: ApproveMonthPlan
    ) -> PlanCommandResult:
        """The manager approves all of the plan (`visit_ids` None) or the visits named."""
        return await self.send(rep_id, month, command)

    async def return_month_plan(self, rep_id: str, month: str, command: ReturnMonthPlan) -> PlanCommandResult:
        """The manager returns the plan to the rep with a reason."""
        return await self.send(rep_id, month, command)

    async def _after_completion(
        self,
        rep_id: str,
        month: str,
        command: PlanCommand,
        handle: WorkflowHandle[MonthPlanWorkflow, MonthPlanState],
    ) -> PlanCommandResult:
        """Answer a command sent to a plan whose workflow has ended (or never existed)."""
        try:
            final = await handle.result()
        except WorkflowFailureError as err:
            raise refusal_in(err) or err from None
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise PlanNotFound(rep_id, month) from None
            raise
        if self._store is not None:
            recorded = await self._store.find_command(plan_id_of(rep_id, month), command.command_id)
            if recorded:
                return _repeat_of(command, recorded, final)
        if isinstance(command, OpenMonthPlan):
            raise CommandRefused("plan.exists", f"The plan of {rep_id} for {month} already exists.")
        raise CommandRefused(
            "state.closed",
            f"The plan of {rep_id} for {month} is approved and its visits are started; "
            "send changes to the visits themselves.",
        )

    async def month_plan_state(self, rep_id: str, month: str) -> MonthPlanState:
        """The plan as it stands (from its workflow; from the final result once it has ended)."""
        handle = self.handle(rep_id, month)
        try:
            return await handle.query(PLAN_STATE, result_type=MonthPlanState)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise PlanNotFound(rep_id, month) from None
            raise
        except WorkflowQueryFailedError as err:
            raise CommandRefused("plan.not_open", err.message) from None

    async def result(self, rep_id: str, month: str) -> MonthPlanState:
        """Wait until every approved visit of the plan is started; the plan's final state."""
        try:
            return await self.handle(rep_id, month).result()
        except WorkflowFailureError as err:
            raise refusal_in(err) or err from None

    async def history(self, rep_id: str, month: str) -> list[RecordedPlanEvent]:
        """The plan's events from the PostgreSQL log, in order."""
        return await self.store.events(plan_id_of(rep_id, month))

    async def summary(self, rep_id: str, month: str) -> MonthPlanSummary | None:
        """The plan's `month_plans` read-model row."""
        return await self.store.plan(plan_id_of(rep_id, month))
