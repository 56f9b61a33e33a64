"""The lifecycle of one visit: given events, when a command, then the events it records."""

from domain.actors import Actor, Role
from domain.events import (
    PlanApproved,
    PlanRevised,
    PlanSubmitted,
    PromisedItemCompleted,
    ReportReturned,
    ReportSubmitted,
    VisitCheckedIn,
    VisitClosed,
    VisitOutcome,
    VisitRescheduled,
)
from domain.models import ItemStatus
from domain.policy import Policy
from domain.state import VisitStatus, fold
from tests.domain.support import (
    APPROVED_AT,
    CHECKED_IN_AT,
    DIRECTOR,
    ITEM_DUE,
    MANAGER,
    REP,
    REPORT_DUE,
    REPORTED_AT,
    REVIEWED_AT,
    SUBMITTED_AT,
    VISIT_END,
    VISIT_START,
    Visit,
    accept_report,
    approve_plan,
    approved,
    at,
    cancel,
    check_in,
    checked_in,
    complete_item,
    first,
    following_up,
    promised,
    reject_plan,
    report_returned,
    reported,
    reschedule,
    return_report,
    returned,
    revise_plan,
    submit_plan,
    submit_report,
    submitted,
    types,
    waive_report,
)


def test_submitted_plan_opens_the_visit_awaiting_approval_with_the_policy_in_force():
    policy = Policy(report_deadline="PT24H")
    visit = Visit(policy=policy)

    recorded = visit.apply(submit_plan(), SUBMITTED_AT)

    assert types(recorded) == ["PlanSubmitted"]
    event = recorded[0].event
    assert isinstance(event, PlanSubmitted)
    assert event.policy == policy
    assert (event.rep_id, event.manager_id, event.director_id) == ("rep-1", "mgr-1", "dir-1")
    assert visit.s.status is VisitStatus.awaiting_approval
    assert visit.s.submitted_at == SUBMITTED_AT
    assert visit.s.policy == policy


def test_full_lifecycle_plan_to_completed_items_closes_the_visit_as_completed():
    visit = Visit()
    visit.apply(submit_plan(), SUBMITTED_AT)
    assert types(visit.apply(approve_plan(), APPROVED_AT)) == ["PlanApproved"]
    assert visit.s.status is VisitStatus.approved
    assert visit.s.approved_by == MANAGER

    checked = visit.apply(check_in(), CHECKED_IN_AT)
    assert types(checked) == ["VisitCheckedIn"]
    assert visit.s.status is VisitStatus.awaiting_report
    assert visit.s.report_due_at == REPORT_DUE

    report = visit.apply(
        submit_report(items=[promised("quote"), promised("samples", at("2026-12-02 18:00"))]),
        REPORTED_AT,
    )
    assert types(report) == ["ReportSubmitted"]
    assert visit.s.status is VisitStatus.report_submitted
    assert [i.item_id for i in visit.s.open_items()] == ["quote", "samples"]

    assert types(visit.apply(accept_report(), REVIEWED_AT)) == ["ReportAccepted"]
    assert visit.s.status is VisitStatus.following_up

    assert types(visit.apply(complete_item("quote"), at("2026-11-26 10:00"))) == ["PromisedItemCompleted"]
    assert visit.s.status is VisitStatus.following_up

    last = visit.apply(complete_item("samples"), at("2026-11-27 10:00"))
    assert types(last) == ["PromisedItemCompleted", "VisitClosed"]
    assert last[1].event == VisitClosed(outcome=VisitOutcome.completed)
    assert visit.s.closed
    assert visit.s.outcome is VisitOutcome.completed
    assert visit.s.closed_at == at("2026-11-27 10:00")
    assert [e.seq for e in visit.log] == list(range(1, 9))


def test_fold_of_the_recorded_log_rebuilds_the_same_state():
    visit = following_up()

    assert fold(visit.log) == visit.s


def test_accepting_a_report_without_promised_items_closes_the_visit():
    visit = reported()

    recorded = visit.apply(accept_report(), REVIEWED_AT)

    assert types(recorded) == ["ReportAccepted", "VisitClosed"]
    assert visit.s.outcome is VisitOutcome.completed


def test_completing_items_before_the_report_is_accepted_does_not_close_until_acceptance():
    visit = reported([promised("quote")])

    assert types(visit.apply(complete_item("quote"), REVIEWED_AT)) == ["PromisedItemCompleted"]
    assert visit.s.status is VisitStatus.report_submitted

    assert types(visit.apply(accept_report(), at("2026-11-24 16:00"))) == ["ReportAccepted", "VisitClosed"]


def test_completed_item_records_resolution_and_lateness_from_its_due_time():
    visit = following_up()

    recorded = visit.apply(complete_item("quote"), at("2026-12-01 09:00"))

    event = recorded[0].event
    assert isinstance(event, PromisedItemCompleted)
    assert event.late is True
    item = visit.s.items["quote"]
    assert item.status is ItemStatus.completed
    assert item.completed_late is True
    assert item.resolution == "sent"
    assert item.customer_reply == "thanks"


def test_item_completed_on_time_is_not_late():
    visit = following_up()

    recorded = visit.apply(complete_item("quote"), ITEM_DUE)

    assert first(recorded, PromisedItemCompleted).late is False


def test_item_owner_who_is_not_the_rep_may_complete_it():
    visit = reported([promised("install", owner_id="engineer-7")])
    visit.apply(accept_report(), REVIEWED_AT)
    engineer = Actor(id="engineer-7", role=Role.rep)

    assert types(visit.apply(complete_item("install", actor=engineer), ITEM_DUE)) == [
        "PromisedItemCompleted",
        "VisitClosed",
    ]


def test_promised_items_without_ids_are_numbered_in_report_order():
    visit = checked_in()

    visit.apply(submit_report(items=[promised(None), promised(None)]), REPORTED_AT)

    assert list(visit.s.items) == ["item-1", "item-2"]


def test_returned_plan_is_revised_and_then_approved():
    visit = returned()
    assert visit.s.status is VisitStatus.returned_for_changes
    assert visit.s.last_reason == "add the agenda"

    revised = visit.apply(revise_plan(agenda="1. prices 2. samples"), at("2026-11-18 10:00"))
    assert types(revised) == ["PlanRevised"]
    event = revised[0].event
    assert isinstance(event, PlanRevised)
    assert event.revision == 2
    assert visit.s.status is VisitStatus.awaiting_approval
    assert visit.s.plan.agenda == "1. prices 2. samples"
    assert visit.s.submitted_at == at("2026-11-18 10:00")

    assert types(visit.apply(approve_plan(), at("2026-11-19 10:00"))) == ["PlanApproved"]
    assert visit.s.status is VisitStatus.approved


def test_rep_may_revise_a_plan_still_waiting_for_approval():
    visit = submitted()

    visit.apply(revise_plan(purpose="Price list and complaint"), APPROVED_AT)

    assert visit.s.plan_revision == 2
    assert visit.s.plan.purpose == "Price list and complaint"


def test_rejected_plan_closes_the_visit_as_rejected():
    visit = submitted()

    recorded = visit.apply(reject_plan(), APPROVED_AT)

    assert types(recorded) == ["PlanRejected", "VisitClosed"]
    assert visit.s.outcome is VisitOutcome.rejected
    assert visit.s.last_reason == "customer is handled by key accounts"


def test_returned_plan_may_be_rejected():
    visit = returned()

    assert types(visit.apply(reject_plan(), at("2026-11-18 10:00"))) == ["PlanRejected", "VisitClosed"]


def test_director_may_approve_instead_of_the_manager():
    visit = submitted()

    visit.apply(approve_plan(DIRECTOR), APPROVED_AT)

    assert visit.s.approved_by == DIRECTOR


def test_rescheduling_an_approved_visit_needs_approval_again():
    visit = approved()
    new_start = at("2026-11-25 14:00")

    recorded = visit.apply(reschedule(start=new_start, duration_minutes=30), at("2026-11-18 10:00"))

    assert types(recorded) == ["VisitRescheduled"]
    event = recorded[0].event
    assert isinstance(event, VisitRescheduled)
    assert event.previous_start == VISIT_START
    assert event.scheduled_start == new_start
    assert visit.s.status is VisitStatus.awaiting_approval
    assert visit.s.approved_at is None and visit.s.approved_by is None
    assert visit.s.plan.scheduled_start == new_start
    assert visit.s.plan.duration_minutes == 30

    visit.apply(approve_plan(), at("2026-11-19 10:00"))
    assert visit.s.status is VisitStatus.approved


def test_reschedule_keeps_the_planned_duration_when_none_is_given():
    visit = approved()

    visit.apply(reschedule(start=at("2026-11-25 14:00")), at("2026-11-18 10:00"))

    assert visit.s.plan.duration_minutes == 60


def test_manager_may_reschedule_a_visit():
    visit = submitted()

    assert types(visit.apply(reschedule(MANAGER), APPROVED_AT)) == ["VisitRescheduled"]


def test_visit_cancelled_before_execution_closes_as_cancelled():
    visit = approved()

    recorded = visit.apply(cancel(), at("2026-11-20 10:00"))

    assert types(recorded) == ["VisitCancelled", "VisitClosed"]
    assert visit.s.outcome is VisitOutcome.cancelled
    assert visit.s.last_reason == "customer closed for inventory"


def test_manager_may_cancel_a_plan_still_waiting_for_approval():
    visit = submitted()

    assert types(visit.apply(cancel(MANAGER), APPROVED_AT)) == ["VisitCancelled", "VisitClosed"]


def test_report_deadline_runs_from_the_recorded_visit_end_not_the_check_in_time():
    visit = approved()

    recorded = visit.apply(check_in(), at("2026-11-24 08:00"))

    event = recorded[0].event
    assert isinstance(event, VisitCheckedIn)
    assert event.execution.ended_at == VISIT_END
    assert event.report_due_at == at("2026-11-25 10:00")  # visit end 11-23 10:00 + 48 h


def test_report_returned_gets_a_new_deadline_counted_from_the_return():
    visit = reported()

    recorded = visit.apply(return_report(), REVIEWED_AT)

    event = recorded[0].event
    assert isinstance(event, ReportReturned)
    assert event.report_due_at == at("2026-11-26 15:00")  # 48 h after 2026-11-24 15:00
    assert visit.s.status is VisitStatus.report_returned
    assert visit.s.report_due_at == at("2026-11-26 15:00")
    assert visit.s.last_reason == "add the competitor prices"


def test_revised_report_after_return_is_a_new_revision_and_can_be_accepted():
    visit = report_returned()

    recorded = visit.apply(submit_report(items=[promised("quote")]), at("2026-11-25 15:00"))

    event = recorded[0].event
    assert isinstance(event, ReportSubmitted)
    assert event.revision == 2
    assert event.due_at == at("2026-11-26 15:00")
    assert event.late is False
    visit.apply(accept_report(), at("2026-11-25 16:00"))
    assert visit.s.status is VisitStatus.following_up


def test_revised_report_does_not_reopen_a_promise_already_kept():
    visit = report_returned([promised("quote")])
    visit.apply(complete_item("quote"), at("2026-11-25 09:00"))

    visit.apply(submit_report(items=[promised("quote", at("2026-12-05 18:00"))]), at("2026-11-25 15:00"))

    item = visit.s.items["quote"]
    assert item.status is ItemStatus.completed
    assert item.due_at == ITEM_DUE


def test_report_submitted_after_its_deadline_is_flagged_late():
    visit = checked_in()

    recorded = visit.apply(submit_report(), at("2026-11-25 10:01"))

    event = recorded[0].event
    assert isinstance(event, ReportSubmitted)
    assert event.late is True
    assert event.due_at == REPORT_DUE
    assert visit.s.report_late is True


def test_report_submitted_exactly_at_its_deadline_is_on_time():
    visit = checked_in()

    recorded = visit.apply(submit_report(), REPORT_DUE)

    assert first(recorded, ReportSubmitted).late is False
    assert visit.s.report_late is False


def test_lateness_is_decided_from_recorded_times_not_the_check_in_time():
    # Checked in a day after the visit: the deadline still runs from the visit's end, so a
    # report 47 hours after check-in is late.
    visit = approved()
    visit.apply(check_in(), at("2026-11-24 10:00"))

    recorded = visit.apply(submit_report(), at("2026-11-26 09:00"))

    assert first(recorded, ReportSubmitted).late is True


def test_a_late_first_report_stays_flagged_late_after_an_on_time_revision():
    visit = checked_in()
    visit.apply(submit_report(), at("2026-11-25 12:00"))
    visit.apply(return_report(), at("2026-11-25 13:00"))

    visit.apply(submit_report(), at("2026-11-25 14:00"))

    assert visit.s.report_late is True


def test_waiving_a_missing_report_closes_the_visit_as_report_waived():
    visit = checked_in()

    recorded = visit.apply(waive_report(), at("2026-11-26 10:00"))

    assert types(recorded) == ["ReportWaived", "VisitClosed"]
    assert visit.s.outcome is VisitOutcome.report_waived
    assert visit.s.report_waived is True


def test_waiving_a_returned_report_with_open_items_goes_to_following_up():
    visit = report_returned([promised("quote")])

    recorded = visit.apply(waive_report(), at("2026-11-27 10:00"))

    assert types(recorded) == ["ReportWaived"]
    assert visit.s.status is VisitStatus.following_up

    closing = visit.apply(complete_item("quote"), at("2026-11-28 10:00"))
    assert types(closing) == ["PromisedItemCompleted", "VisitClosed"]
    assert visit.s.outcome is VisitOutcome.report_waived


def test_pre_approved_plan_records_submission_and_approval():
    visit = Visit()

    recorded = visit.apply(submit_plan(MANAGER, approved_by=MANAGER), SUBMITTED_AT)

    assert types(recorded) == ["PlanSubmitted", "PlanApproved"]
    assert isinstance(recorded[1].event, PlanApproved)
    assert visit.s.status is VisitStatus.approved
    assert visit.s.approved_at == SUBMITTED_AT


def test_pre_approved_plan_skips_the_lead_time_rule():
    # Approved already, so it need not wait a working day for the manager: a same-day visit.
    visit = Visit()

    recorded = visit.apply(
        submit_plan(REP, at("2026-11-23 15:00"), approved_by=DIRECTOR), at("2026-11-23 09:00")
    )

    assert types(recorded) == ["PlanSubmitted", "PlanApproved"]
    # The rep carries the approval; the row names the director who gave it as its actor.
    assert recorded[0].actor == REP
    assert recorded[1].actor == DIRECTOR and recorded[1].event.approved_by == DIRECTOR
    assert visit.s.approved_by == DIRECTOR


def test_pre_approved_plan_without_named_director_may_be_approved_by_any_director():
    visit = Visit()

    recorded = visit.apply(submit_plan(director_id=None, approved_by=DIRECTOR), SUBMITTED_AT)

    assert types(recorded) == ["PlanSubmitted", "PlanApproved"]


def test_director_may_submit_a_plan_on_behalf_of_a_rep():
    visit = Visit()

    visit.apply(submit_plan(DIRECTOR), SUBMITTED_AT)

    assert visit.s.rep_id == "rep-1"


def test_check_in_within_clock_skew_of_now_is_accepted_and_due_runs_from_now():
    # The rep's phone is two minutes ahead: the end is accepted, and the deadline runs from
    # the engine's time, not a moment that has not happened yet.
    visit = approved()
    now = at("2026-11-23 10:00")

    recorded = visit.apply(check_in(ended_at=at("2026-11-23 10:02")), now)

    assert first(recorded, VisitCheckedIn).report_due_at == at("2026-11-25 10:00")


def test_check_in_before_the_scheduled_start_is_allowed_after_approval():
    visit = approved()

    visit.apply(check_in(started_at=at("2026-11-23 08:30"), ended_at=at("2026-11-23 08:50")), CHECKED_IN_AT)

    assert visit.s.status is VisitStatus.awaiting_report
