"""Deadlines in the company's time zone, in calendar hours or working days.

A working day is a day that is not a weekend day and not a public holiday, unless it is a
make-up working day (调休), which counts as working even on a weekend.
"""

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from domain.policy import DeadlineMode, Policy


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo for a policy's time zone (cached: it is read from tzdata once)."""
    return ZoneInfo(name)


def is_working_day(day: date, policy: Policy) -> bool:
    """True when `day` is a working day under the policy's calendar."""
    if day in policy.makeup_workdays:
        return True
    if day in policy.holidays:
        return False
    return day.weekday() not in policy.weekend


def add_working_days(start: datetime, days: int, policy: Policy) -> datetime:
    """The same local clock time on the `days`-th working day after `start`'s local date."""
    tz = zone(policy.timezone)
    local = start.astimezone(tz)
    day = local.date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day, policy):
            counted += 1
    naive = datetime.combine(day, local.time().replace(tzinfo=None))
    return naive.replace(tzinfo=tz).astimezone(UTC)


def working_days_before(day: date, days: int, policy: Policy) -> date:
    """The date `days` working days before `day` (the latest date a plan may arrive)."""
    counted = 0
    while counted < days:
        day -= timedelta(days=1)
        if is_working_day(day, policy):
            counted += 1
    return day


def latest_plan_day(visit_start: datetime, policy: Policy) -> date:
    """The last local date a plan for a visit at `visit_start` may reach the manager.

    That is `policy.plan_lead_working_days` working days before the visit's local date; a
    plan submitted at any hour of that day is in time (the `plan.lead_time` rule).
    """
    return working_days_before(local_date(visit_start, policy), policy.plan_lead_working_days, policy)


def local_text(instant: datetime, timezone: str) -> str:
    """An instant as people read it in messages: local time to the minute, with the zone's
    abbreviation (``2026-11-23 09:00 CST``)."""
    return instant.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def local_date(instant: datetime, policy: Policy) -> date:
    """The calendar date of `instant` in the company's time zone."""
    return instant.astimezone(zone(policy.timezone)).date()


def report_deadline(start: datetime, policy: Policy) -> datetime:
    """When a report is due, counted from the recorded time of the event that started it."""
    if policy.report_deadline_mode is DeadlineMode.working_days:
        return add_working_days(start, policy.report_deadline_working_days, policy)
    return start.astimezone(UTC) + policy.report_deadline
