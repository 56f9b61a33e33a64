"""Deadlines counted in the company's time zone, in calendar hours or working days."""

from datetime import UTC, date, datetime

import pytest

from domain.calendar import (
    add_working_days,
    is_working_day,
    local_date,
    report_deadline,
    working_days_before,
)
from domain.events import ReportReturned, VisitCheckedIn
from domain.policy import DeadlineMode, Policy
from tests.domain.support import (
    MANAGER,
    Visit,
    accept_report,
    at,
    check_in,
    first,
    plan,
    return_report,
    submit_plan,
    submit_report,
)

WORKING_DAYS = Policy(report_deadline_mode=DeadlineMode.working_days)

MONDAY = date(2026, 11, 23)
FRIDAY = date(2026, 11, 27)
SATURDAY = date(2026, 11, 28)
SUNDAY = date(2026, 11, 29)


def checked_in_visit(start: str, end: str, policy: Policy, checked_in_at: str | None = None) -> Visit:
    """An approved visit (planned a week ahead) checked in after it ended."""
    visit = Visit(policy=policy)
    begin = at(start)
    visit.apply(submit_plan(the_plan=plan(begin), approved_by=MANAGER), at("2026-11-01 10:00"))
    visit.apply(check_in(started_at=begin, ended_at=at(end)), at(checked_in_at or end))
    return visit


# --- the working-day calendar ------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [(MONDAY, True), (FRIDAY, True), (SATURDAY, False), (SUNDAY, False)],
    ids=["monday", "friday", "saturday", "sunday"],
)
def test_weekends_are_not_working_days(day: date, working: bool):
    assert is_working_day(day, Policy()) is working


def test_public_holiday_is_not_a_working_day():
    assert is_working_day(MONDAY, Policy(holidays=[MONDAY])) is False


def test_makeup_saturday_is_a_working_day():
    assert is_working_day(SATURDAY, Policy(makeup_workdays=[SATURDAY])) is True


def test_makeup_day_wins_over_a_holiday_on_the_same_date():
    assert is_working_day(SATURDAY, Policy(holidays=[SATURDAY], makeup_workdays=[SATURDAY])) is True


def test_weekend_days_are_a_setting():
    # A Friday-Saturday weekend.
    policy = Policy(weekend=[4, 5])

    assert is_working_day(FRIDAY, policy) is False
    assert is_working_day(SUNDAY, policy) is True


def test_add_working_days_keeps_the_local_clock_time_and_skips_the_weekend():
    friday_15 = at("2026-11-27 15:00")

    assert add_working_days(friday_15, 2, Policy()) == at("2026-12-01 15:00")


def test_add_working_days_returns_utc():
    result = add_working_days(at("2026-11-27 15:00"), 1, Policy())

    assert result.tzinfo is UTC
    assert result == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def test_add_working_days_from_a_weekend_day_counts_from_monday():
    assert add_working_days(at("2026-11-28 10:00"), 1, Policy()) == at("2026-11-30 10:00")


def test_working_days_before_skips_weekends_and_holidays():
    assert working_days_before(date(2026, 11, 30), 1, Policy()) == FRIDAY
    assert working_days_before(date(2026, 11, 30), 1, Policy(holidays=[FRIDAY])) == date(2026, 11, 26)
    assert working_days_before(date(2026, 11, 30), 1, Policy(makeup_workdays=[SUNDAY])) == SUNDAY
    assert working_days_before(date(2026, 11, 30), 0, Policy()) == date(2026, 11, 30)


def test_local_date_is_the_date_in_the_company_zone():
    late_friday_utc = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # Saturday 01:00 in Shanghai

    assert local_date(late_friday_utc, Policy()) == SATURDAY
    assert local_date(late_friday_utc, Policy(timezone="UTC")) == FRIDAY


def test_calendar_hours_deadline_is_48_hours_later():
    assert report_deadline(at("2026-11-27 15:00"), Policy()) == at("2026-11-29 15:00")


def test_calendar_hours_deadline_is_a_setting():
    assert report_deadline(at("2026-11-27 15:00"), Policy(report_deadline="PT24H")) == at("2026-11-28 15:00")


def test_working_days_deadline_counts_from_the_local_date_not_the_utc_date():
    # Friday 17:00 UTC is Saturday 01:00 in Shanghai: two working days on is Tuesday 01:00
    # Shanghai. Counted on the UTC date it would wrongly be Tuesday 17:00 UTC.
    ended = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)

    assert report_deadline(ended, WORKING_DAYS) == at("2026-12-01 01:00")


def test_working_days_deadline_in_another_company_zone():
    policy = Policy(timezone="Europe/Berlin", report_deadline_mode=DeadlineMode.working_days)
    ended = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # Friday 15:00 in Berlin

    assert report_deadline(ended, policy) == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_working_days_deadline_keeps_local_time_across_a_daylight_saving_change():
    # Berlin leaves summer time on Sunday 2026-10-25: Friday 15:00 CEST is due Tuesday 15:00 CET.
    policy = Policy(timezone="Europe/Berlin", report_deadline_mode=DeadlineMode.working_days)
    ended = datetime(2026, 10, 23, 13, 0, tzinfo=UTC)

    assert report_deadline(ended, policy) == datetime(2026, 10, 27, 14, 0, tzinfo=UTC)


# --- report deadlines set at check-in ----------------------------------------------------


def report_due(visit: Visit) -> datetime:
    event = visit.log[-1].event
    assert isinstance(event, VisitCheckedIn)
    return event.report_due_at


def test_report_is_due_48_calendar_hours_after_the_recorded_visit_end():
    visit = checked_in_visit("2026-11-27 14:00", "2026-11-27 15:00", Policy(), "2026-11-28 11:00")

    assert report_due(visit) == at("2026-11-29 15:00")


def test_friday_visit_in_working_days_mode_is_due_tuesday_same_local_time():
    visit = checked_in_visit("2026-11-27 14:00", "2026-11-27 15:00", WORKING_DAYS, "2026-11-27 18:00")

    assert report_due(visit) == at("2026-12-01 15:00")


def test_working_days_deadline_skips_a_public_holiday():
    # Monday 2026-11-30 is a holiday: the Friday visit's report is due Wednesday.
    policy = WORKING_DAYS.model_copy(update={"holidays": [date(2026, 11, 30)]})

    visit = checked_in_visit("2026-11-27 14:00", "2026-11-27 15:00", policy)

    assert report_due(visit) == at("2026-12-02 15:00")


def test_working_days_deadline_counts_a_makeup_working_saturday():
    # 调休: Saturday 2026-11-28 is worked, so the Friday visit is due Monday.
    policy = WORKING_DAYS.model_copy(update={"makeup_workdays": [date(2026, 11, 28)]})

    visit = checked_in_visit("2026-11-27 14:00", "2026-11-27 15:00", policy)

    assert report_due(visit) == at("2026-11-30 15:00")


def test_working_days_deadline_across_a_holiday_and_a_makeup_saturday():
    # Thursday visit; Friday is a holiday, Saturday a make-up working day: due Monday.
    policy = WORKING_DAYS.model_copy(
        update={"holidays": [date(2026, 11, 27)], "makeup_workdays": [date(2026, 11, 28)]}
    )

    visit = checked_in_visit("2026-11-26 14:00", "2026-11-26 15:00", policy)

    assert report_due(visit) == at("2026-11-30 15:00")


def test_working_days_deadline_is_counted_in_shanghai_time():
    # The visit ends Friday 23:30 in Shanghai (Friday 15:30 UTC): due Tuesday 23:30 Shanghai.
    visit = checked_in_visit("2026-11-27 22:30", "2026-11-27 23:30", WORKING_DAYS, "2026-11-28 09:00")

    assert report_due(visit) == at("2026-12-01 23:30")
    assert report_due(visit) == datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def test_visit_ending_after_midnight_shanghai_counts_from_saturday():
    # Ends Saturday 00:30 in Shanghai, though it is still Friday 16:30 UTC: Mon, Tue.
    visit = checked_in_visit("2026-11-27 23:30", "2026-11-28 00:30", WORKING_DAYS, "2026-11-28 09:00")

    assert report_due(visit) == at("2026-12-01 00:30")


def test_returned_report_in_working_days_mode_is_due_two_working_days_after_the_return():
    visit = checked_in_visit("2026-11-25 14:00", "2026-11-25 15:00", WORKING_DAYS)
    visit.apply(submit_report(), at("2026-11-26 10:00"))

    recorded = visit.apply(return_report(), at("2026-11-27 16:00"))  # Friday

    assert first(recorded, ReportReturned).report_due_at == at("2026-12-01 16:00")
    visit.apply(submit_report(), at("2026-12-01 16:00"))
    assert visit.s.report_late is False
    visit.apply(accept_report(), at("2026-12-01 17:00"))
    assert visit.s.closed
