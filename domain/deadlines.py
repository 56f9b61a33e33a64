"""What a visit still owes, when it is due, and when the engine must remind or escalate.

A *concern* is one open obligation with a deadline: the plan's approval before the visit
time, the check-in after the visit, the report, each promised item. Its reminder and its
escalation steps are fixed instants computed from recorded times, so the workflow's
timers, the read model and the auditor's replay all agree on them.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.actors import Role
from domain.alarms import Alarm, AlarmKind
from domain.state import BEFORE_VISIT, ITEM_PREFIX, OPEN_PLAN, REPORT_MISSING, VisitState, VisitStatus

PLAN_APPROVAL = "plan_approval"
CHECK_IN = "check_in"
REPORT = "report"


@dataclass(frozen=True)
class Concern:
    """One open obligation: its key, deadline, who owes it, and whether to remind first."""

    key: str
    due_at: datetime
    owner_id: str
    what: str
    remind: bool


def open_concerns(state: VisitState) -> list[Concern]:
    """The obligations still open on this visit, each with its deadline."""
    if state.closed:
        return []
    found: list[Concern] = []
    plan = state.plan
    if state.status in OPEN_PLAN:
        found.append(
            Concern(
                PLAN_APPROVAL,
                plan.scheduled_start,
                state.manager_id,
                f"approval of the plan for the visit at {plan.customer.name}",
                False,
            )
        )
    if state.status is VisitStatus.approved:
        due = plan.scheduled_start + timedelta(minutes=plan.duration_minutes) + state.policy.check_in_grace
        found.append(
            Concern(CHECK_IN, due, state.rep_id, f"check-in of the visit at {plan.customer.name}", False)
        )
    if state.status in REPORT_MISSING and state.report_due_at is not None:
        found.append(
            Concern(
                REPORT,
                state.report_due_at,
                state.rep_id,
                f"report on the visit at {plan.customer.name}",
                True,
            )
        )
    if state.status not in BEFORE_VISIT:
        for item in state.open_items():
            found.append(
                Concern(
                    ITEM_PREFIX + item.item_id,
                    item.due_at,
                    item.owner_id,
                    f"promised item {item.item_id!r} ({item.description})",
                    True,
                )
            )
    return found


def concern(state: VisitState, key: str) -> Concern | None:
    """The open concern with this key, or None when it is resolved or never existed."""
    return next((c for c in open_concerns(state) if c.key == key), None)


def reminder_at(state: VisitState, c: Concern) -> datetime | None:
    """When to remind the owner of `c`, or None when the policy or concern has no reminder."""
    before = state.policy.reminder_before
    if not c.remind or not before:
        return None
    return c.due_at - before


def escalation_at(state: VisitState, c: Concern, level: int) -> datetime:
    """When escalation `level` (1 = first rung) of concern `c` is due."""
    step = state.policy.escalation_ladder[level - 1]
    return c.due_at + step.after


def escalation_recipient(state: VisitState, level: int) -> tuple[str, Role]:
    """Who receives escalation `level`: the visit's manager, then its director."""
    role = state.policy.escalation_ladder[level - 1].role
    if role is Role.director:
        # A visit started without a named director escalates to the directors' group.
        return state.director_id or "directors", role
    return state.manager_id, role


def next_alarm(state: VisitState, now: datetime) -> Alarm | None:
    """The earliest reminder or escalation still to come (or overdue) for this visit.

    A reminder whose deadline has already passed is skipped: the escalation says more.
    """
    alarms: list[Alarm] = []
    ladder = len(state.policy.escalation_ladder)
    for c in open_concerns(state):
        remind = reminder_at(state, c)
        if remind is not None and c.key not in state.reminded and now < c.due_at:
            alarms.append(Alarm(remind, AlarmKind.remind, c.key))
        level = state.escalation_levels.get(c.key, 0) + 1
        if level <= ladder:
            alarms.append(Alarm(escalation_at(state, c, level), AlarmKind.escalate, c.key, level))
    return min(alarms, key=lambda a: (a.at, a.kind != AlarmKind.escalate, a.concern), default=None)
