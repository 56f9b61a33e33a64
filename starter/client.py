"""The typed Python client for backends: start visits, send commands, read state and history.

No business rule lives here: commands are built from `domain.commands` and judged by the
workflow; refusals come back as `CommandRefused` carrying the rule and its sentence.
"""

from collections.abc import Sequence
from datetime import datetime

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

from activities.store import EventStore
from domain.commands import Command, SubmitPlan
from domain.events import RecordedEvent
from domain.state import VisitState
from domain.summary import VisitSummary
from settings import TASK_QUEUE
from starter.audit import Auditor, VisitAudit
from starter.errors import CommandRefused, VisitNotFound, refusal_in
from starter.history_check import HistoryCheck, check_history
from workflows.contract import OPENED, STATE, WORKFLOW_TYPE, CommandResult, RecordedRef, workflow_id
from workflows.visit import VisitWorkflow


def _repeat_of(
    command: Command | SubmitPlan, events: Sequence[RecordedEvent], state: VisitState
) -> CommandResult:
    return CommandResult(
        visit_id=events[0].visit_id,
        command_id=command.command_id,
        kind=command.kind,
        status=state.status,
        events=[RecordedRef(seq=e.seq, type=e.type, event_id=e.event_id) for e in events],
        duplicate=True,
    )


class VisitClient:
    """Talks to the visit workflows through Temporal and reads the log from PostgreSQL."""

    def __init__(
        self, temporal: Client, pool: asyncpg.Pool | None = None, task_queue: str = TASK_QUEUE
    ) -> None:
        self.temporal = temporal
        self.task_queue = task_queue
        self._store = EventStore(pool) if pool is not None else None

    @property
    def store(self) -> EventStore:
        if self._store is None:
            raise RuntimeError("this client was made without a database pool; history needs one")
        return self._store

    def handle(self, visit_id: str) -> WorkflowHandle[VisitWorkflow, VisitState]:
        return self.temporal.get_workflow_handle_for(VisitWorkflow.run, workflow_id(visit_id))

    async def start_visit(self, command: SubmitPlan) -> CommandResult:
        """Open a visit with its plan; returns once the plan is committed to the log.

        Sending the same command again returns the first result (`duplicate=True`).
        """
        try:
            handle = await self.temporal.start_workflow(
                WORKFLOW_TYPE,
                command,
                result_type=VisitState,
                id=workflow_id(command.visit_id),
                task_queue=self.task_queue,
                # A visit id is used once; only a visit whose opening was refused may be retried.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            # The visit's workflow has ended (the visit is closed): a repeat of its opening
            # is answered from the log, another opening is refused.
            return await self._after_completion(command.visit_id, command, self.handle(command.visit_id))
        try:
            return await handle.execute_update(OPENED, command.command_id, result_type=CommandResult)
        except WorkflowUpdateFailedError as err:
            raise refusal_in(err) or err from None
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return await self._after_completion(command.visit_id, command, handle)

    async def send(self, visit_id: str, command: Command) -> CommandResult:
        """Send one command to a visit; returns once its events are committed."""
        handle = self.handle(visit_id)
        try:
            return await handle.execute_update(command.kind, command, result_type=CommandResult)
        except WorkflowUpdateFailedError as err:
            raise refusal_in(err) or err from None
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            return await self._after_completion(visit_id, command, handle)

    async def _after_completion(
        self,
        visit_id: str,
        command: Command | SubmitPlan,
        handle: WorkflowHandle[VisitWorkflow, VisitState],
    ) -> CommandResult:
        """Answer a command sent to a visit whose workflow has ended (or never existed)."""
        try:
            final = await handle.result()
        except WorkflowFailureError as err:
            raise refusal_in(err) or err from None
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise VisitNotFound(visit_id) from None
            raise
        if self._store is not None:
            recorded = await self._store.find_command(visit_id, command.command_id)
            if recorded:
                return _repeat_of(command, recorded, final)
        outcome = final.outcome.value.replace("_", " ") if final.outcome else "closed"
        if isinstance(command, SubmitPlan):
            raise CommandRefused(
                "visit.exists",
                f"Visit {visit_id} already exists and is closed ({outcome}); a visit id is used once: "
                "plan the new visit under another id.",
            )
        raise CommandRefused(
            "state.closed", f"Visit {visit_id} is closed ({outcome}); nothing more can be recorded on it."
        )

    async def state(self, visit_id: str) -> VisitState:
        """The visit as it stands (from its workflow; from the final result once it has ended)."""
        handle = self.handle(visit_id)
        try:
            return await handle.query(STATE, result_type=VisitState)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise VisitNotFound(visit_id) from None
            raise
        except WorkflowQueryFailedError as err:
            raise CommandRefused("visit.not_open", err.message) from None

    async def history(self, visit_id: str, until: datetime | None = None) -> list[RecordedEvent]:
        """The visit's events from the PostgreSQL log, in order."""
        return await self.store.events(visit_id, until=until)

    async def audit(self, visit_id: str, as_of: datetime | None = None) -> VisitAudit:
        """The visit replayed from the log with its chain verified, as it stood at `as_of`
        (now when None): timeline, who, when, why, and the state after each step."""
        return await Auditor(self.store).audit(visit_id, as_of)

    async def check_history(self, visit_id: str) -> HistoryCheck:
        """The visit's log compared with its workflow's Temporal history (see starter.history_check)."""
        return await check_history(self.temporal, self.store, visit_id)

    async def summary(self, visit_id: str) -> VisitSummary | None:
        return await self.store.visit(visit_id)

    async def overdue(self, now: datetime) -> list[VisitSummary]:
        return await self.store.overdue(now)
