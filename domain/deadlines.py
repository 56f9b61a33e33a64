"""What a visit still owes, and when it is due: its concerns on the shared alarm ladder.

A visit's concerns (`domain.alarms.Concern`) are the plan's approval before the visit
time, the check-in after the visit, the report, and each promised item. Their reminders
and escalation steps are fixed instants computed from recorded times by `domain.alarms`,
so the workflow's timers, the read model and the auditor's replay all agree on them.
"""

from datetime import datetime, timedelta

from domain import alarms
from domain.actors import Role
from domain.alarms import Alarm, Chased, Concern
from domain.calendar import add_working_days
from domain.state import BEFORE_VISIT, ITEM_PREFIX, OPEN_PLAN, REPORT_MISSING, VisitState, VisitStatus

PLAN_APPROVAL = "plan_approval"
CHECK_IN = "check_in"
REPORT = "report"
REVIEW = "review"


def open_concerns(state: VisitState) -> list[Concern]:
    """The obligations still open on this visit, each with its deadline."""
    if state.closed:
        return []
    found: list[Concern] = []
    plan = state.plan
    policy = state.policy
    if state.status in OPEN_PLAN:
        found.append(
            Concern(
                PLAN_APPROVAL,
                plan.scheduled_start,
                state.manager_id,
                f"approval of the plan for the visit at {plan.customer.name}",
                policy.remind_plan_approval,
                Role.manager,
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
    if (
        state.status is VisitStatus.report_submitted
        and policy.review_working_days
        and state.report_submitted_at is not None
    ):
        found.append(
            Concern(
                REVIEW,
                add_working_days(state.report_submitted_at, policy.review_working_days, policy),
                state.manager_id,
                f"review of the report on the visit at {plan.customer.name}",
                True,
                Role.manager,
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


def chased(state: VisitState) -> Chased:
    """How far the visit's concerns have been chased, from its recorded reminders and escalations."""
    # Reminders recorded before they were counted were each the first of their deadline.
    reminders = {key: 1 for key in state.reminded} | state.reminders
    return Chased(reminders=reminders, levels=state.escalation_levels, repeats=state.escalation_repeats)


def next_alarm(state: VisitState, now: datetime) -> Alarm | None:
    """The earliest reminder or escalation still to come (or overdue) for this visit."""
    return alarms.next_alarm(open_concerns(state), chased(state), policy=state.policy, now=now)
