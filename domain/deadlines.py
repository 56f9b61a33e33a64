"""What a visit still owes, and when it is due: its concerns on the shared alarm ladder.

A visit's concerns (`domain.alarms.Concern`) are the plan's approval before the visit
time, the check-in after the visit, the report, and each promised item. Their reminders
and escalation steps are fixed instants computed from recorded times by `domain.alarms`,
so the workflow's timers, the read model and the auditor's replay all agree on them.
"""

from datetime import datetime, timedelta

from domain import alarms
from domain.alarms import Alarm, Concern
from domain.state import BEFORE_VISIT, ITEM_PREFIX, OPEN_PLAN, REPORT_MISSING, VisitState, VisitStatus

PLAN_APPROVAL = "plan_approval"
CHECK_IN = "check_in"
REPORT = "report"


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


def next_alarm(state: VisitState, now: datetime) -> Alarm | None:
    """The earliest reminder or escalation still to come (or overdue) for this visit."""
    return alarms.next_alarm(
        open_concerns(state),
        reminded=state.reminded,
        levels=state.escalation_levels,
        policy=state.policy,
        now=now,
    )
