"""VisitWorkflow: one durable workflow per visit.

Commands arrive as updates (one name per command kind, `workflows.contract.UPDATES`). Each
update's validator runs `domain.decide` without side effects, so a refused command never
enters history; the handler decides again under the lock, after recording every alarm
whose time has come, appends the events through an activity, and returns only once they
are committed. The main loop sleeps until the next reminder or escalation
`domain.deadlines.next_alarm` names and sends it through the same rules. The command log
(`workflows.command_log`) does all of that; this class names the visit's parts.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from activities.models import AppendRequest
    from activities.visit_activities import VisitActivities
    from domain.actors import CommandBase
    from domain.commands import SubmitPlan
    from domain.decide import decide
    from domain.events import Event, RecordedEvent
    from domain.state import VisitState
    from domain.summary import summarize
    from domain.visit import VISITS
    from workflows.command_log import APPEND_RETRY, NULL, CommandLog, decode, invalid
    from workflows.contract import (
        COMMANDS,
        OPENED,
        STATE,
        WORKFLOW_TYPE,
        CommandResult,
        RecordedRef,
        workflow_id,
    )


def _request(visit_id: str, events: list[RecordedEvent], after: VisitState) -> AppendRequest:
    return AppendRequest(visit_id=visit_id, events=events, summary=summarize(after))


def _result(command: CommandBase, state: VisitState, events: list[RecordedEvent]) -> CommandResult:
    return CommandResult(
        visit_id=state.visit_id,
        command_id=command.command_id,
        kind=getattr(command, "kind", ""),
        status=state.status,
        events=[RecordedRef(seq=e.seq, type=e.type, event_id=e.event_id) for e in events],
    )


@workflow.defn(name=WORKFLOW_TYPE)
class VisitWorkflow:
    """The lifecycle of one customer visit, from plan to closing."""

    def __init__(self) -> None:
        self._log: CommandLog[VisitState, RecordedEvent, CommandResult] = CommandLog(
            VISITS,
            append=VisitActivities.append_events,
            request=_request,
            result=_result,
            not_open="The visit's plan has not been recorded yet; try again in a moment.",
        )

    @workflow.run
    async def run(self, start: RawValue) -> VisitState:
        await self._log.open_stream(
            start,
            SubmitPlan,
            identify=lambda command: command.visit_id,
            workflow_id_of=workflow_id,
            decide=self._decide_opening,
        )
        await self._log.follow_deadlines(until=lambda state: state.closed)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._log.current()

    @staticmethod
    async def _decide_opening(command: SubmitPlan) -> list[Event]:
        # A new visit records the policy configured now; it keeps it to the end.
        policy = await workflow.execute_activity_method(
            VisitActivities.load_policy,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
        return decide(None, command, workflow.now(), policy)

    @workflow.update(name=OPENED)
    async def opened(self, command_id: RawValue = NULL) -> CommandResult:
        """Wait until the plan is recorded and return the opening command's result.

        With `command_id`, a different opening command is refused: the visit exists.
        """
        return await self._log.opened(command_id)

    @workflow.query(name=STATE)
    def state(self) -> VisitState:
        """The visit as it stands now (folded from the events committed so far)."""
        return self._log.current()

    @workflow.update(dynamic=True)
    async def command(self, name: str, args: Sequence[RawValue]) -> CommandResult:
        """Every command: one update per kind, named as in `workflows.contract.UPDATES`."""
        command = self._decode(name, args)
        return await self._log.execute(command, lambda state, now: self._decide(state, command, now))

    @command.validator
    def _validate(self, name: str, args: Sequence[RawValue]) -> None:
        command = self._decode(name, args)
        self._log.validate(command, lambda state, now: self._decide(state, command, now))

    @staticmethod
    def _decode(name: str, args: Sequence[RawValue]) -> CommandBase:
        model = COMMANDS.get(name)
        if model is None:
            raise invalid(f"A visit takes no command {name!r}; its commands are {', '.join(COMMANDS)}.")
        if len(args) != 1:
            raise invalid(f"The {name} update takes one argument, the command; it got {len(args)}.")
        return decode(model, args[0])

    @staticmethod
    def _decide(state: VisitState, command: CommandBase, now: datetime) -> list[Event]:
        return decide(state, command, now, state.policy)  # type: ignore[arg-type]  # decoded from COMMANDS
