"""Open streams whose workflow has ended: deadlines that nobody follows any more.

Each open visit and monthly plan is followed by its workflow: the workflow's timers fire
its reminders and escalations, its updates take the commands, and a plan's opens its
approved visits. When that workflow ends while the read model still says the stream is
open (terminated by an operator, failed, timed out, canceled, or completed without the
log closing it) nothing escalates and every command is refused, yet the log and its chain
stay intact, so no chain check can notice. `find_unfollowed` does:

1. it lists the running workflows of the engine's types with one visibility query
   (`RUNNING_QUERY`), page by page, and sets them beside the open streams of the read
   model; a server without that query (Temporal's time-skipping test server) gets a
   `describe` per open stream instead;
2. it describes only the open streams whose workflow was not listed, to say how and when
   the workflow ended (and, for a failure or a termination, the message or reason given).

Visibility is eventually consistent: a workflow that ended a moment ago may still be
listed as running (the next check reports it), and one started a moment ago may not be
listed yet (it is described, found running, and not reported). A stream that closes
while the check runs could look like one whose workflow completed early, so
`check_liveness` reads each finding's row again and keeps only those still open.

A workflow that runs but is wedged (its workflow tasks failing over and over) is not
found here: its status stays Running.
"""

import asyncio
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, computed_field
from temporalio.api.failure.v1 import Failure
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHistoryEventFilterType,
)
from temporalio.converter import WorkflowSerializationContext
from temporalio.service import RPCError, RPCStatusCode

from activities.plan_store import PlanStore
from activities.store import EventStore
from domain.calendar import zone
from domain.month_plan import MISSING, MonthPlanStatus, MonthPlanSummary
from domain.state import VisitStatus
from domain.summary import VisitSummary
from domain.timeline import concern_text
from workflows.contract import WORKFLOW_TYPE, workflow_id
from workflows.plan_contract import PLAN_WORKFLOW_ID_PREFIX, PLAN_WORKFLOW_TYPE

RUNNING_QUERY = (
    f"(WorkflowType = '{WORKFLOW_TYPE}' OR WorkflowType = '{PLAN_WORKFLOW_TYPE}') "
    "AND ExecutionStatus = 'Running'"
)
"""The running workflows of the engine's types: one visibility query for every stream."""

RECOVERY = "docs/operations.md"
"""Where an operator reads how to recover a stream whose workflow ended."""

DESCRIBE_CONCURRENCY = 16
"""How many `describe` calls are in flight at once."""

OPEN_STREAMS_LIMIT = 10_000_000
"""The bound passed to the read model's list methods: more open streams than any team holds."""

_NO_VISIBILITY = (RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.INVALID_ARGUMENT)
"""How a server says it cannot answer `RUNNING_QUERY` (no visibility, or no such query)."""


class StreamKind(StrEnum):
    visit = "visit"
    plan = "plan"


class Ending(StrEnum):
    """How a stream's workflow ended, in Temporal's words; `missing` when it has none."""

    completed = "completed"
    failed = "failed"
    canceled = "canceled"
    terminated = "terminated"
    continued_as_new = "continued_as_new"
    timed_out = "timed_out"
    missing = "missing"


_HOW = {
    Ending.completed: "completed",
    Ending.failed: "failed",
    Ending.canceled: "was canceled",
    Ending.terminated: "was terminated",
    Ending.continued_as_new: "continued as new",
    Ending.timed_out: "timed out",
}


class OpenStream(BaseModel):
    """A visit or plan the read model holds open, with its next deadline when it has one."""

    model_config = ConfigDict(frozen=True)

    kind: StreamKind
    stream_id: str
    workflow_id: str
    status: str
    concern: str | None = None
    due_at: datetime | None = None
    pending_visits: int = 0  # a plan's approved visits not yet opened


class UnfollowedStream(OpenStream):
    """An open stream whose workflow is not running: nothing follows its deadlines."""

    ended: Ending
    ended_at: datetime | None = None
    run_id: str | None = None
    reason: str | None = None  # the failure's message, or the reason given for a termination
    message: str


class LivenessReport(BaseModel):
    """The open streams checked against Temporal, and those no workflow follows."""

    visits: int
    plans: int
    running: int
    visibility: bool  # True: one visibility query; False: a describe per open stream
    unfollowed: list[UnfollowedStream]

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way to serialise it
    @property
    def ok(self) -> bool:
        """Every open stream has a running workflow."""
        return not self.unfollowed


def open_visit(summary: VisitSummary) -> OpenStream | None:
    """The visit as an open stream, or None when it is closed."""
    if summary.status is VisitStatus.closed:
        return None
    return OpenStream(
        kind=StreamKind.visit,
        stream_id=summary.visit_id,
        workflow_id=workflow_id(summary.visit_id),
        status=str(summary.status),
        concern=summary.next_due_concern,
        due_at=summary.next_due_at,
    )


def open_plan(summary: MonthPlanSummary) -> OpenStream | None:
    """The plan as an open stream, or None when it is complete (`MonthPlanState.complete`:
    approved, and every approved visit opened or reported as not opened)."""
    pending = max(summary.approved - summary.started - summary.not_started, 0)
    if summary.status is MonthPlanStatus.approved and not pending:
        return None
    missing = summary.status in MISSING
    return OpenStream(
        kind=StreamKind.plan,
        stream_id=summary.plan_id,
        workflow_id=f"{PLAN_WORKFLOW_ID_PREFIX}{summary.plan_id}",
        status=str(summary.status),
        concern="plan" if missing else None,
        due_at=summary.due_at if missing else None,
        pending_visits=pending if summary.status is MonthPlanStatus.approved else 0,
    )


def _at(when: datetime, tz: str) -> str:
    return when.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M %Z")


def _sentence(
    stream: OpenStream, ended: Ending, ended_at: datetime | None, reason: str | None, tz: str
) -> str:
    name = "Visit" if stream.kind is StreamKind.visit else "Monthly plan"
    state = stream.status
    if stream.pending_visits:
        state += f", {stream.pending_visits} approved visit(s) still to open"
    if ended is Ending.missing:
        how = f"Temporal has no workflow {stream.workflow_id}"
    else:
        how = f"its workflow {_HOW[ended]}" + (f" at {_at(ended_at, tz)}" if ended_at else "")
        if reason:
            how += f" ({' '.join(reason.split())})"
    if stream.pending_visits:
        effect = "it takes no commands and its approved visits are not opened"
    elif stream.kind is StreamKind.plan and stream.concern is None:
        effect = "it takes no commands"
    else:
        effect = "it takes no commands and its deadlines are no longer followed"
    if stream.concern is not None and stream.due_at is not None:
        effect += f" (next: {concern_text(stream.concern)} due {_at(stream.due_at, tz)})"
    return f"{name} {stream.stream_id} is open ({state}) but {how}: {effect}. See {RECOVERY} to recover it."


async def _running(client: Client) -> set[str] | None:
    """The ids of the engine's running workflows, or None when the server cannot list them."""
    try:
        return {execution.id async for execution in client.list_workflows(RUNNING_QUERY)}
    except RPCError as err:
        if err.status in _NO_VISIBILITY:
            return None
        raise


async def _reason(client: Client, description: WorkflowExecutionDescription) -> str | None:
    """Why a failed or terminated run ended, read from its close event; None if that costs more."""
    handle = client.get_workflow_handle(description.id, run_id=description.run_id)
    try:
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            if event.HasField("workflow_execution_terminated_event_attributes"):
                return event.workflow_execution_terminated_event_attributes.reason or None
            if event.HasField("workflow_execution_failed_event_attributes"):
                failure = Failure()
                # decode_failure works in place (a payload codec may be set): decode a copy.
                failure.CopyFrom(event.workflow_execution_failed_event_attributes.failure)
                context = WorkflowSerializationContext(namespace=client.namespace, workflow_id=description.id)
                error = await client.data_converter.with_context(context).decode_failure(failure)
                return str(error) or type(error).__name__
    except RPCError:
        return None  # the ending and its time are known; the reason is a nicety
    return None


async def _ended(client: Client, stream: OpenStream, tz: str) -> UnfollowedStream | None:
    """The stream as a finding when its workflow is not running, else None."""
    try:
        description = await client.get_workflow_handle(stream.workflow_id).describe()
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
        ended, ended_at, run_id, reason = Ending.missing, None, None, None
    else:
        status = description.status
        if status is None or status is WorkflowExecutionStatus.RUNNING:
            return None
        ended, ended_at, run_id = Ending(status.name.lower()), description.close_time, description.run_id
        reason = await _reason(client, description) if ended in (Ending.failed, Ending.terminated) else None
    return UnfollowedStream(
        **stream.model_dump(),
        ended=ended,
        ended_at=ended_at,
        run_id=run_id,
        reason=reason,
        message=_sentence(stream, ended, ended_at, reason, tz),
    )


async def find_unfollowed(
    client: Client,
    visits: Iterable[VisitSummary],
    plans: Iterable[MonthPlanSummary] = (),
    *,
    timezone: str,
) -> LivenessReport:
    """The open visits and plans among these read-model rows whose workflow is not running.

    Closed visits and complete plans are passed over. Times in the findings' sentences are
    in `timezone`. Raises `RPCError` when Temporal fails to answer.
    """
    streams = [s for s in map(open_visit, visits) if s is not None]
    n_visits = len(streams)
    streams += [s for s in map(open_plan, plans) if s is not None]
    running = await _running(client) if streams else set()
    suspects = [s for s in streams if running is None or s.workflow_id not in running]
    limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def described(stream: OpenStream) -> UnfollowedStream | None:
        async with limit:
            return await _ended(client, stream, timezone)

    found = [f for f in await asyncio.gather(*map(described, suspects)) if f is not None]
    return LivenessReport(
        visits=n_visits,
        plans=len(streams) - n_visits,
        running=len(streams) - len(found),
        visibility=running is not None,
        unfollowed=sorted(found, key=lambda f: (f.kind, f.stream_id)),
    )


async def open_streams(
    visits: EventStore, plans: PlanStore
) -> tuple[list[VisitSummary], list[MonthPlanSummary]]:
    """The read model's open visits and not yet complete plans."""
    visit_rows: list[VisitSummary] = []
    for status in VisitStatus:
        if status is not VisitStatus.closed:
            visit_rows += await visits.list_visits(status=status, limit=OPEN_STREAMS_LIMIT)
    plan_rows: list[MonthPlanSummary] = []
    for plan_status in MonthPlanStatus:
        listed = await plans.list_plans(status=plan_status, limit=OPEN_STREAMS_LIMIT)
        plan_rows += [row for row in listed if open_plan(row) is not None]
    return visit_rows, plan_rows


async def _still_open(finding: UnfollowedStream, visits: EventStore, plans: PlanStore) -> bool:
    if finding.kind is StreamKind.visit:
        visit = await visits.visit(finding.stream_id)
        return visit is not None and open_visit(visit) is not None
    plan = await plans.plan(finding.stream_id)
    return plan is not None and open_plan(plan) is not None


async def check_liveness(
    client: Client, visits: EventStore, plans: PlanStore, *, timezone: str
) -> LivenessReport:
    """`find_unfollowed` over the read model's open streams, each finding read again so a
    stream that closed meanwhile (its workflow then completes) is not reported."""
    visit_rows, plan_rows = await open_streams(visits, plans)
    report = await find_unfollowed(client, visit_rows, plan_rows, timezone=timezone)
    if not report.unfollowed:
        return report
    kept = [f for f in report.unfollowed if await _still_open(f, visits, plans)]
    closed = [f.kind for f in report.unfollowed if f not in kept]
    return report.model_copy(
        update={
            "unfollowed": kept,
            "visits": report.visits - closed.count(StreamKind.visit),
            "plans": report.plans - closed.count(StreamKind.plan),
        }
    )
