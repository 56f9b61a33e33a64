"""Cross-check a visit's event log with its workflow's Temporal history.

Temporal's history is the durable record of what the workflow did: every `append_events`
activity it scheduled (with the numbered, chained events it sent) and how it ended, every
command accepted as an update and the answer it got. `read_history` decodes that record
with the client's data converter; `compare` sets it beside the log's rows and lists each
difference with its seq and a sentence for people:

- ``missing``: an append completed according to the history, but its event is not in the
  log (the row was deleted);
- ``inserted``: a logged event that no append in the history produced;
- ``rewritten``: the log's event at a seq is not the one appended there (other id, type,
  command or hash, or content that no longer matches the appended hash);
- ``update_unrecorded``: a command answered as recorded, whose events the log lacks;
- ``unconfirmed_append_logged``: an append that failed, or never completed before the
  workflow ended, whose events are in the log nonetheless;
- ``earlier_run``: a logged event appended by a run that was later reset away, so the
  workflow as it runs now does not know it.

Reminders and escalations come from the workflow's timers, not from updates: their events
appear only as appends. Appends are read as plain JSON into narrow views (ids, seqs,
hashes), so histories recorded before a schema change still read.

The history compared is that of the run that wrote the log: the latest run of the
workflow id, unless it wrote nothing (a visit's id started again after it closed, through
the `temporal` CLI or an SDK with a permissive id reuse policy: that run fails or is
refused). Then the id's other runs are listed through Temporal's visibility and the one
whose appends the log holds is compared; the runs that wrote nothing are named in notes.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
)
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import Failure
from temporalio.api.filter.v1 import WorkflowExecutionFilter
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
)
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter, WorkflowSerializationContext
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.chain import link_hash
from domain.month_plan import plan_id_of
from domain.verify import stored_content
from starter.errors import CommandRefused, VisitNotFound
from workflows.contract import OPENED, RecordedRef, workflow_id
from workflows.plan_contract import PLAN_WORKFLOW_ID_PREFIX


@dataclass(frozen=True)
class Kind:
    """What tells one stream's workflows apart: its word, its append activity, its workflow
    ids, and how its opening command names the stream."""

    stream: str
    append_activity: str
    workflow_id: Callable[[str], str]
    stream_id_of: Callable[[Mapping[str, Any]], str | None]


def _visit_of(opening: Mapping[str, Any]) -> str | None:
    value = opening.get("visit_id")
    return value if isinstance(value, str) else None


def _plan_workflow_id(plan_id: str) -> str:
    return f"{PLAN_WORKFLOW_ID_PREFIX}{plan_id}"


def _plan_of(opening: Mapping[str, Any]) -> str | None:
    rep, month = opening.get("rep_id"), opening.get("month")
    return plan_id_of(rep, month) if isinstance(rep, str) and isinstance(month, str) else None


VISITS = Kind("visit", "append_events", workflow_id, _visit_of)
"""A visit's workflow: `VisitActivities.append_events` writes its log."""

PLANS = Kind("plan", "append_plan_events", _plan_workflow_id, _plan_of)
"""A monthly plan's workflow: `PlanActivities.append_plan_events` writes its log."""

APPEND_ACTIVITY = VISITS.append_activity

MAX_RESETS_FOLLOWED = 10

MAX_RUNS_READ = 20
"""How many of a workflow id's runs (newest first) are read to find the one that wrote the log."""


class HistoryUnavailable(CommandRefused):
    """The log holds the visit but Temporal no longer has (all of) its workflow history."""

    def __init__(self, message: str) -> None:
        super().__init__("history.unavailable", message)


class HistoryUnreadable(CommandRefused):
    """The history holds an append or an answer this code cannot read."""

    def __init__(self, message: str) -> None:
        super().__init__("history.unreadable", message)


# --- what the history says ------------------------------------------------------------


class AppendStatus(StrEnum):
    completed = "completed"
    failed = "failed"
    timed_out = "timed_out"
    canceled = "canceled"
    pending = "pending"  # no outcome yet (or none ever: the workflow ended first)


class UpdateStatus(StrEnum):
    completed = "completed"
    failed = "failed"
    unfinished = "unfinished"


class Anchor(BaseModel):
    """Where the log ended after an append, as the activity reported it (`AppendResult`)."""

    last_seq: int
    head_hash: str


class AppendedEvent(BaseModel):
    """One event as the workflow sent it to `append_events` (read from its `RecordedEvent`)."""

    seq: int
    event_id: str
    type: str = Field(validation_alias=AliasChoices("type", AliasPath("event", "type")))
    command_id: str
    prev_hash: str
    hash: str


class HistoryAppend(BaseModel):
    """One `append_events` activity the workflow scheduled, and how it ended."""

    history_event_id: int
    scheduled_at: datetime
    command_id: str
    events: list[AppendedEvent]
    status: AppendStatus = AppendStatus.pending
    attempt: int | None = None
    result: Anchor | None = None
    failure: str | None = None


class HistoryUpdate(BaseModel):
    """One command accepted as a workflow update, and its answer."""

    history_event_id: int
    update_id: str
    name: str
    command_id: str | None
    status: UpdateStatus = UpdateStatus.unfinished
    events: list[RecordedRef] = []
    duplicate: bool = False
    failure: str | None = None


class VisitHistory(BaseModel):
    """What one run of a stream's workflow (a visit's, a plan's) did, decoded from its history."""

    stream_id: str
    stream: str = "visit"
    workflow_id: str
    run_id: str
    workflow_status: str
    history_events: int
    opening_command_id: str | None
    appends: list[HistoryAppend]
    updates: list[HistoryUpdate]
    reset_from: str | None = None  # the run this one was reset from
    failure: str | None = None  # why the run failed or was terminated, when it did

    @property
    def anchor(self) -> Anchor | None:
        """The log's end as the last completed append reported it."""
        results = [a.result for a in self.appends if a.result is not None]
        return max(results, key=lambda r: r.last_seq) if results else None

    @property
    def open(self) -> bool:
        return self.workflow_status == "running"


# --- what the check finds -------------------------------------------------------------


class DifferenceKind(StrEnum):
    missing = "missing"
    inserted = "inserted"
    rewritten = "rewritten"
    update_unrecorded = "update_unrecorded"
    unconfirmed_append_logged = "unconfirmed_append_logged"
    earlier_run = "earlier_run"


class Difference(BaseModel):
    """One disagreement between the log and the history, located by seq."""

    model_config = ConfigDict(frozen=True)

    kind: DifferenceKind
    seq: int | None
    command_id: str | None = None
    message: str


class HistoryCheck(BaseModel):
    """The outcome of cross-checking one stream's log with its workflow history."""

    stream_id: str
    stream: str = "visit"
    workflow_id: str
    run_id: str
    workflow_status: str
    history_events: int
    appends: int  # append activities scheduled
    appends_completed: int
    updates_accepted: int  # commands accepted as updates (the `opened` acknowledgements too)
    updates_completed: int  # of those, finished: answered, or failed after acceptance
    log_rows: int
    anchor: Anchor | None  # the log's end as the last completed append reported it
    differences: list[Difference]
    notes: list[str]

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way to serialise it
    @property
    def ok(self) -> bool:
        return not self.differences


# --- reading the history --------------------------------------------------------------

_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}


class _Request(BaseModel):
    events: list[AppendedEvent]


class _Answer(BaseModel):
    command_id: str
    events: list[RecordedRef]
    duplicate: bool = False


M = TypeVar("M", bound=BaseModel)

_ACTIVITY_ENDS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed", AppendStatus.failed),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("activity_task_timed_out", AppendStatus.timed_out),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("activity_task_canceled", AppendStatus.canceled),
}


def _failure_text(error: BaseException) -> str:
    """The rule and sentence of the innermost typed failure, else the outermost message."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            return f"{cause.type}: {cause.message}"
        cause = cause.__cause__
    return str(error) or type(error).__name__


class _Reader:
    """Decodes one run's history, event by event, in history order."""

    def __init__(self, converter: DataConverter, workflow: str, kind: Kind) -> None:
        self.converter = converter
        self.workflow = workflow
        self.kind = kind
        self.appends: dict[int, HistoryAppend] = {}  # by the event id that scheduled them
        self.updates: dict[str, HistoryUpdate] = {}  # by update id
        self.start: dict[str, Any] = {}
        self.run_id = ""
        self.status = "running"
        self.reset_from: str | None = None
        self.failure: str | None = None

    async def _first(self, payloads: Payloads) -> Any:
        values = await self.converter.decode_wrapper(payloads)
        return values[0] if values else None

    async def _parse(self, model: type[M], payloads: Payloads, what: str, at: HistoryEvent) -> M:
        try:
            return model.model_validate(await self._first(payloads))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or what
            raise HistoryUnreadable(
                f"The {what} in event {at.event_id} of workflow {self.workflow}'s history cannot be "
                f"read: {where}: {first['msg']}."
            ) from None

    async def _failure(self, failure: Failure) -> str:
        copy = Failure()
        copy.CopyFrom(failure)  # decoding works in place; the history stays as fetched
        return _failure_text(await self.converter.decode_failure(copy))

    def _close(self, scheduled_event_id: int, **changes: Any) -> None:
        append = self.appends.get(scheduled_event_id)
        if append is not None:
            self.appends[scheduled_event_id] = append.model_copy(update=changes)

    async def read(self, event: HistoryEvent) -> None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            self.run_id = attrs.original_execution_run_id
            start = await self._first(attrs.input)
            self.start = start if isinstance(start, dict) else {}
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == self.kind.append_activity:
                request = await self._parse(_Request, scheduled.input, "append request", event)
                self.appends[event.event_id] = HistoryAppend(
                    history_event_id=event.event_id,
                    scheduled_at=event.event_time.ToDatetime(tzinfo=UTC),
                    command_id=request.events[0].command_id if request.events else "",
                    events=request.events,
                )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            self._close(started.scheduled_event_id, attempt=started.attempt)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            done = event.activity_task_completed_event_attributes
            if done.scheduled_event_id in self.appends:
                result = await self._parse(Anchor, done.result, "append result", event)
                self._close(done.scheduled_event_id, status=AppendStatus.completed, result=result)
        elif kind in _ACTIVITY_ENDS:
            field, status = _ACTIVITY_ENDS[kind]
            ended = getattr(event, f"{field}_event_attributes")
            if ended.scheduled_event_id in self.appends:
                failure = None if status is AppendStatus.canceled else await self._failure(ended.failure)
                self._close(ended.scheduled_event_id, status=status, failure=failure)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            await self._accepted(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            await self._completed(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failed = event.workflow_task_failed_event_attributes
            if failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW:
                self.reset_from = failed.base_run_id
                self.run_id = failed.new_run_id or self.run_id
        elif kind in _CLOSED:
            self.status = _CLOSED[kind]
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
                self.failure = await self._failure(event.workflow_execution_failed_event_attributes.failure)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
                self.failure = event.workflow_execution_terminated_event_attributes.reason or None

    async def _accepted(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_update_accepted_event_attributes
        request = attrs.accepted_request
        arg = await self._first(request.input.args)
        if isinstance(arg, dict):
            command_id = arg.get("command_id")
        elif request.input.name == OPENED:
            command_id = arg or self.start.get("command_id")  # `opened` takes the opening id
        else:
            command_id = None
        update_id = request.meta.update_id or attrs.protocol_instance_id
        self.updates[update_id] = HistoryUpdate(
            history_event_id=event.event_id,
            update_id=update_id,
            name=request.input.name,
            command_id=command_id if isinstance(command_id, str) else None,
        )

    async def _completed(self, event: HistoryEvent) -> None:
        attrs = event.workflow_execution_update_completed_event_attributes
        # By update id: not every server fills in `accepted_event_id`.
        update = self.updates.get(attrs.meta.update_id)
        if update is None:
            return
        changes: dict[str, Any]
        if attrs.outcome.HasField("failure"):
            changes = {"status": UpdateStatus.failed, "failure": await self._failure(attrs.outcome.failure)}
        else:
            answer = await self._parse(_Answer, attrs.outcome.success, "update result", event)
            changes = {
                "status": UpdateStatus.completed,
                "events": answer.events,
                "duplicate": answer.duplicate,
                "command_id": update.command_id or answer.command_id,
            }
        self.updates[update.update_id] = update.model_copy(update=changes)


async def decode_history(
    history: WorkflowHistory, converter: DataConverter, namespace: str = "default", kind: Kind = VISITS
) -> VisitHistory:
    """The appends and updates of one run's history, decoded with `converter`."""
    context = WorkflowSerializationContext(namespace=namespace, workflow_id=history.workflow_id)
    reader = _Reader(converter.with_context(context), history.workflow_id, kind)
    for event in history.events:
        await reader.read(event)
    stream_id = kind.stream_id_of(reader.start) or history.workflow_id.removeprefix(kind.workflow_id(""))
    return VisitHistory(
        stream_id=stream_id,
        stream=kind.stream,
        workflow_id=history.workflow_id,
        run_id=reader.run_id,
        workflow_status=reader.status,
        history_events=len(history.events),
        opening_command_id=reader.start.get("command_id"),
        appends=list(reader.appends.values()),
        updates=list(reader.updates.values()),
        reset_from=reader.reset_from,
        failure=reader.failure,
    )


async def read_history(
    client: Client, stream_id: str, run_id: str | None = None, kind: Kind = VISITS
) -> VisitHistory:
    """The stream's workflow history (the latest run unless `run_id`), decoded.

    Raises RPCError NOT_FOUND when Temporal has no such workflow (run).
    """
    handle = client.get_workflow_handle(kind.workflow_id(stream_id), run_id=run_id)
    history = await handle.fetch_history()
    return await decode_history(history, client.data_converter, client.namespace, kind)


def _kind(history: VisitHistory) -> Kind:
    return PLANS if history.stream == PLANS.stream else VISITS


# --- comparing ------------------------------------------------------------------------

Row = Mapping[str, Any]


def _stored_content_hash(row: Row) -> str:
    """The hash the row's stored content and prev_hash give (the log stores ids as uuid)."""
    field = "plan_id" if "plan_id" in row else "visit_id"
    return link_hash(str(row["prev_hash"]), stored_content(row, field))


def _what(seq: int, event_type: str, command_id: str | None) -> str:
    return f"Event {seq} ({event_type}{f', command {command_id}' if command_id else ''})"


def _rewritten(appended: AppendedEvent, row: Row) -> str | None:
    """What differs between the appended event and the row at its seq, or None."""
    changed = [
        label
        for label, ours, theirs in (
            ("event id", appended.event_id, str(row["event_id"])),
            ("type", appended.type, row["type"]),
            ("command", appended.command_id, row["command_id"]),
            ("link to the previous event", appended.prev_hash, row["prev_hash"]),
            ("hash", appended.hash, row["hash"]),
        )
        if ours != theirs
    ]
    if not changed and _stored_content_hash(row) != appended.hash:
        changed.append("content (it no longer matches the hash appended)")
    if not changed:
        return None
    return (
        f"{_what(appended.seq, appended.type, appended.command_id)} was appended according to "
        f"Temporal's history, but the log's event {appended.seq} differs in its "
        f"{', '.join(changed)}: the row was rewritten."
    )


def _completed_events(history: VisitHistory) -> dict[int, AppendedEvent]:
    return {e.seq: e for a in history.appends if a.status is AppendStatus.completed for e in a.events}


def _unconfirmed(history: VisitHistory) -> Iterable[tuple[HistoryAppend, AppendedEvent]]:
    for append in history.appends:
        if append.status is not AppendStatus.completed:
            for event in append.events:
                yield append, event


def compare(
    history: VisitHistory, rows: Sequence[Row], earlier: Sequence[VisitHistory] = ()
) -> list[Difference]:
    """The differences between the history and the visit's stored rows, in seq order.

    `earlier` are the runs this one was reset from, newest first: an event one of them
    appended is named as such rather than as inserted.
    """
    by_seq = {int(r["seq"]): r for r in rows}
    appended = _completed_events(history)
    found: list[Difference] = []

    for seq, event in appended.items():
        row = by_seq.get(seq)
        if row is None:
            found.append(
                Difference(
                    kind=DifferenceKind.missing,
                    seq=seq,
                    command_id=event.command_id,
                    message=f"{_what(seq, event.type, event.command_id)} was appended according to "
                    "Temporal's history but is not in the log: the row was deleted.",
                )
            )
        elif (sentence := _rewritten(event, row)) is not None:
            found.append(
                Difference(
                    kind=DifferenceKind.rewritten, seq=seq, command_id=event.command_id, message=sentence
                )
            )

    unconfirmed = {e.event_id: (a, e) for a, e in _unconfirmed(history)}
    from_earlier = {e.event_id: (h, e) for h in reversed(earlier) for e in _completed_events(h).values()}
    for seq, row in sorted(by_seq.items()):
        if seq in appended:
            continue
        event_id = str(row["event_id"])
        what = _what(seq, row["type"], row["command_id"])
        if event_id in unconfirmed:
            append, sent = unconfirmed[event_id]
            if append.status is AppendStatus.pending and history.open:
                continue  # committed, the activity has not reported back yet: a note
            outcome = (
                f"failed ({append.failure})"
                if append.failure
                else "was canceled"
                if append.status is AppendStatus.canceled
                else "never completed before the workflow ended"
            )
            found.append(
                Difference(
                    kind=DifferenceKind.unconfirmed_append_logged,
                    seq=seq,
                    command_id=sent.command_id,
                    message=f"{what} is in the log although its append {outcome} according to "
                    "Temporal's history: the workflow's state does not include it.",
                )
            )
        elif event_id in from_earlier and from_earlier[event_id][1].hash == row["hash"]:
            run = from_earlier[event_id][0].run_id
            found.append(
                Difference(
                    kind=DifferenceKind.earlier_run,
                    seq=seq,
                    command_id=row["command_id"],
                    message=f"{what} was appended by run {run}, which was later reset to an earlier "
                    "point: the workflow as it runs now does not know this event.",
                )
            )
        else:
            found.append(
                Difference(
                    kind=DifferenceKind.inserted,
                    seq=seq,
                    command_id=row["command_id"],
                    message=f"{what} is in the log, but no append in Temporal's history produced it: "
                    "it was inserted after the fact.",
                )
            )

    reported = {d.seq for d in found}
    for update in history.updates:
        if update.status is not UpdateStatus.completed:
            continue
        for ref in update.events:
            row = by_seq.get(ref.seq)
            if ref.seq in reported or (
                row is not None and (str(row["event_id"]), row["type"]) == (ref.event_id, ref.type)
            ):
                continue
            reported.add(ref.seq)
            found.append(
                Difference(
                    kind=DifferenceKind.update_unrecorded,
                    seq=ref.seq,
                    command_id=update.command_id,
                    message=f"The {update.name} command {update.command_id} (update {update.update_id}) "
                    f"was answered as recorded with event {ref.seq} ({ref.type}), but the log "
                    f"{'does not hold it' if row is None else 'holds another event there'}.",
                )
            )
    return sorted(found, key=lambda d: (d.seq is None, d.seq or 0, d.kind.value))


def notes(history: VisitHistory, rows: Sequence[Row]) -> list[str]:
    """What is worth knowing but is no difference: unfinished work, refused appends, resets."""
    logged = {str(r["event_id"]) for r in rows}
    said: list[str] = []
    if history.reset_from:
        said.append(
            f"Run {history.run_id} was reset from run {history.reset_from}: appends of the earlier "
            "run after the reset point are not in this run's history."
        )
    if not rows and history.anchor is not None:
        said.append(
            f"The log holds no event of {history.stream} {history.stream_id} at all: is this the "
            f"database the {history.stream} was recorded in?"
        )
    for update in history.updates:
        command = f"The {update.name} command {update.command_id}"
        if update.status is UpdateStatus.unfinished:
            ended = history.workflow_status.replace("_", " ")
            ending = "is still running" if history.open else f"never finished: the workflow {ended}"
            said.append(f"{command} was accepted and {ending}.")
        elif update.status is UpdateStatus.failed:
            said.append(f"{command} was accepted, then failed ({update.failure}).")
    for append in history.appends:
        if not append.events:
            continue
        first, last = append.events[0].seq, append.events[-1].seq
        span = f"event {first}" if first == last else f"events {first} to {last}"
        in_log = all(e.event_id in logged for e in append.events)
        if append.status is AppendStatus.pending and history.open:
            state = "is in the log; Temporal has not heard back yet" if in_log else "is not committed yet"
            said.append(f"The append of {span} (command {append.command_id}) is in progress and {state}.")
        elif append.status is not AppendStatus.completed and not any(
            e.event_id in logged for e in append.events
        ):
            why = append.failure or append.status.value.replace("_", " ")
            said.append(
                f"The append of {span} (command {append.command_id}) did not complete ({why}); "
                "nothing of it is in the log."
            )
    return said


def assess(history: VisitHistory, rows: Sequence[Row], earlier: Sequence[VisitHistory] = ()) -> HistoryCheck:
    """The check's result for a decoded history and the visit's rows (pure)."""
    return HistoryCheck(
        stream_id=history.stream_id,
        stream=history.stream,
        workflow_id=history.workflow_id,
        run_id=history.run_id,
        workflow_status=history.workflow_status,
        history_events=history.history_events,
        appends=len(history.appends),
        appends_completed=sum(a.status is AppendStatus.completed for a in history.appends),
        updates_accepted=len(history.updates),
        updates_completed=sum(u.status is not UpdateStatus.unfinished for u in history.updates),
        log_rows=len(rows),
        anchor=history.anchor,
        differences=compare(history, rows, earlier),
        notes=notes(history, rows),
    )


async def _earlier_runs(client: Client, history: VisitHistory) -> tuple[list[VisitHistory], list[str]]:
    """The runs a reset run descends from, as far as Temporal still holds them."""
    runs: list[VisitHistory] = []
    said: list[str] = []
    base = history.reset_from
    while base and len(runs) < MAX_RESETS_FOLLOWED:
        try:
            run = await read_history(client, history.stream_id, run_id=base, kind=_kind(history))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            said.append(
                f"The history of run {base}, which this run was reset from, is no longer in "
                "Temporal (retention); events only it appended show as inserted."
            )
            break
        runs.append(run)
        base = run.reset_from
    return runs, said


def _as_of(before: VisitHistory, after: VisitHistory) -> VisitHistory:
    """`before`, knowing also the appends scheduled by the time of `after`, still unfinished.

    The rows are read between the two fetches of a running visit's history: every row read
    then was scheduled by `after`, and every append `before` saw complete was committed.
    """
    if after.run_id != before.run_id:
        return before
    known = {a.history_event_id for a in before.appends}
    later = [
        a.model_copy(update={"status": AppendStatus.pending, "result": None, "failure": None})
        for a in after.appends
        if a.history_event_id not in known
    ]
    return before.model_copy(update={"appends": [*before.appends, *later]})


def wrote(history: VisitHistory, rows: Sequence[Row]) -> bool:
    """Whether any append of the run, however it ended, put an event in the log.

    Event ids are minted by each run (`workflow.uuid4()`), so another run's rows never
    match; a run reset from this one carries copies of its appends up to the reset point.
    """
    logged = {str(r["event_id"]) for r in rows}
    return any(e.event_id in logged for a in history.appends for e in a.events)


class _Run(BaseModel):
    """One run of a workflow id, as visibility lists it."""

    run_id: str
    started_at: datetime | None


async def list_runs(client: Client, workflow: str) -> list[_Run] | None:
    """Every run of `workflow` Temporal's visibility lists, newest first; None when it cannot list.

    A visibility query first (`list_workflows`); servers without one (the time-skipping
    test server) still answer the older open and closed lists filtered by workflow id.
    """
    # A quote or backslash in the id would need escaping in the query; the filtered lists
    # take the id as it is.
    if "'" not in workflow and "\\" not in workflow:
        try:
            return _newest_first(
                [
                    _Run(run_id=info.run_id, started_at=info.start_time)
                    async for info in client.list_workflows(f"WorkflowId = '{workflow}'")
                ]
            )
        except RPCError as err:
            if err.status is not RPCStatusCode.UNIMPLEMENTED:
                raise
    try:
        infos = await _open_and_closed(client, workflow)
    except RPCError as err:
        if err.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        return None
    return _newest_first(
        [
            _Run(
                run_id=info.execution.run_id,
                started_at=info.start_time.ToDatetime(tzinfo=UTC) if info.HasField("start_time") else None,
            )
            for info in infos
        ]
    )


async def _open_and_closed(client: Client, workflow: str) -> list[WorkflowExecutionInfo]:
    service = client.workflow_service
    only = WorkflowExecutionFilter(workflow_id=workflow)
    infos: list[WorkflowExecutionInfo] = []
    running = ListOpenWorkflowExecutionsRequest(namespace=client.namespace, execution_filter=only)
    while True:
        open_page = await service.list_open_workflow_executions(running)
        infos += open_page.executions
        if not open_page.next_page_token:
            break
        running.next_page_token = open_page.next_page_token
    ended = ListClosedWorkflowExecutionsRequest(namespace=client.namespace, execution_filter=only)
    while True:
        closed_page = await service.list_closed_workflow_executions(ended)
        infos += closed_page.executions
        if not closed_page.next_page_token:
            break
        ended.next_page_token = closed_page.next_page_token
    return infos


def _newest_first(runs: list[_Run]) -> list[_Run]:
    unique = {r.run_id: r for r in runs}.values()
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(unique, key=lambda r: r.started_at or oldest, reverse=True)


def _ended(history: VisitHistory) -> str:
    status = history.workflow_status.replace("_", " ")
    return f"{status}: {history.failure}" if history.failure else status


async def _run_that_wrote(
    client: Client, latest: VisitHistory, rows: Sequence[Row]
) -> tuple[VisitHistory, list[str]]:
    """The run whose appends the log holds, when the latest run wrote none of it, and notes
    on the runs that wrote nothing. The latest run when no run wrote anything."""
    workflow = latest.workflow_id
    runs = await list_runs(client, workflow)
    if runs is None:
        return latest, [
            f"The latest run {latest.run_id} of workflow {workflow} ({_ended(latest)}) wrote nothing "
            "to the log, and this Temporal cannot list the workflow's other runs: the check "
            "compares the log with that run."
        ]
    started = {r.run_id: r.started_at for r in runs}
    read: list[VisitHistory] = [latest]
    said: list[str] = []
    if len(runs) > MAX_RUNS_READ:
        said.append(f"Workflow {workflow} has {len(runs)} runs; only the newest {MAX_RUNS_READ} were read.")
    for run in runs[:MAX_RUNS_READ]:
        if run.run_id == latest.run_id:
            continue
        try:
            read.append(await read_history(client, latest.stream_id, run_id=run.run_id, kind=_kind(latest)))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
            # Gone by retention: it cannot be compared, the others still can.
            said.append(f"The history of run {run.run_id} of workflow {workflow} is no longer in Temporal.")
    writers = [h for h in read if wrote(h, rows)]
    written = {h.run_id for h in writers}
    # A run reset from another carries copies of its appends: the newest of a chain is the
    # one that runs on, and `_earlier_runs` follows it back.
    bases = {h.reset_from for h in writers if h.reset_from}
    heads = [h for h in writers if h.run_id not in bases]
    if not heads:
        return latest, said
    chosen = heads[0]
    when = started.get(chosen.run_id)
    for other in read:
        if other is chosen or other.run_id in bases:
            continue
        if other.run_id in written:
            said.append(
                f"Run {other.run_id} ({_ended(other)}) of the same workflow id also appended events "
                f"to the log; the log is compared with run {chosen.run_id} only."
            )
            continue
        at = started.get(other.run_id)
        order = "earlier" if when is not None and at is not None and at < when else "later"
        has = "has written" if other.open else "wrote"
        said.append(
            f"Run {other.run_id} ({_ended(other)}) started {order} under the same workflow id and "
            f"{has} nothing to the log."
        )
    return chosen, said


class StoredRows(Protocol):
    """Where a stream's stored rows are read (`EventStore`, `PlanStore`)."""

    async def raw_rows(self, stream_id: str, /) -> list[dict[str, Any]]: ...


async def check_history(
    client: Client, store: StoredRows, stream_id: str, kind: Kind = VISITS
) -> HistoryCheck:
    """Cross-check a stream's stored rows (a visit's; a monthly plan's with `kind=PLANS` and a
    `PlanStore`) with the Temporal history of the run that wrote them.

    Raises `CommandRefused` (`<stream>.unknown`) when neither Temporal nor the log knows the
    stream, and HistoryUnavailable when the log holds it but Temporal no longer has its history.
    """
    try:
        history = await read_history(client, stream_id, kind=kind)
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        logged = len(await store.raw_rows(stream_id))
        if not logged:
            if kind is VISITS:
                raise VisitNotFound(stream_id) from None
            raise CommandRefused(
                f"{kind.stream}.unknown", f"There is no {kind.stream} {stream_id}."
            ) from None
        raise HistoryUnavailable(
            f"{kind.stream.capitalize()} {stream_id} has {logged} event{'s' if logged != 1 else ''} in the "
            f"log, but Temporal (namespace {client.namespace}) has no history of workflow "
            f"{kind.workflow_id(stream_id)}: it was deleted after the namespace's retention period, or "
            f"this is not the Temporal that ran the {kind.stream}. The log's own hash chain can still be "
            "verified."
        ) from None
    # History first, then rows: an append completed in the history was committed before the
    # rows are read. A running stream may append meanwhile, so its history is read again.
    rows = await store.raw_rows(stream_id)
    if history.open:
        history = _as_of(history, await read_history(client, stream_id, kind=kind))
    runs_said: list[str] = []
    if rows and not wrote(history, rows):
        # Only the latest run can be open, so the run chosen instead has ended: its
        # history is complete and needs no second read.
        history, runs_said = await _run_that_wrote(client, history, rows)
    earlier, said = await _earlier_runs(client, history)
    check = assess(history, rows, earlier)
    return check.model_copy(update={"notes": [*check.notes, *runs_said, *said]})
