"""The rules: `decide(state, command, now, policy)` returns the events a command produces.

Pure and total: it reads nothing but its arguments and either returns events or raises a
`RuleViolation` naming the rule that refused the command. The workflow's update
validators, its timers, the tests and the auditor all go through this one function.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from domain.actors import Actor, CommandBase, Role
from domain.alarms import check_escalation, check_reminder, escalation_recipient
from domain.authority import (
    check_deputy,
    is_approver,
    may_open,
    refuse_auditor,
    refuse_engine,
    refuse_own_manager,
    require_approver,
    require_engine,
)
from domain.calendar import latest_plan_day, local_date, local_text, report_deadline
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
from domain.deadlines import chased, concern
from domain.errors import RuleViolation
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
    ReminderSent,
    ReportAccepted,
    ReportReturned,
    ReportSubmitted,
    ReportWaived,
    VisitCancelled,
    VisitCheckedIn,
    VisitClosed,
    VisitOutcome,
    VisitRescheduled,
)
from domain.models import ItemStatus, PromisedItem
from domain.policy import Policy
from domain.state import BEFORE_VISIT, OPEN_PLAN, REPORT_MISSING, VisitState, VisitStatus

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a reported visit end may lie (clients' clocks drift)."""

MAX_VISIT_LENGTH = timedelta(hours=24)

_STATUS_WORDS = {
    VisitStatus.awaiting_approval: "its plan is waiting for approval",
    VisitStatus.returned_for_changes: "its plan was returned for changes",
    VisitStatus.approved: "it is approved and has not been checked in",
    VisitStatus.awaiting_report: "it is waiting for the report",
    VisitStatus.report_submitted: "its report is waiting for review",
    VisitStatus.report_returned: "its report was returned for revision",
    VisitStatus.following_up: "its promised items are being followed up",
    VisitStatus.closed: "it is closed",
}


def _refuse_state(state: VisitState, action: str, kind: str) -> RuleViolation:
    return RuleViolation(
        f"state.{kind}",
        f"Cannot {action} on visit {state.visit_id}: {_STATUS_WORDS[state.status]}.",
    )


def _is_rep(state: VisitState, actor: Actor) -> bool:
    return actor.role is Role.rep and actor.id == state.rep_id


def _is_approver(state: VisitState, actor: Actor, on_behalf_of: str | None = None) -> bool:
    return is_approver(actor, state.manager_id, state.director_id, on_behalf_of)


def _require_rep(state: VisitState, actor: Actor, action: str, kind: str) -> None:
    if not _is_rep(state, actor):
        raise RuleViolation(
            f"role.{kind}",
            f"Only the visit's rep ({state.rep_id}) may {action}; {actor.id} acts as {actor.role}.",
        )


def _require_approver(state: VisitState, c: CommandBase, action: str, kind: str) -> None:
    require_approver(
        c.actor,
        state.manager_id,
        state.director_id,
        whose="visit's",
        action=action,
        kind=kind,
        on_behalf_of=c.on_behalf_of,
    )


def _require_rep_or_approver(state: VisitState, c: CommandBase, action: str, kind: str) -> None:
    actor = c.actor
    if not (_is_rep(state, actor) or _is_approver(state, actor, c.on_behalf_of)):
        raise RuleViolation(
            f"role.{kind}",
            f"Only the visit's rep ({state.rep_id}), its manager ({state.manager_id}) or a "
            f"director may {action}; {actor.id} acts as {actor.role}.",
        )


def _require_status(state: VisitState, allowed: tuple[VisitStatus, ...], action: str, kind: str) -> None:
    if state.status not in allowed:
        raise _refuse_state(state, action, kind)


def _check_schedule(plan_start: datetime, now: datetime, policy: Policy, pre_approved: bool) -> None:
    if plan_start <= now:
        raise RuleViolation(
            "plan.in_past",
            f"The visit time {local_text(plan_start, policy.timezone)} has already passed; "
            "plan visits for a time still to come.",
        )
    days = policy.plan_lead_working_days
    if pre_approved or days == 0:
        return
    latest = latest_plan_day(plan_start, policy)
    if local_date(now, policy) > latest:
        raise RuleViolation(
            "plan.lead_time",
            f"A plan must reach the manager at least {days} working day(s) before the visit; "
            f"for a visit on {local_date(plan_start, policy)} it was due by {latest}.",
        )


def _submit(command: SubmitPlan, now: datetime, policy: Policy) -> list[Event]:
    actor = command.actor
    refuse_own_manager(command.rep_id, command.manager_id)
    if not may_open(actor, command.rep_id, command.manager_id):
        raise RuleViolation(
            "role.submit_plan",
            f"Only the visit's rep ({command.rep_id}), its manager or a director may submit "
            f"its plan; {actor.id} acts as {actor.role}.",
        )
    approver = command.approved_by
    if approver is not None and not is_approver(approver, command.manager_id, command.director_id):
        raise RuleViolation(
            "role.approve_plan",
            f"A plan can only be approved by the visit's manager ({command.manager_id}) "
            f"or a director; {approver.id} acts as {approver.role}.",
        )
    _check_schedule(command.plan.scheduled_start, now, policy, pre_approved=approver is not None)
    events: list[Event] = [
        PlanSubmitted(
            visit_id=command.visit_id,
            rep_id=command.rep_id,
            manager_id=command.manager_id,
            director_id=command.director_id,
            plan=command.plan,
            policy=policy,
        )
    ]
    if approver is not None:
        events.append(PlanApproved(comment=command.approval_comment, approved_by=approver))
    return events


def _revise(s: VisitState, c: RevisePlan, now: datetime) -> list[Event]:
    _require_rep(s, c.actor, "revise the plan", c.kind)
    _require_status(s, OPEN_PLAN, "revise the plan", c.kind)
    if c.plan.customer.id != s.plan.customer.id:
        raise RuleViolation(
            "plan.customer_fixed",
            f"A revised plan must be for the same customer ({s.plan.customer.id}); "
            "plan a new visit for another customer.",
        )
    _check_schedule(c.plan.scheduled_start, now, s.policy, pre_approved=False)
    return [PlanRevised(plan=c.plan, revision=s.plan_revision + 1, note=c.note)]


def _approve(s: VisitState, c: ApprovePlan, now: datetime) -> list[Event]:
    _require_approver(s, c, "approve the plan", c.kind)
    if s.status is VisitStatus.returned_for_changes:
        raise RuleViolation(
            "state.approve_plan",
            f"Cannot approve the plan on visit {s.visit_id}: it was returned for changes "
            "and the rep has not resubmitted it.",
        )
    _require_status(s, (VisitStatus.awaiting_approval,), "approve the plan", c.kind)
    if now >= s.plan.scheduled_start:
        raise RuleViolation(
            "plan.approval_after_visit_time",
            f"The visit time {local_text(s.plan.scheduled_start, s.policy.timezone)} has passed without "
            "approval; the visit must be rescheduled before it can be approved.",
        )
    return [PlanApproved(comment=c.comment)]


def _reject(s: VisitState, c: RejectPlan, now: datetime) -> list[Event]:
    _require_approver(s, c, "reject the plan", c.kind)
    _require_status(s, OPEN_PLAN, "reject the plan", c.kind)
    return [PlanRejected(reason=c.reason), VisitClosed(outcome=VisitOutcome.rejected)]


def _return_plan(s: VisitState, c: ReturnPlan, now: datetime) -> list[Event]:
    _require_approver(s, c, "return the plan", c.kind)
    _require_status(s, (VisitStatus.awaiting_approval,), "return the plan", c.kind)
    return [PlanReturned(reason=c.reason)]


def _reschedule(s: VisitState, c: Reschedule, now: datetime) -> list[Event]:
    _require_rep_or_approver(s, c, "reschedule the visit", c.kind)
    _require_status(s, BEFORE_VISIT, "reschedule the visit", c.kind)
    duration = c.duration_minutes or s.plan.duration_minutes
    if c.scheduled_start == s.plan.scheduled_start and duration == s.plan.duration_minutes:
        raise RuleViolation(
            "plan.reschedule_unchanged",
            "The new time is the same as the planned one; nothing to reschedule.",
        )
    _check_schedule(c.scheduled_start, now, s.policy, pre_approved=False)
    return [
        VisitRescheduled(
            previous_start=s.plan.scheduled_start,
            scheduled_start=c.scheduled_start,
            duration_minutes=duration,
            reason=c.reason,
        )
    ]


def _cancel(s: VisitState, c: CancelVisit, now: datetime) -> list[Event]:
    _require_rep_or_approver(s, c, "cancel the visit", c.kind)
    _require_status(s, BEFORE_VISIT, "cancel the visit", c.kind)
    return [VisitCancelled(reason=c.reason), VisitClosed(outcome=VisitOutcome.cancelled)]


def _check_in(s: VisitState, c: CheckIn, now: datetime) -> list[Event]:
    _require_rep(s, c.actor, "check in", c.kind)
    if s.status in OPEN_PLAN:
        raise RuleViolation(
            "state.check_in",
            f"Cannot check in on visit {s.visit_id}: only approved visits are executed, "
            f"and {_STATUS_WORDS[s.status]}.",
        )
    _require_status(s, (VisitStatus.approved,), "check in", c.kind)
    ex = c.execution
    if ex.ended_at <= ex.started_at:
        raise RuleViolation("visit.times_order", "The visit must end after it starts.")
    if ex.ended_at - ex.started_at > MAX_VISIT_LENGTH:
        raise RuleViolation("visit.too_long", "A visit cannot last more than 24 hours.")
    if ex.ended_at > now + CLOCK_SKEW:
        raise RuleViolation(
            "visit.end_in_future",
            f"The visit's end ({local_text(ex.ended_at, s.policy.timezone)}) is in the future; "
            "check in after the visit has ended.",
        )
    if s.approved_at is not None and ex.started_at < s.approved_at and ex.started_at < s.plan.scheduled_start:
        raise RuleViolation(
            "visit.before_approval",
            "The visit is recorded as starting before its plan was approved; "
            "only approved visits are executed.",
        )
    # The report deadline runs from the recorded end of the visit, not from check-in time.
    due = report_deadline(min(ex.ended_at, now), s.policy)
    return [VisitCheckedIn(execution=ex, report_due_at=due)]


def _submit_report(s: VisitState, c: SubmitReport, now: datetime) -> list[Event]:
    _require_rep(s, c.actor, "submit the report", c.kind)
    _require_status(s, REPORT_MISSING, "submit the report", c.kind)
    if s.report_due_at is None or s.execution is None:
        raise _refuse_state(s, "submit the report", c.kind)
    items: list[PromisedItem] = []
    seen: set[str] = set()
    for n, promised in enumerate(c.report.promised_items, start=1):
        item_id = promised.item_id or f"item-{n}"
        if item_id in seen:
            raise RuleViolation(
                "report.item_ids_unique",
                f"Promised item id {item_id!r} appears twice in the report.",
            )
        seen.add(item_id)
        if promised.due_at <= s.execution.ended_at:
            raise RuleViolation(
                "report.item_due_after_visit",
                f"Promised item {item_id!r} is due before the visit ended; give it a due date "
                "after the visit.",
            )
        earlier = s.items.get(item_id)
        if earlier is not None and earlier.status is ItemStatus.completed:
            # A revised report does not reopen a promise already kept.
            items.append(earlier)
            continue
        items.append(
            PromisedItem(
                item_id=item_id,
                description=promised.description,
                owner_id=promised.owner_id,
                due_at=promised.due_at,
            )
        )
    return [
        ReportSubmitted(
            report=c.report,
            revision=s.report_revision + 1,
            due_at=s.report_due_at,
            late=now > s.report_due_at,
            items=items,
        )
    ]


def _closing(s: VisitState, open_after: int) -> list[Event]:
    if open_after:
        return []
    outcome = VisitOutcome.report_waived if s.report_waived else VisitOutcome.completed
    return [VisitClosed(outcome=outcome)]


def _accept(s: VisitState, c: AcceptReport, now: datetime) -> list[Event]:
    _require_approver(s, c, "accept the report", c.kind)
    _require_status(s, (VisitStatus.report_submitted,), "accept the report", c.kind)
    return [ReportAccepted(comment=c.comment), *_closing(s, len(s.open_items()))]


def _return_report(s: VisitState, c: ReturnReport, now: datetime) -> list[Event]:
    _require_approver(s, c, "return the report", c.kind)
    _require_status(s, (VisitStatus.report_submitted,), "return the report", c.kind)
    # The revision is due a full report period after the return, counted from now.
    return [ReportReturned(reason=c.reason, report_due_at=report_deadline(now, s.policy))]


def _waive(s: VisitState, c: WaiveReport, now: datetime) -> list[Event]:
    _require_approver(s, c, "waive the report", c.kind)
    _require_status(s, REPORT_MISSING, "waive the report", c.kind)
    waived = s.model_copy(update={"report_waived": True})
    return [ReportWaived(reason=c.reason), *_closing(waived, len(s.open_items()))]


def _complete_item(s: VisitState, c: CompleteItem, now: datetime) -> list[Event]:
    item = s.items.get(c.item_id)
    if item is None:
        raise RuleViolation("item.unknown", f"Visit {s.visit_id} has no promised item {c.item_id!r}.")
    if not (_is_rep(s, c.actor) or (c.actor.id == item.owner_id and c.actor.role is not Role.auditor)):
        raise RuleViolation(
            "role.complete_item",
            f"Only the visit's rep ({s.rep_id}) or the item's owner ({item.owner_id}) may "
            f"complete promised item {c.item_id!r}; {c.actor.id} acts as {c.actor.role}.",
        )
    if item.status is ItemStatus.completed:
        raise RuleViolation("item.already_completed", f"Promised item {c.item_id!r} is already completed.")
    events: list[Event] = [
        PromisedItemCompleted(
            item_id=c.item_id,
            resolution=c.resolution,
            customer_reply=c.customer_reply,
            late=now > item.due_at,
        )
    ]
    if s.report_accepted or s.report_waived:
        events += _closing(s, len(s.open_items()) - 1)
    return events


def _require_engine(actor: Actor) -> None:
    require_engine(actor, "role.timer", "Reminders and escalations are issued by the engine's timers only.")


def _remind(s: VisitState, c: Remind, now: datetime) -> list[Event]:
    _require_engine(c.actor)
    due = check_reminder(c, concern(s, c.concern), chased(s), policy=s.policy, now=now)
    return [
        ReminderSent(
            concern=c.concern,
            recipient=Actor(id=due.owner_id, role=due.owner_role),
            due_at=due.due_at,
            message=f"Reminder: the {due.what} is due by {local_text(due.due_at, s.policy.timezone)}.",
            repeat=c.repeat,
        )
    ]


def _escalate(s: VisitState, c: Escalate, now: datetime) -> list[Event]:
    _require_engine(c.actor)
    due, at = check_escalation(c, concern(s, c.concern), chased(s), policy=s.policy, now=now)
    return [
        Escalated(
            concern=c.concern,
            level=c.level,
            recipient=escalation_recipient(
                s.policy, c.level, manager_id=s.manager_id, director_id=s.director_id
            ),
            due_at=due.due_at,
            scheduled_for=at,
            message=(
                f"{'Still overdue' if c.repeat else 'Overdue'}: the {due.what} (owed by {due.owner_id}) "
                f"was due by {local_text(due.due_at, s.policy.timezone)} and is still missing."
            ),
            repeat=c.repeat,
        )
    ]


# Each rule takes its own command type; `decide` looks it up by the command's class.
_RULES: dict[type, Callable[..., list[Event]]] = {
    RevisePlan: _revise,
    ApprovePlan: _approve,
    RejectPlan: _reject,
    ReturnPlan: _return_plan,
    Reschedule: _reschedule,
    CancelVisit: _cancel,
    CheckIn: _check_in,
    SubmitReport: _submit_report,
    AcceptReport: _accept,
    ReturnReport: _return_report,
    WaiveReport: _waive,
    CompleteItem: _complete_item,
    Remind: _remind,
    Escalate: _escalate,
}


def decide(state: VisitState | None, command: Command, now: datetime, policy: Policy) -> list[Event]:
    """The events `command` produces at `now`, or a `RuleViolation` naming the refusing rule.

    `policy` applies to a new visit; an existing visit keeps the policy it was started with.
    """
    actor = command.actor
    refuse_auditor(actor, "visits")
    if isinstance(command, SubmitPlan):
        if command.on_behalf_of is not None:
            raise RuleViolation(
                "role.deputy", "A visit is opened by its own rep, manager or a director, not by a deputy."
            )
        if state is not None:
            raise RuleViolation("visit.exists", f"Visit {state.visit_id} already exists; it has a plan.")
        return _submit(command, now, policy)
    if state is None:
        raise RuleViolation("visit.unknown", "This visit has no plan yet; submit its plan first.")
    if state.closed:
        outcome = state.outcome.value.replace("_", " ") if state.outcome else "closed"
        raise RuleViolation(
            "state.closed",
            f"Visit {state.visit_id} is closed ({outcome}); nothing more can be recorded on it.",
        )
    engine_only = isinstance(command, Remind | Escalate)
    refuse_engine(actor, engine_only, "The engine only issues reminders and escalations.")
    check_deputy(actor, command.on_behalf_of, state.manager_id)
    events = _RULES[type(command)](state, command, now)
    if command.on_behalf_of is not None:
        return [DeputyActed(for_id=command.on_behalf_of), *events]
    return events
