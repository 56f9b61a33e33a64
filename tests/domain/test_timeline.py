"""The auditor's timeline: who did what, when and why, and the visit at any past moment."""

from datetime import datetime, timedelta

import pytest

from domain.actors import Role
from domain.month_plan import MonthPlanStatus
from domain.state import VisitStatus, fold
from domain.timeline import concern_text, plan_steps, state_as_of, timeline
from tests.domain.support import (
    APPROVED_AT,
    CHECKED_IN_AT,
    ENGINE,
    MANAGER,
    REP,
    REPORT_DUE,
    REVIEWED_AT,
    SUBMITTED_AT,
    Visit,
    accept_report,
    approve_plan,
    at,
    check_in,
    complete_item,
    escalate,
    promised,
    return_plan,
    revise_plan,
    submit_plan,
    submit_report,
)
from tests.domain.test_month_plan import APPROVED_AT as PLAN_APPROVED_AT
from tests.domain.test_month_plan import MANAGER as PLAN_MANAGER
from tests.domain.test_month_plan import approved

RETURNED_AT = at("2026-11-16 15:00")
LATE_REPORT_AT = at("2026-11-25 12:00")
COMPLETED_AT = at("2026-11-27 09:00")


@pytest.fixture
def visit() -> Visit:
    """Returned once, revised, approved, visited, escalated, reported late, accepted, closed."""
    visit = Visit()
    visit.apply(submit_plan(), SUBMITTED_AT)
    visit.apply(return_plan(), RETURNED_AT)
    visit.apply(revise_plan(), at("2026-11-16 16:00"))
    visit.apply(approve_plan(), APPROVED_AT)
    visit.apply(check_in(), CHECKED_IN_AT)
    visit.apply(escalate("report", 1), REPORT_DUE)
    visit.apply(submit_report(items=[promised("quote")]), LATE_REPORT_AT)
    visit.apply(accept_report(), LATE_REPORT_AT + timedelta(hours=1))
    visit.apply(complete_item("quote"), COMPLETED_AT)
    return visit


def test_one_entry_per_event_with_who_and_when(visit):
    entries = timeline(visit.log)

    assert [e.seq for e in entries] == [r.seq for r in visit.log]
    assert [e.type for e in entries] == [r.type for r in visit.log]
    assert [e.event_id for e in entries] == [r.event_id for r in visit.log]
    assert [e.occurred_at for e in entries] == [r.occurred_at for r in visit.log]
    assert [(e.actor_id, e.actor_role) for e in entries] == [(r.actor.id, r.actor.role) for r in visit.log]


def test_what_why_and_status_after_each_step(visit):
    rows = [(e.type, e.what, e.why, e.status) for e in timeline(visit.log)]

    assert rows[0][0] == "PlanSubmitted" and rows[0][1].startswith("Plan submitted: on_site visit to ")
    assert "2026-11-23 09:00 CST" in rows[0][1] and rows[0][3] is VisitStatus.awaiting_approval
    assert rows[1] == (
        "PlanReturned",
        "Plan returned for changes",
        "add the agenda",
        VisitStatus.returned_for_changes,
    )
    assert rows[2][1].startswith("Plan revised (revision 2)") and rows[2][2] == "agenda added"
    assert rows[3] == ("PlanApproved", "Plan approved", "ok", VisitStatus.approved)
    assert rows[4][1].startswith("Checked in: on_site visit 2026-11-23 09:00 CST to 2026-11-23 10:00 CST")
    assert rows[4][3] is VisitStatus.awaiting_report
    assert rows[5][0] == "Escalated"
    assert rows[5][1] == f"Escalated to manager {MANAGER.id} (level 1): report overdue"
    assert rows[5][2]  # the message sent
    assert rows[6][1] == "Report submitted (revision 1, late, 1 promised item)"
    assert rows[7] == ("ReportAccepted", "Report accepted", "good", VisitStatus.following_up)
    assert rows[8][1] == "Promised item quote completed: sent"
    assert rows[-1][1] == "Visit closed: completed" and rows[-1][3] is VisitStatus.closed


def test_the_engine_is_named_as_the_actor_of_its_escalations(visit):
    escalated = next(e for e in timeline(visit.log) if e.type == "Escalated")
    assert (escalated.actor_id, escalated.actor_role) == (ENGINE.id, Role.system)
    approved = next(e for e in timeline(visit.log) if e.type == "PlanApproved")
    assert (approved.actor_id, approved.actor_role) == (MANAGER.id, Role.manager)
    assert timeline(visit.log)[0].actor_id == REP.id


def test_final_state_is_the_workflow_fold(visit):
    assert state_as_of(visit.log, COMPLETED_AT + timedelta(days=365)) == fold(visit.log) == visit.state


@pytest.mark.parametrize(
    ("moment", "status", "last_seq"),
    [
        (SUBMITTED_AT, VisitStatus.awaiting_approval, 1),
        (RETURNED_AT + timedelta(minutes=30), VisitStatus.returned_for_changes, 2),
        (APPROVED_AT + timedelta(days=1), VisitStatus.approved, 4),
        (REPORT_DUE - timedelta(seconds=1), VisitStatus.awaiting_report, 5),
        (REPORT_DUE + timedelta(hours=1), VisitStatus.awaiting_report, 6),
        (REVIEWED_AT + timedelta(days=2), VisitStatus.following_up, 8),
    ],
)
def test_state_as_of_a_past_moment(visit, moment, status, last_seq):
    state = state_as_of(visit.log, moment)

    assert state is not None
    assert (state.status, state.last_seq) == (status, last_seq)
    assert state == fold(visit.log[:last_seq])
    assert [e.seq for e in timeline(visit.log, as_of=moment)] == list(range(1, last_seq + 1))


def test_escalation_is_in_the_state_as_of_after_it(visit):
    before = state_as_of(visit.log, REPORT_DUE - timedelta(seconds=1))
    after = state_as_of(visit.log, REPORT_DUE)
    assert before is not None and after is not None
    assert before.escalation_levels == {} and after.escalation_levels == {"report": 1}


def test_before_the_plan_there_is_no_visit(visit):
    assert state_as_of(visit.log, SUBMITTED_AT - timedelta(seconds=1)) is None
    assert timeline(visit.log, as_of=SUBMITTED_AT - timedelta(seconds=1)) == []


def test_as_of_must_carry_a_time_zone(visit):
    with pytest.raises(ValueError, match="time zone"):
        state_as_of(visit.log, datetime(2026, 11, 20, 9, 0))


def test_concern_text():
    assert concern_text("report") == "report"
    assert concern_text("plan_approval") == "plan approval"
    assert concern_text("check_in") == "check-in"
    assert concern_text("item:quote") == "promised item quote"


def test_a_monthly_plan_reads_as_a_timeline_with_its_status_after_each_step():
    plan = approved(["V-1"])
    entries = [entry for entry, _ in plan_steps(plan.log)]
    assert [(e.type, e.status, e.actor_id) for e in entries] == [
        ("MonthPlanOpened", MonthPlanStatus.awaiting_plan, plan.log[0].actor.id),
        ("MonthPlanSubmitted", MonthPlanStatus.submitted, plan.log[1].actor.id),
        ("MonthPlanApproved", MonthPlanStatus.approved, PLAN_MANAGER.id),
    ]
    assert entries[0].what.startswith(f"Plan for {plan.s.month} opened for rep {plan.s.rep_id}; due ")
    assert entries[2].what.startswith("Plan approved: V-1")
    # As of a moment before the approval, the plan had only been submitted.
    before = [entry for entry, _ in plan_steps(plan.log, PLAN_APPROVED_AT - timedelta(seconds=1))]
    assert [e.type for e in before] == ["MonthPlanOpened", "MonthPlanSubmitted"]
