"""The auditor's timeline: what happened to a visit or a monthly plan, who did it, when, why.

The timeline folds the logged events with `domain.state.evolve`, the same fold the workflow
uses, so the state shown after each step is the state the workflow acted on. Pure: no I/O.
Give it events read from the log (upcast to the current model); verify the stored rows
with `domain.verify.verify_chain` first.
"""

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import takewhile
from typing import Any, TypeVar

from domain.actors import Role
from domain.calendar import local_text
from domain.events import (
    DeputyActed,
    Escalated,
    Event,
    PlanApproved,
    PlanRejected,
    PlanReturned,
    PlanRevised,
    PlanSubmitted,
    PromisedItemCompleted,
    RecordedEvent,
    ReminderSent,
    ReportAccepted,
    ReportReturned,
    ReportSubmitted,
    ReportWaived,
    VisitCancelled,
    VisitCheckedIn,
    VisitClosed,
    VisitRescheduled,
)
from domain.models import Frozen, Instant
from domain.month_plan import (
    MonthPlanApproved,
    MonthPlanEscalated,
    MonthPlanOpened,
    MonthPlanReminderSent,
    MonthPlanReturned,
    MonthPlanState,
    MonthPlanStatus,
    MonthPlanSubmitted,
    PlanEvent,
    PlannedVisitNotStarted,
    PlannedVisitStarted,
    RecordedPlanEvent,
)
from domain.month_plan import evolve as evolve_plan
from domain.state import ITEM_PREFIX, VisitState, VisitStatus, evolve
from domain.stream import Recorded


class TimelineEntry(Frozen):
    """One step of a stream's history (a visit's, a monthly plan's), as an auditor reads it.

    `status` is the stream's status after the step (a `VisitStatus` or `MonthPlanStatus`).
    """

    seq: int
    event_id: str
    occurred_at: Instant
    actor_id: str
    actor_role: Role
    type: str
    what: str
    why: str = ""
    status: VisitStatus | MonthPlanStatus


R = TypeVar("R", bound=Recorded)
S = TypeVar("S", VisitState, MonthPlanState)


def _until(events: Iterable[R], as_of: datetime | None) -> Iterator[R]:
    if as_of is None:
        return iter(events)
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a time zone")
    # The log is in seq order; a later event never counts before an earlier one.
    return takewhile(lambda r: r.occurred_at <= as_of, events)


def state_as_of(events: Iterable[RecordedEvent], as_of: datetime) -> VisitState | None:
    """The visit as it stood at `as_of`: the fold of the events that had occurred by then.

    None when the visit had not been submitted yet.
    """
    state: VisitState | None = None
    for recorded in _until(events, as_of):
        state = evolve(state, recorded)
    return state


def steps(
    events: Iterable[RecordedEvent], as_of: datetime | None = None
) -> Iterator[tuple[TimelineEntry, VisitState]]:
    """Each visit event (up to `as_of` when given) as a timeline entry, with the state after it."""
    return _steps(events, as_of, evolve, describe)


def plan_steps(
    events: Iterable[RecordedPlanEvent], as_of: datetime | None = None
) -> Iterator[tuple[TimelineEntry, MonthPlanState]]:
    """Each monthly plan event (up to `as_of`) as a timeline entry, with the plan after it."""
    return _steps(events, as_of, evolve_plan, describe_plan)


def _steps(
    events: Iterable[R],
    as_of: datetime | None,
    fold_one: Callable[[S | None, R], S],
    words: Callable[[Any, S], tuple[str, str]],
) -> Iterator[tuple[TimelineEntry, S]]:
    state: S | None = None
    for recorded in _until(events, as_of):
        state = fold_one(state, recorded)
        what, why = words(recorded.event, state)
        entry = TimelineEntry(
            seq=recorded.seq,
            event_id=recorded.event_id,
            occurred_at=recorded.occurred_at,
            actor_id=recorded.actor.id,
            actor_role=recorded.actor.role,
            type=recorded.type,
            what=what,
            why=why,
            status=state.status,
        )
        yield entry, state


def timeline(events: Iterable[RecordedEvent], as_of: datetime | None = None) -> list[TimelineEntry]:
    """One entry per event (up to `as_of` when given), with the state's status after it."""
    return [entry for entry, _ in steps(events, as_of)]


def _when(value: datetime, state: VisitState) -> str:
    """An instant in the visit's policy time zone, to the minute."""
    return local_text(value, state.policy.timezone)


def concern_text(concern: str) -> str:
    """A deadline key (``report``, ``item:quote``) as words."""
    if concern.startswith(ITEM_PREFIX):
        return f"promised item {concern.removeprefix(ITEM_PREFIX)}"
    return concern.replace("_", " ").replace("check in", "check-in")


def describe(event: Event, state: VisitState) -> tuple[str, str]:
    """The one-line "what" of an event and its "why" (reason or comment, when given).

    `state` is the visit after the event (for names and the time zone).
    """
    when = _when
    match event:
        case PlanSubmitted():
            plan = event.plan
            return (
                f"Plan submitted: {plan.method.value} visit to {plan.customer.name} at "
                f"{when(plan.scheduled_start, state)} for {plan.duration_minutes} min",
                plan.purpose,
            )
        case PlanRevised():
            return (
                f"Plan revised (revision {event.revision}): visit at "
                f"{when(event.plan.scheduled_start, state)}",
                event.note,
            )
        case PlanApproved():
            if event.approved_by is not None:
                by = event.approved_by
                return f"Plan approved by {by.role.value} {by.id} (given with the plan)", event.comment
            return "Plan approved", event.comment
        case PlanRejected():
            return "Plan rejected", event.reason
        case PlanReturned():
            return "Plan returned for changes", event.reason
        case VisitRescheduled():
            return (
                f"Rescheduled from {when(event.previous_start, state)} to "
                f"{when(event.scheduled_start, state)} ({event.duration_minutes} min)",
                event.reason,
            )
        case VisitCancelled():
            return "Visit cancelled", event.reason
        case VisitCheckedIn():
            ex = event.execution
            return (
                f"Checked in: {ex.method.value} visit {when(ex.started_at, state)} to "
                f"{when(ex.ended_at, state)}; report due {when(event.report_due_at, state)}",
                "",
            )
        case ReportSubmitted():
            timing = "late" if event.late else "on time"
            count = len(event.items)
            items = f"{count} promised item{'' if count == 1 else 's'}"
            return f"Report submitted (revision {event.revision}, {timing}, {items})", ""
        case ReportAccepted():
            return "Report accepted", event.comment
        case ReportReturned():
            return f"Report returned; due again {when(event.report_due_at, state)}", event.reason
        case ReportWaived():
            return "Report waived", event.reason
        case PromisedItemCompleted():
            late = " late" if event.late else ""
            return f"Promised item {event.item_id} completed{late}: {event.resolution}", ""
        case ReminderSent():
            return (
                f"Reminder sent to {event.recipient.role.value} {event.recipient.id}: "
                f"{concern_text(event.concern)} due {when(event.due_at, state)}",
                event.message,
            )
        case Escalated():
            return (
                f"Escalated to {event.recipient.role.value} {event.recipient.id} "
                f"(level {event.level}): {concern_text(event.concern)} overdue",
                event.message,
            )
        case VisitClosed():
            return f"Visit closed: {event.outcome.value.replace('_', ' ')}", ""
        case DeputyActed():
            return f"Acting as deputy for {event.for_id}, who is away", ""
    raise ValueError(f"no description for event type {event.type}")


def describe_plan(event: PlanEvent, state: MonthPlanState) -> tuple[str, str]:
    """The one-line "what" of a monthly plan's event and its "why", like `describe`."""

    def when(value: datetime) -> str:
        return local_text(value, state.policy.timezone)

    match event:
        case MonthPlanOpened():
            return f"Plan for {event.month} opened for rep {event.rep_id}; due {when(event.due_at)}", ""
        case MonthPlanSubmitted():
            count = len(event.visits)
            visits = f"{count} visit{'' if count == 1 else 's'}"
            timing = ", late" if event.late else ""
            findings = f", {len(event.findings)} finding(s)" if event.findings else ""
            return f"Plan submitted (revision {event.revision}{timing}): {visits}{findings}", event.note
        case MonthPlanReturned():
            return "Plan returned for changes", event.reason
        case MonthPlanApproved():
            declined = f", declined {', '.join(event.declined)}" if event.declined else ""
            return f"Plan approved: {', '.join(event.approved)}{declined}", event.comment
        case MonthPlanReminderSent():
            return (
                f"Reminder sent to {event.recipient.role.value} {event.recipient.id}: plan due "
                f"{when(event.due_at)}",
                event.message,
            )
        case MonthPlanEscalated():
            return (
                f"Escalated to {event.recipient.role.value} {event.recipient.id} (level {event.level}): "
                "plan overdue",
                event.message,
            )
        case PlannedVisitStarted():
            return f"Visit {event.visit_id} opened (workflow {event.workflow_id})", ""
        case PlannedVisitNotStarted():
            return f"Visit {event.visit_id} not opened ({event.rule})", event.reason
        case DeputyActed():
            return f"Acting as deputy for {event.for_id}, who is away", ""
    raise ValueError(f"no description for plan event type {event.type}")
