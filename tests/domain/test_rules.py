"""Business rules on plans, check-ins, reports and promised items, each refusal named."""

from datetime import UTC, date, datetime, timedelta

import pytest

from domain.events import PromisedItemCompleted
from domain.models import Customer
from domain.policy import Policy
from tests.domain.support import (
    APPROVED_AT,
    CHECKED_IN_AT,
    MANAGER,
    REPORTED_AT,
    SUBMITTED_AT,
    VISIT_END,
    VISIT_START,
    Visit,
    approve_plan,
    approved,
    at,
    check_in,
    checked_in,
    complete_item,
    first,
    following_up,
    promised,
    reported,
    reschedule,
    returned,
    revise_plan,
    submit_plan,
    submit_report,
    submitted,
    types,
)

# --- plans in time -------------------------------------------------------------------


def test_plan_for_a_time_already_passed_is_refused():
    error = Visit().refuse(submit_plan(start=at("2026-11-16 09:00")), SUBMITTED_AT, "plan.in_past")

    assert "The visit time 2026-11-16 09:00 CST has already passed" in error.message


def test_plan_for_exactly_now_is_in_the_past():
    Visit().refuse(submit_plan(start=SUBMITTED_AT), SUBMITTED_AT, "plan.in_past")


def test_pre_approved_plan_still_cannot_be_in_the_past():
    Visit().refuse(
        submit_plan(start=at("2026-11-16 09:00"), approved_by=MANAGER), SUBMITTED_AT, "plan.in_past"
    )


def test_plan_must_reach_the_manager_one_working_day_before_the_visit():
    error = Visit().refuse(
        submit_plan(start=at("2026-11-19 09:00")), at("2026-11-19 08:00"), "plan.lead_time"
    )

    assert "at least 1 working day(s) before the visit" in error.message
    assert "for a visit on 2026-11-19 it was due by 2026-11-18" in error.message


def test_plan_submitted_the_working_day_before_is_in_time_at_any_hour():
    visit = Visit()

    visit.apply(submit_plan(start=at("2026-11-19 09:00")), at("2026-11-18 23:59"))

    assert visit.s.plan.scheduled_start == at("2026-11-19 09:00")


def test_monday_visit_needs_its_plan_by_friday():
    monday = at("2026-11-30 09:00")
    Visit().apply(submit_plan(start=monday), at("2026-11-27 18:00"))  # Friday

    error = Visit().refuse(submit_plan(start=monday), at("2026-11-28 10:00"), "plan.lead_time")  # Saturday
    assert "it was due by 2026-11-27" in error.message
    Visit().refuse(submit_plan(start=monday), at("2026-11-29 10:00"), "plan.lead_time")  # Sunday


def test_lead_time_skips_public_holidays():
    # Friday 2026-11-27 a holiday: a Monday visit needs its plan by Thursday.
    policy = Policy(holidays=[date(2026, 11, 27)])
    monday = at("2026-11-30 09:00")

    error = Visit(policy=policy).refuse(submit_plan(start=monday), at("2026-11-27 10:00"), "plan.lead_time")

    assert "it was due by 2026-11-26" in error.message


def test_lead_time_counts_a_makeup_working_saturday():
    policy = Policy(makeup_workdays=[date(2026, 11, 28)])
    visit = Visit(policy=policy)

    visit.apply(submit_plan(start=at("2026-11-30 09:00")), at("2026-11-28 10:00"))

    assert visit.s.status.value == "awaiting_approval"


def test_lead_time_is_judged_on_the_local_calendar_date():
    # Friday 2026-11-27 17:00 UTC is already Saturday 01:00 in Shanghai: too late for Monday.
    now = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)

    Visit().refuse(submit_plan(start=at("2026-11-30 09:00")), now, "plan.lead_time")


def test_lead_time_is_a_setting():
    policy = Policy(plan_lead_working_days=3)

    error = Visit(policy=policy).refuse(
        submit_plan(start=at("2026-11-23 09:00")), at("2026-11-19 10:00"), "plan.lead_time"
    )

    assert "at least 3 working day(s)" in error.message
    assert "due by 2026-11-18" in error.message


def test_lead_time_of_zero_allows_a_same_day_plan():
    visit = Visit(policy=Policy(plan_lead_working_days=0))

    visit.apply(submit_plan(start=at("2026-11-23 15:00")), at("2026-11-23 09:00"))

    assert visit.state is not None


def test_approval_after_the_visit_time_is_refused():
    visit = submitted()

    error = visit.refuse(approve_plan(), VISIT_START, "plan.approval_after_visit_time")

    assert "2026-11-23 09:00 CST has passed without approval" in error.message
    assert "must be rescheduled" in error.message


def test_approval_a_minute_before_the_visit_is_in_time():
    visit = submitted()

    assert types(visit.apply(approve_plan(), at("2026-11-23 08:59"))) == ["PlanApproved"]


def test_visit_past_its_time_unapproved_can_be_rescheduled_and_approved():
    visit = submitted()

    visit.apply(reschedule(start=at("2026-11-26 10:00")), at("2026-11-23 09:30"))
    visit.apply(approve_plan(), at("2026-11-24 09:00"))

    assert visit.s.status.value == "approved"


def test_reschedule_must_respect_the_lead_time():
    visit = approved()

    error = visit.refuse(reschedule(start=at("2026-11-19 14:00")), at("2026-11-19 08:00"), "plan.lead_time")

    assert "due by 2026-11-18" in error.message


def test_reschedule_into_the_past_is_refused():
    visit = approved()

    visit.refuse(reschedule(start=at("2026-11-17 09:00")), at("2026-11-18 10:00"), "plan.in_past")


def test_reschedule_to_the_same_time_and_length_is_refused():
    visit = approved()

    error = visit.refuse(
        reschedule(start=VISIT_START, duration_minutes=60),
        at("2026-11-18 10:00"),
        "plan.reschedule_unchanged",
    )

    assert "nothing to reschedule" in error.message


def test_reschedule_that_only_changes_the_length_is_accepted():
    visit = approved()

    visit.apply(reschedule(start=VISIT_START, duration_minutes=90), at("2026-11-18 10:00"))

    assert visit.s.plan.duration_minutes == 90


def test_revised_plan_must_keep_its_customer():
    visit = returned()

    error = visit.refuse(
        revise_plan(customer=Customer(id="cust-9", name="Other Co.")),
        at("2026-11-18 10:00"),
        "plan.customer_fixed",
    )

    assert "same customer (cust-1)" in error.message


def test_revised_plan_must_be_in_the_future_and_in_time():
    visit = returned()

    visit.refuse(revise_plan(start=at("2026-11-17 09:00")), at("2026-11-18 10:00"), "plan.in_past")
    visit.refuse(revise_plan(start=at("2026-11-18 15:00")), at("2026-11-18 10:00"), "plan.lead_time")


# --- check-in --------------------------------------------------------------------------


def test_check_in_with_end_before_start_is_refused():
    visit = approved()

    error = visit.refuse(
        check_in(started_at=VISIT_END, ended_at=VISIT_START), CHECKED_IN_AT, "visit.times_order"
    )

    assert "must end after it starts" in error.message


def test_check_in_with_end_equal_to_start_is_refused():
    visit = approved()

    visit.refuse(check_in(started_at=VISIT_START, ended_at=VISIT_START), CHECKED_IN_AT, "visit.times_order")


def test_check_in_longer_than_a_day_is_refused():
    visit = approved()

    error = visit.refuse(
        check_in(started_at=at("2026-11-22 08:00"), ended_at=at("2026-11-23 10:00")),
        CHECKED_IN_AT,
        "visit.too_long",
    )

    assert "more than 24 hours" in error.message


def test_check_in_with_end_in_the_future_is_refused():
    visit = approved()

    error = visit.refuse(check_in(), at("2026-11-23 09:30"), "visit.end_in_future")

    assert "The visit's end (2026-11-23 10:00 CST) is in the future" in error.message


def test_check_in_end_more_than_the_clock_skew_ahead_is_refused():
    visit = approved()

    visit.refuse(check_in(), at("2026-11-23 09:54"), "visit.end_in_future")
    visit.apply(check_in(), at("2026-11-23 09:55"))


def test_visit_recorded_as_starting_before_approval_is_refused():
    # Approved at 07:00 on the day of a 09:00 visit; the rep claims to have started at 06:30.
    visit = submitted()
    visit.apply(approve_plan(), at("2026-11-23 07:00"))

    error = visit.refuse(
        check_in(started_at=at("2026-11-23 06:30"), ended_at=at("2026-11-23 06:50")),
        CHECKED_IN_AT,
        "visit.before_approval",
    )

    assert "starting before its plan was approved" in error.message


# --- reports -----------------------------------------------------------------------------


def test_report_with_duplicate_promised_item_ids_is_refused():
    visit = checked_in()

    error = visit.refuse(
        submit_report(items=[promised("quote"), promised("quote")]), REPORTED_AT, "report.item_ids_unique"
    )

    assert "Promised item id 'quote' appears twice" in error.message


def test_explicit_id_clashing_with_a_generated_one_is_refused():
    visit = checked_in()

    visit.refuse(
        submit_report(items=[promised(None), promised("item-1")]), REPORTED_AT, "report.item_ids_unique"
    )


def test_promised_item_due_before_the_visit_ended_is_refused():
    visit = checked_in()

    error = visit.refuse(
        submit_report(items=[promised("quote", at("2026-11-23 09:30"))]),
        REPORTED_AT,
        "report.item_due_after_visit",
    )

    assert "Promised item 'quote' is due before the visit ended" in error.message


def test_promised_item_due_exactly_at_the_visit_end_is_refused():
    visit = checked_in()

    visit.refuse(
        submit_report(items=[promised("quote", VISIT_END)]), REPORTED_AT, "report.item_due_after_visit"
    )


# --- promised items ----------------------------------------------------------------------


def test_completing_an_unknown_item_is_refused():
    visit = following_up()

    error = visit.refuse(complete_item("samples"), at("2026-11-26 10:00"), "item.unknown")

    assert "has no promised item 'samples'" in error.message


def test_completing_an_item_twice_is_refused():
    visit = reported([promised("quote"), promised("samples")])
    visit.apply(complete_item("quote"), at("2026-11-26 10:00"))

    error = visit.refuse(complete_item("quote"), at("2026-11-26 11:00"), "item.already_completed")

    assert "Promised item 'quote' is already completed" in error.message


@pytest.mark.parametrize("hours_early", [1, 24])
def test_item_completed_before_due_is_not_late(hours_early: int):
    visit = following_up()

    recorded = visit.apply(complete_item("quote"), at("2026-11-30 18:00") - timedelta(hours=hours_early))

    assert first(recorded, PromisedItemCompleted).late is False


def test_submitted_at_is_not_moved_by_approval():
    visit = approved()

    assert visit.s.submitted_at == SUBMITTED_AT
    assert visit.s.approved_at == APPROVED_AT
