"""A rep's monthly visit plan (每月底提出次月拜访计划): the visits planned for one month."""

import re
from datetime import date

from pydantic import Field, field_validator

from domain.models import Frozen, Instant, Name, VisitMethod

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def month_of(day: date) -> str:
    """The month a day falls in, as ``YYYY-MM``."""
    return f"{day.year:04d}-{day.month:02d}"


def previous_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year - 1:04d}-12" if number == 1 else f"{year:04d}-{number - 1:02d}"


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
    month: str
    visits: list[PlannedVisit] = Field(default_factory=list, max_length=500)

    @field_validator("month")
    @classmethod
    def _is_a_month(cls, value: str) -> str:
        if not _MONTH.match(value):
            raise ValueError("a month is written YYYY-MM, for example 2026-12")
        return value
