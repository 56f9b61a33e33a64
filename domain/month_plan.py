"""A rep's monthly visit plan as one durable stream, built the way a visit is.

每月底提出次月拜访计划: the rep submits the plan for a month (and may revise it until it is
approved); the manager approves all of it, approves part, or returns it with comments; a
plan still missing at its deadline is reminded and then escalated up the policy's ladder.
Every approved visit then opens as a visit of its own, already approved.

Pure, like `domain.decide`: commands, events, the state folded from them, the rules
(`decide`, `validate`), the deadline (`next_alarm`), the read-model row and the chain of
the plan's own log. Time, ids, the policy in force and the registry's review of a
submission are arguments, never looked up.
"""

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from domain import alarms
from domain.actors import Actor, Role
from domain.alarms import Alarm, Chased, Concern, check_escalation, check_reminder, escalation_recipient
from domain.authority import (
    check_deputy,
    may_open,
    refuse_auditor,
    refuse_engine,
    refuse_own_manager,
    require_approver,
    require_engine,
)
from domain.calendar import add_working_days, local_date, local_text, zone
from domain.chain import GENESIS_HASH
from domain.commands import CommandBase, Escalate, Reason, Remind, SubmitPlan, VisitId
from domain.customers import CustomerRecord
from domain.errors import RuleViolation
from domain.events import DeputyActed, EventBase
from domain.models import Customer, Frozen, Instant, Name, Plan
from domain.plan_checks import Finding, blocking, check_month_plan
from domain.planning import (
    Month,
    MonthPlanVisits,
    PlannedVisit,
    PlanRules,
    month_bounds,
    plan_due_day,
)
from domain.policy import Policy
from domain.stream import Recorded, Stream

PLAN_CONCERN = "month_plan"
"""The concern key of a missing plan (its reminders' and escalations' `concern`)."""

PLAN_REVIEW = "plan_review"
"""The concern key of a submitted plan waiting for the manager's review."""

MAX_VISITS = 500


def plan_id_of(rep_id: str, month: str) -> str:
    """The id of a rep's plan for a month: ``<rep_id>-<YYYY-MM>`` (one plan per rep and month)."""
    return f"{rep_id}-{month}"


def month_end(month: str, policy: Policy) -> datetime:
    """The end of `month` (the first instant of the month after) in the policy's time zone."""
    _, last = month_bounds(month)
    return datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone(policy.timezone))


def plan_due_at(month: str, rules: PlanRules, policy: Policy) -> datetime:
    """When the plan for `month` is due: the end of `plan_due_day` in the policy's time zone."""
    after = plan_due_day(month, rules) + timedelta(days=1)
    return datetime.combine(after, time(0), tzinfo=zone(policy.timezone))


# --- what crosses into the rules from outside -----------------------------------------------


class PlanSettings(Frozen):
    """The figures a new plan records in its first event and keeps to the end."""

    policy: Policy
    rules: PlanRules


class SubmissionReview(Frozen):
    """What the registry and the checks say of a submission, gathered before it is decided.

    `customers`: the rep's customers as a snapshot (id, name and tier only: contacts stay in
    the registry). `findings`: `domain.plan_checks.check_month_plan`'s findings.
    """

    customers: list[Customer] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)


def review_submission(
    plan: MonthPlanVisits,
    *,
    submitted_at: datetime,
    rules: PlanRules,
    policy: Policy,
    customers: Sequence[CustomerRecord],
    previous_plan: MonthPlanVisits | None,
    last_visits: Mapping[str, date],
) -> SubmissionReview:
    """The review of a submission, from what the registry and the logs hold (read beforehand).

    The checks run here, on the registry's records; only the snapshot of the rep's customers
    (no contacts) and the findings are kept.
    """
    findings = check_month_plan(
        plan,
        customers=customers,
        previous_plan=previous_plan,
        last_visits=last_visits,
        submitted_at=submitted_at,
        rules=rules,
        policy=policy,
    )
    owned = [Customer(id=r.id, name=r.name, tier=r.tier) for r in customers if r.owner_rep_id == plan.rep_id]
    return SubmissionReview(customers=owned, findings=findings)


# --- commands ---------------------------------------------------------------------------------


class OpenMonthPlan(CommandBase):
    """Open a rep's plan for a month; the deadline starts to run."""

    kind: Literal["open_month_plan"] = "open_month_plan"
    rep_id: Name
    manager_id: Name
    director_id: Name | None = None
    month: Month


class SubmitMonthPlan(CommandBase):
    """The rep submits the plan: the first submission and every revision until approval."""

    kind: Literal["submit_month_plan"] = "submit_month_plan"
    visits: list[PlannedVisit] = Field(max_length=MAX_VISITS)
    note: str = Field(default="", max_length=2_000)


class ApproveMonthPlan(CommandBase):
    """The manager approves the plan: every visit (`visit_ids` None) or the ones named."""

    kind: Literal["approve_month_plan"] = "approve_month_plan"
    visit_ids: list[Name] | None = Field(default=None, max_length=MAX_VISITS)
    comment: str = Field(default="", max_length=2_000)


class ReturnMonthPlan(CommandBase):
    """修改意见: the manager returns the plan to the rep for changes."""

    kind: Literal["return_month_plan"] = "return_month_plan"
    reason: Reason


class RecordVisitStarted(CommandBase):
    """Issued by the engine: an approved visit's workflow has been started."""

    kind: Literal["record_visit_started"] = "record_visit_started"
    visit_id: Name
    workflow_id: Name


class RecordVisitNotStarted(CommandBase):
    """Issued by the engine: an approved visit could not be opened (its id is taken, ...)."""

    kind: Literal["record_visit_not_started"] = "record_visit_not_started"
    visit_id: Name
    rule: Name
    reason: Reason


MonthPlanCommand = Annotated[
    OpenMonthPlan
    | SubmitMonthPlan
    | ApproveMonthPlan
    | ReturnMonthPlan
    | Remind
    | Escalate
    | RecordVisitStarted
    | RecordVisitNotStarted,
    Field(discriminator="kind"),
]


# --- events -----------------------------------------------------------------------------------


class MonthPlanOpened(EventBase):
    type: Literal["MonthPlanOpened"] = "MonthPlanOpened"
    plan_id: str
    rep_id: str
    manager_id: str
    director_id: str | None = None
    month: str
    due_at: Instant
    policy: Policy
    rules: PlanRules


class MonthPlanSubmitted(EventBase):
    """The plan as submitted, with the registry's snapshot of its customers and the findings."""

    type: Literal["MonthPlanSubmitted"] = "MonthPlanSubmitted"
    revision: int
    visits: list[PlannedVisit]
    customers: list[Customer]
    findings: list[Finding] = Field(default_factory=list)
    note: str = ""
    late: bool = False


class MonthPlanReturned(EventBase):
    type: Literal["MonthPlanReturned"] = "MonthPlanReturned"
    reason: str


class MonthPlanApproved(EventBase):
    type: Literal["MonthPlanApproved"] = "MonthPlanApproved"
    approved: list[str]
    declined: list[str] = Field(default_factory=list)
    comment: str = ""


class MonthPlanReminderSent(EventBase):
    """Version 2 names its `concern` (the missing plan, or its review) and counts its
    `repeat`; version 1 was always the first reminder of the missing plan."""

    schema_version: int = 2
    type: Literal["MonthPlanReminderSent"] = "MonthPlanReminderSent"
    recipient: Actor
    due_at: Instant
    message: str
    concern: str = "month_plan"
    repeat: int = 0


class MonthPlanEscalated(EventBase):
    """Version 2 names its `concern` and counts the `repeat` of the top rung; version 1 was
    always a rung of the missing plan told the first time."""

    schema_version: int = 2
    type: Literal["MonthPlanEscalated"] = "MonthPlanEscalated"
    level: int
    recipient: Actor
    due_at: Instant
    scheduled_for: Instant
    message: str
    concern: str = "month_plan"
    repeat: int = 0


class PlannedVisitStarted(EventBase):
    type: Literal["PlannedVisitStarted"] = "PlannedVisitStarted"
    visit_id: str
    workflow_id: str


class PlannedVisitNotStarted(EventBase):
    type: Literal["PlannedVisitNotStarted"] = "PlannedVisitNotStarted"
    visit_id: str
    rule: str
    reason: str


PlanEvent = Annotated[
    MonthPlanOpened
    | MonthPlanSubmitted
    | MonthPlanReturned
    | MonthPlanApproved
    | MonthPlanReminderSent
    | MonthPlanEscalated
    | PlannedVisitStarted
    | PlannedVisitNotStarted
    | DeputyActed,
    Field(discriminator="type"),
]

PLAN_NOTIFYING_EVENTS = ("MonthPlanReminderSent", "MonthPlanEscalated")
"""Plan event types that put a notification in the plans' outbox, in the same transaction."""


class RecordedPlanEvent(Recorded):
    """One row of the plans' log (`plan_events`): a plan's event in its envelope."""

    stream_field: ClassVar[str] = "plan_id"

    plan_id: str
    event: PlanEvent


# --- state ------------------------------------------------------------------------------------


class MonthPlanStatus(StrEnum):
    """Where a monthly plan stands."""

    awaiting_plan = "awaiting_plan"
    submitted = "submitted"
    returned = "returned"
    approved = "approved"


MISSING = (MonthPlanStatus.awaiting_plan, MonthPlanStatus.returned)
"""The statuses in which the rep owes a plan (its deadline runs)."""


class StartRefusal(Frozen):
    """Why an approved visit was not opened."""

    rule: str
    reason: str


class MonthPlanState(BaseModel):
    """Everything the rules need to know about one monthly plan, folded from its events."""

    model_config = ConfigDict(extra="forbid")

    plan_id: str
    status: MonthPlanStatus
    rep_id: str
    manager_id: str
    director_id: str | None = None
    month: str
    due_at: datetime
    policy: Policy
    rules: PlanRules
    opened_at: datetime
    revision: int = 0
    visits: list[PlannedVisit] = Field(default_factory=list)
    customers: dict[str, Customer] = Field(default_factory=dict)
    findings: list[Finding] = Field(default_factory=list)
    note: str = ""
    first_submitted_at: datetime | None = None
    submitted_at: datetime | None = None
    submitted_late: bool = False
    last_reason: str = ""
    approved_at: datetime | None = None
    approved_by: Actor | None = None
    approval_comment: str = ""
    approved: list[str] = Field(default_factory=list)
    declined: list[str] = Field(default_factory=list)
    started: dict[str, str] = Field(default_factory=dict)
    not_started: dict[str, StartRefusal] = Field(default_factory=dict)
    reminded: bool = False
    escalation_level: int = 0
    """How far the missing plan has been chased (`reminded`, `escalation_level`), and every
    concern's reminders, rung and repeats by key (the missing plan and its review)."""
    reminders: dict[str, int] = Field(default_factory=dict)
    escalation_levels: dict[str, int] = Field(default_factory=dict)
    escalation_repeats: dict[str, int] = Field(default_factory=dict)
    last_seq: int = 0
    head_hash: str = GENESIS_HASH
    updated_at: datetime

    def planned(self, visit_id: str) -> PlannedVisit | None:
        """The planned visit with this id, or None."""
        return next((v for v in self.visits if v.visit_id == visit_id), None)

    def pending_starts(self) -> list[str]:
        """Approved visits not yet started (nor refused), in the plan's order."""
        return [v for v in self.approved if v not in self.started and v not in self.not_started]

    @property
    def complete(self) -> bool:
        """Approved, and every approved visit started or reported as not started."""
        return self.status is MonthPlanStatus.approved and not self.pending_starts()

    def as_visits(self) -> MonthPlanVisits:
        """The plan's visits as `domain.planning` models them (the checks' input)."""
        return MonthPlanVisits(rep_id=self.rep_id, month=self.month, visits=self.visits)


def evolve(state: MonthPlanState | None, recorded: RecordedPlanEvent) -> MonthPlanState:
    """Apply one recorded event to the plan; the same fold serves workflow, store and auditor."""
    e = recorded.event
    at = recorded.occurred_at
    if isinstance(e, MonthPlanOpened):
        new = MonthPlanState(
            plan_id=e.plan_id,
            status=MonthPlanStatus.awaiting_plan,
            rep_id=e.rep_id,
            manager_id=e.manager_id,
            director_id=e.director_id,
            month=e.month,
            due_at=e.due_at,
            policy=e.policy,
            rules=e.rules,
            opened_at=at,
            updated_at=at,
        )
    else:
        if state is None:
            raise ValueError(f"event {recorded.seq} ({e.type}) comes before the plan was opened")
        if state.complete:
            # Its workflow ends there: nothing the engine writes comes after.
            raise ValueError(
                f"event {recorded.seq} ({e.type}) comes after the plan was complete (event {state.last_seq})"
            )
        new = state.model_copy(deep=True)
        _apply(new, recorded)
    new.last_seq = recorded.seq
    new.head_hash = recorded.hash
    new.updated_at = at
    return new


def _apply(s: MonthPlanState, recorded: RecordedPlanEvent) -> None:
    e = recorded.event
    at = recorded.occurred_at
    match e:
        case MonthPlanSubmitted():
            s.status = MonthPlanStatus.submitted
            s.revision = e.revision
            s.visits = list(e.visits)
            s.customers = {c.id: c for c in e.customers}
            s.findings = list(e.findings)
            s.note = e.note
            s.submitted_at = at
            if s.first_submitted_at is None:
                s.first_submitted_at = at
                s.submitted_late = e.late
            for chase in (s.reminders, s.escalation_levels, s.escalation_repeats):
                chase.pop(PLAN_REVIEW, None)  # each submission waits for its own review
        case MonthPlanReturned():
            s.status = MonthPlanStatus.returned
            s.last_reason = e.reason
        case MonthPlanApproved():
            s.status = MonthPlanStatus.approved
            s.approved_at = at
            s.approved_by = recorded.actor
            s.approval_comment = e.comment
            s.approved = list(e.approved)
            s.declined = list(e.declined)
        case MonthPlanReminderSent():
            s.reminded = s.reminded or e.concern == PLAN_CONCERN
            s.reminders[e.concern] = s.reminders.get(e.concern, 0) + 1
        case MonthPlanEscalated():
            if e.concern == PLAN_CONCERN:
                s.escalation_level = e.level
            s.escalation_levels[e.concern] = e.level
            s.escalation_repeats[e.concern] = e.repeat
        case PlannedVisitStarted():
            s.started[e.visit_id] = e.workflow_id
        case PlannedVisitNotStarted():
            s.not_started[e.visit_id] = StartRefusal(rule=e.rule, reason=e.reason)
        case DeputyActed():
            pass  # the who is on record; the authority was the absent manager's
        case _:
            raise ValueError(f"no rule to apply plan event type {e.type}")


def fold(events: Iterable[RecordedPlanEvent], state: MonthPlanState | None = None) -> MonthPlanState | None:
    """Fold plan events, in order, into the state they produce."""
    for recorded in events:
        state = evolve(state, recorded)
    return state


# --- the deadline -----------------------------------------------------------------------------


def plan_concerns(state: MonthPlanState) -> list[Concern]:
    """What the plan still waits on: the rep's plan while it is missing (not submitted, or
    returned), then the manager's review once submitted (when the policy chases reviews)."""
    if state.status in MISSING:
        return [Concern(PLAN_CONCERN, state.due_at, state.rep_id, f"visit plan for {state.month}")]
    days = state.policy.review_working_days
    if state.status is MonthPlanStatus.submitted and days and state.submitted_at is not None:
        due = add_working_days(state.submitted_at, days, state.policy)
        what = f"review of the visit plan of {state.rep_id} for {state.month}"
        return [Concern(PLAN_REVIEW, due, state.manager_id, what, True, Role.manager)]
    return []


def chased(state: MonthPlanState) -> Chased:
    """How far the plan's concerns have been chased (plans recorded before chasing was
    counted per concern hold only `reminded` and `escalation_level`, for the missing plan)."""
    old_reminder = {PLAN_CONCERN: 1} if state.reminded else {}
    old_level = {PLAN_CONCERN: state.escalation_level} if state.escalation_level else {}
    return Chased(
        reminders=old_reminder | state.reminders,
        levels=old_level | state.escalation_levels,
        repeats=state.escalation_repeats,
    )


def next_alarm(state: MonthPlanState, now: datetime) -> Alarm | None:
    """The next reminder or escalation of what the plan waits on, still to come or overdue.

    The plan is missing until submitted, and again once returned; the deadline is fixed at
    opening, so a plan returned after it is escalated further at once. A review still
    undone is chased until the planned month is over: approving its visits is pointless then.
    """
    alarm = alarms.next_alarm(plan_concerns(state), chased(state), policy=state.policy, now=now)
    if (
        alarm is not None
        and alarm.concern == PLAN_REVIEW
        and alarm.at >= month_end(state.month, state.policy)
    ):
        return None
    return alarm


# --- opening the approved visits -----------------------------------------------------------------


def visit_command_id(plan_id: str, visit_id: str) -> str:
    """The command id that opens an approved visit: derived, so a repeat is recognised."""
    readable = f"{plan_id}/{visit_id}"
    if len(readable) <= 200:
        return readable
    return "month-plan/" + hashlib.sha256(f"{plan_id}\n{visit_id}".encode()).hexdigest()


def visit_opening(state: MonthPlanState, visit_id: str) -> SubmitPlan:
    """The command that opens an approved visit of the plan, approved by the plan's approver."""
    visit = state.planned(visit_id)
    customer = state.customers.get(visit.customer_id) if visit else None
    if visit is None or customer is None or state.approved_by is None or visit_id not in state.approved:
        raise ValueError(f"visit {visit_id} is not an approved visit of plan {state.plan_id}")
    return SubmitPlan(
        command_id=visit_command_id(state.plan_id, visit_id),
        actor=Actor(id=state.rep_id, role=Role.rep),
        visit_id=visit_id,
        rep_id=state.rep_id,
        manager_id=state.manager_id,
        director_id=state.director_id,
        plan=Plan(
            customer=customer,
            scheduled_start=visit.scheduled_start,
            duration_minutes=visit.duration_minutes,
            method=visit.method,
            purpose=visit.purpose,
        ),
        approved_by=state.approved_by,
        approval_comment=state.approval_comment,
    )


# --- the rules --------------------------------------------------------------------------------

_STATUS_WORDS = {
    MonthPlanStatus.awaiting_plan: "no plan has been submitted yet",
    MonthPlanStatus.submitted: "it is waiting for approval",
    MonthPlanStatus.returned: "it was returned for changes and the rep has not resubmitted it",
    MonthPlanStatus.approved: "it is approved",
}

_VISIT_ID: TypeAdapter[str] = TypeAdapter(VisitId)


def _listed(ids: Iterable[str], limit: int = 10) -> str:
    items = list(ids)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _plan_words(s: MonthPlanState) -> str:
    return f"the plan of {s.rep_id} for {s.month}"


def _refuse_state(s: MonthPlanState, action: str, kind: str) -> RuleViolation:
    return RuleViolation(f"state.{kind}", f"Cannot {action} {_plan_words(s)}: {_STATUS_WORDS[s.status]}.")


def _require_approver(s: MonthPlanState, c: CommandBase, action: str, kind: str) -> None:
    require_approver(
        c.actor,
        s.manager_id,
        s.director_id,
        whose="plan's",
        action=action,
        kind=kind,
        on_behalf_of=c.on_behalf_of,
    )


def _require_engine(actor: Actor, kind: str) -> None:
    rule = "role.timer" if kind in ("remind", "escalate") else f"role.{kind}"
    require_engine(actor, rule, "Reminders, escalations and started visits are recorded by the engine only.")


def _open(command: OpenMonthPlan, now: datetime, settings: PlanSettings) -> list[PlanEvent]:
    actor = command.actor
    refuse_own_manager(command.rep_id, command.manager_id)
    # The engine opens every active rep's plan at the start of the month before it.
    if actor.role is not Role.system and not may_open(actor, command.rep_id, command.manager_id):
        raise RuleViolation(
            "role.open_month_plan",
            f"Only the rep ({command.rep_id}), their manager or a director may open the monthly plan; "
            f"{actor.id} acts as {actor.role}.",
        )
    policy = settings.policy
    _, last_day = month_bounds(command.month)
    if local_date(now, policy) > last_day:
        raise RuleViolation(
            "plan.month_over",
            f"{command.month} is over; monthly plans are made for the current month or one to come.",
        )
    return [
        MonthPlanOpened(
            plan_id=plan_id_of(command.rep_id, command.month),
            rep_id=command.rep_id,
            manager_id=command.manager_id,
            director_id=command.director_id,
            month=command.month,
            due_at=plan_due_at(command.month, settings.rules, policy),
            policy=policy,
            rules=settings.rules,
        )
    ]


def _check_submission(s: MonthPlanState, c: SubmitMonthPlan) -> None:
    """The submission rules that need no registry (a validator can judge them)."""
    if not (c.actor.role is Role.rep and c.actor.id == s.rep_id):
        raise RuleViolation(
            f"role.{c.kind}",
            f"Only the plan's rep ({s.rep_id}) may submit {_plan_words(s)}; "
            f"{c.actor.id} acts as {c.actor.role}.",
        )
    if s.status is MonthPlanStatus.approved:
        raise _refuse_state(s, "submit", c.kind)
    if not c.visits:
        raise RuleViolation("plan.empty", "A monthly plan lists at least one visit.")
    seen: set[str] = set()
    for visit in c.visits:
        if visit.visit_id in seen:
            raise RuleViolation(
                "plan.duplicate_visit_id",
                f"Visit id {visit.visit_id} appears twice in the plan; every planned visit needs its own id.",
            )
        seen.add(visit.visit_id)
        try:
            _VISIT_ID.validate_python(visit.visit_id)
        except ValidationError:
            raise RuleViolation(
                "plan.visit_id_invalid",
                f"Visit id {visit.visit_id!r} cannot name a visit: use up to 120 letters, digits and "
                "'.', '_', ':', '-', starting with a letter or digit.",
            ) from None


def _submit(
    s: MonthPlanState, c: SubmitMonthPlan, now: datetime, review: SubmissionReview
) -> list[PlanEvent]:
    _check_submission(s, c)
    stopping = blocking(review.findings)
    if stopping:
        lines = "; ".join(f"{f.message} ({f.rule})" for f in stopping[:10])
        more = f"; and {len(stopping) - 10} more" if len(stopping) > 10 else ""
        raise RuleViolation(
            "plan.findings",
            f"The plan cannot be submitted: {len(stopping)} finding(s) block it: {lines}{more}.",
        )
    known = {customer.id: customer for customer in review.customers}
    snapshot: dict[str, Customer] = {}
    for visit in c.visits:
        customer = known.get(visit.customer_id)
        if customer is None:
            raise RuleViolation(
                "plan.unknown_customer",
                f"Visit {visit.visit_id} is with customer {visit.customer_id}, who is not among "
                f"{s.rep_id}'s customers in the registry.",
            )
        snapshot.setdefault(customer.id, customer)
    return [
        MonthPlanSubmitted(
            revision=s.revision + 1,
            visits=c.visits,
            customers=list(snapshot.values()),
            findings=review.findings,
            note=c.note,
            late=now > s.due_at,
        )
    ]


def _approve(s: MonthPlanState, c: ApproveMonthPlan, now: datetime) -> list[PlanEvent]:
    _require_approver(s, c, "approve " + _plan_words(s), c.kind)
    if s.status is not MonthPlanStatus.submitted:
        raise _refuse_state(s, "approve", c.kind)
    planned = [v.visit_id for v in s.visits]
    if c.visit_ids is None:
        chosen = set(planned)
    else:
        chosen = set(c.visit_ids)
        unknown = sorted(chosen - set(planned))
        if unknown:
            raise RuleViolation(
                "plan.unknown_visit",
                f"{_plan_words(s).capitalize()} has no visit {_listed(unknown)}; approve visits it plans.",
            )
        if not chosen:
            raise RuleViolation(
                "plan.approve_none", "Name at least one visit to approve, or return the plan with a reason."
            )
    passed = [v.visit_id for v in s.visits if v.visit_id in chosen and v.scheduled_start <= now]
    if passed:
        raise RuleViolation(
            "plan.approval_after_visit_time",
            f"The time of visit(s) {_listed(passed)} has passed; approve the other visits by naming "
            "them, and plan the passed ones anew.",
        )
    return [
        MonthPlanApproved(
            approved=[v for v in planned if v in chosen],
            declined=[v for v in planned if v not in chosen],
            comment=c.comment,
        )
    ]


def _return(s: MonthPlanState, c: ReturnMonthPlan, now: datetime) -> list[PlanEvent]:
    _require_approver(s, c, "return " + _plan_words(s), c.kind)
    if s.status is not MonthPlanStatus.submitted:
        raise _refuse_state(s, "return", c.kind)
    return [MonthPlanReturned(reason=c.reason)]


def _missing_words(s: MonthPlanState) -> str:
    if s.status is MonthPlanStatus.returned:
        return "was returned for changes and has not been resubmitted"
    return "has not been submitted"


def _concern(s: MonthPlanState, key: str) -> Concern | None:
    return next((c for c in plan_concerns(s) if c.key == key), None)


def _remind(s: MonthPlanState, c: Remind, now: datetime) -> list[PlanEvent]:
    _require_engine(c.actor, c.kind)
    due = check_reminder(c, _concern(s, c.concern), chased(s), policy=s.policy, now=now)
    by = local_text(due.due_at, s.policy.timezone)
    message = (
        f"Reminder: your visit plan for {s.month} is due by {by}."
        if due.key == PLAN_CONCERN
        else f"Reminder: the {due.what} is due by {by}."
    )
    return [
        MonthPlanReminderSent(
            recipient=Actor(id=due.owner_id, role=due.owner_role),
            due_at=due.due_at,
            message=message,
            concern=due.key,
            repeat=c.repeat,
        )
    ]


def _escalate(s: MonthPlanState, c: Escalate, now: datetime) -> list[PlanEvent]:
    _require_engine(c.actor, c.kind)
    due, scheduled = check_escalation(c, _concern(s, c.concern), chased(s), policy=s.policy, now=now)
    by = local_text(due.due_at, s.policy.timezone)
    overdue = "Still overdue" if c.repeat else "Overdue"
    message = (
        f"{overdue}: the visit plan of {s.rep_id} for {s.month} was due by {by} and {_missing_words(s)}."
        if due.key == PLAN_CONCERN
        else f"{overdue}: the {due.what} (owed by {due.owner_id}) was due by {by} and is still missing."
    )
    return [
        MonthPlanEscalated(
            level=c.level,
            recipient=escalation_recipient(
                s.policy, c.level, manager_id=s.manager_id, director_id=s.director_id
            ),
            due_at=due.due_at,
            scheduled_for=scheduled,
            message=message,
            concern=due.key,
            repeat=c.repeat,
        )
    ]


def _require_pending_start(s: MonthPlanState, c: RecordVisitStarted | RecordVisitNotStarted) -> None:
    _require_engine(c.actor, c.kind)
    if s.status is not MonthPlanStatus.approved or c.visit_id not in s.approved:
        raise RuleViolation(
            "plan.visit_not_approved", f"Visit {c.visit_id} is not an approved visit of this plan."
        )
    if c.visit_id in s.started or c.visit_id in s.not_started:
        raise RuleViolation("plan.visit_already_recorded", f"Visit {c.visit_id}'s start is already recorded.")


def _started(s: MonthPlanState, c: RecordVisitStarted, now: datetime) -> list[PlanEvent]:
    _require_pending_start(s, c)
    return [PlannedVisitStarted(visit_id=c.visit_id, workflow_id=c.workflow_id)]


def _not_started(s: MonthPlanState, c: RecordVisitNotStarted, now: datetime) -> list[PlanEvent]:
    _require_pending_start(s, c)
    return [PlannedVisitNotStarted(visit_id=c.visit_id, rule=c.rule, reason=c.reason)]


_RULES: dict[type, Callable[..., list[PlanEvent]]] = {
    ApproveMonthPlan: _approve,
    ReturnMonthPlan: _return,
    Remind: _remind,
    Escalate: _escalate,
    RecordVisitStarted: _started,
    RecordVisitNotStarted: _not_started,
}


def _common(state: MonthPlanState | None, command: CommandBase) -> MonthPlanState | None:
    """The rules every command passes first; returns the state (None only for an opening)."""
    actor = command.actor
    refuse_auditor(actor, "plans")
    if isinstance(command, OpenMonthPlan):
        if state is not None:
            raise RuleViolation(
                "plan.exists", f"The plan of {state.rep_id} for {state.month} is already open."
            )
        return None
    if state is None:
        raise RuleViolation("plan.unknown", "This monthly plan has not been opened.")
    engine_only = isinstance(command, Remind | Escalate | RecordVisitStarted | RecordVisitNotStarted)
    refuse_engine(actor, engine_only, "The engine only issues reminders, escalations and visit starts.")
    check_deputy(actor, command.on_behalf_of, state.manager_id)
    return state


def validate(state: MonthPlanState | None, command: MonthPlanCommand, now: datetime) -> None:
    """Refuse (`RuleViolation`) what can be judged without the registry's review.

    Everything `decide` refuses, except a submission's findings and its customers' presence in
    the registry, which need the review. An update's validator runs this.
    """
    if isinstance(command, OpenMonthPlan):
        raise ValueError("an opening is decided with the settings in force: use decide")
    s = _common(state, command)
    if s is None:
        return
    if isinstance(command, SubmitMonthPlan):
        _check_submission(s, command)
        return
    _RULES[type(command)](s, command, now)


def decide(
    state: MonthPlanState | None,
    command: MonthPlanCommand,
    now: datetime,
    *,
    settings: PlanSettings | None = None,
    review: SubmissionReview | None = None,
) -> list[PlanEvent]:
    """The events `command` produces at `now`, or a `RuleViolation` naming the refusing rule.

    `settings` (the policy and plan rules) are needed to open a plan; an open plan keeps the
    ones it was opened with. `review` is needed to submit: the registry's customers and the
    checks' findings (a blocking finding refuses the submission as `plan.findings`).
    """
    s = _common(state, command)
    if isinstance(command, OpenMonthPlan):
        if settings is None:
            raise ValueError("opening a plan needs the settings in force")
        return _open(command, now, settings)
    if s is None:
        raise RuleViolation("plan.unknown", "This monthly plan has not been opened.")
    if isinstance(command, SubmitMonthPlan):
        if review is None:
            raise ValueError("a submission is decided with the registry's review")
        return _submit(s, command, now, review)
    events = _RULES[type(command)](s, command, now)
    if command.on_behalf_of is not None:
        return [DeputyActed(for_id=command.on_behalf_of), *events]
    return events


# --- the read model ---------------------------------------------------------------------------


class MonthPlanSummary(Frozen):
    """One row of the `month_plans` read model (rebuilt from the plan's events at any time)."""

    plan_id: str
    rep_id: str
    manager_id: str
    director_id: str | None
    month: str
    status: MonthPlanStatus
    revision: int
    planned: int
    approved: int
    declined: int
    started: int
    not_started: int
    due_at: datetime
    submitted_at: datetime | None
    late: bool
    reminded: bool
    escalation_level: int
    last_seq: int
    head_hash: str
    updated_at: datetime


def summarize_plan(state: MonthPlanState) -> MonthPlanSummary:
    """The read-model row for `state`."""
    return MonthPlanSummary(
        plan_id=state.plan_id,
        rep_id=state.rep_id,
        manager_id=state.manager_id,
        director_id=state.director_id,
        month=state.month,
        status=state.status,
        revision=state.revision,
        planned=len(state.visits),
        approved=len(state.approved),
        declined=len(state.declined),
        started=len(state.started),
        not_started=len(state.not_started),
        due_at=state.due_at,
        submitted_at=state.submitted_at,
        late=state.submitted_late,
        reminded=state.reminded,
        escalation_level=state.escalation_level,
        last_seq=state.last_seq,
        head_hash=state.head_hash,
        updated_at=state.updated_at,
    )


# --- the stream -------------------------------------------------------------------------------


def _decide_alarm(state: MonthPlanState, alarm: Alarm, now: datetime) -> list[PlanEvent]:
    return decide(state, alarm.command(), now)


PLANS: Stream[MonthPlanState, RecordedPlanEvent] = Stream(
    name="plan",
    envelope=RecordedPlanEvent,
    evolve=evolve,
    next_alarm=next_alarm,
    decide_alarm=_decide_alarm,
    closed=lambda state: state.complete,
)
"""The monthly plan stream: one per rep and month, its log `plan_events`."""
