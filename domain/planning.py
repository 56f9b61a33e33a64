"""A rep's monthly visit plan (每月底提出次月拜访计划): the visits planned for one month."""

import re
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from domain.models import CustomerTier, Frozen, Instant, Name, VisitMethod

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def check_month(value: str) -> str:
    """`value` when it is a month written ``YYYY-MM``, else ValueError saying how to write one."""
    if not _MONTH.fullmatch(value):
        raise ValueError(f"a month is written YYYY-MM, for example 2026-12 (got {value!r})")
    return value


Month = Annotated[str, AfterValidator(check_month)]
"""A month written ``YYYY-MM`` (in the company's time zone)."""


def month_of(day: date) -> str:
    """The month a day falls in, as ``YYYY-MM``."""
    return f"{day.year:04d}-{day.month:02d}"


def month_numbers(month: str) -> tuple[int, int]:
    """The year and the month number of a ``YYYY-MM`` month (ValueError when it is not one)."""
    check_month(month)
    return int(month[:4]), int(month[5:])


def previous_month(month: str) -> str:
    """The month before a ``YYYY-MM`` month."""
    year, number = month_numbers(month)
    return f"{year - 1:04d}-12" if number == 1 else f"{year:04d}-{number - 1:02d}"


def month_bounds(month: str) -> tuple[date, date]:
    """The first and the last day of a ``YYYY-MM`` month."""
    year, number = month_numbers(month)
    first = date(year, number, 1)
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return first, following - timedelta(days=1)


class PlannedVisit(Frozen):
    """One visit of a monthly plan; approved, it becomes a visit workflow with this id."""

    visit_id: Name
    customer_id: Name
    scheduled_start: Instant
    duration_minutes: int = Field(default=20, ge=1, le=24 * 60)
    method: VisitMethod = VisitMethod.on_site
    purpose: str = Field(min_length=1, max_length=2_000)


class MonthPlanVisits(Frozen):
    """The visits a rep planned for a month (``YYYY-MM``, in the company time zone)."""

    rep_id: Name
    month: Month
    visits: list[PlannedVisit] = Field(default_factory=list, max_length=500)


class Severity(StrEnum):
    """Whether a plan finding stops the submission or is only shown."""

    block = "block"
    warn = "warn"


def _cadence_days() -> dict[CustomerTier, int]:
    # DOMAIN.md: core and assist every two weeks, potential monthly, regular every two months.
    return {
        CustomerTier.core: 14,
        CustomerTier.potential: 31,
        CustomerTier.assist: 14,
        CustomerTier.regular: 62,
    }


class PlanRules(BaseModel):
    """The monthly plan's rules, each finding's severity a setting (VISITFLOW_PLANNING__...).

    `cadence_days`: the longest a customer of each tier may go between visits (a tier left
    out has no cadence).
    `coverage_months`: the plans of this many consecutive months must together cover every
    customer the rep owns. `submit_by_day`: the plan for a month is due by the end of this
    day of the month before (0: its last day); `late` is the severity of missing that day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cadence_days: dict[CustomerTier, int] = Field(default_factory=_cadence_days)
    coverage_months: int = Field(default=2, ge=1, le=12)
    submit_by_day: int = Field(default=0, ge=0, le=28)
    cadence: Severity = Severity.warn
    coverage: Severity = Severity.warn
    lead_time: Severity = Severity.block
    # A late plan only warns by default: blocking it would leave the rep unable to plan the
    # month at all, while `lead_time` already blocks the visits it is too late for.
    late: Severity = Severity.warn

    @field_validator("cadence_days")
    @classmethod
    def _at_least_a_day(cls, value: dict[CustomerTier, int]) -> dict[CustomerTier, int]:
        if any(days < 1 for days in value.values()):
            raise ValueError("a cadence is at least 1 day")
        return value


def plan_due_day(month: str, rules: PlanRules) -> date:
    """The last local day the plan for `month` may be submitted (`submit_by_day` of the month before)."""
    first, last = month_bounds(previous_month(month))
    return last if rules.submit_by_day == 0 else first.replace(day=rules.submit_by_day)
