"""The policy figures of DOMAIN.md, each a setting with the default named there.

A visit keeps the policy it was started with (it is recorded in its first event), so a
change of settings never moves the deadlines of visits already running, and an auditor's
replay uses the figures that were in force.
"""

from datetime import date
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.actors import Role


class DeadlineMode(StrEnum):
    """How "two days" is counted: 48 clock hours, or two working days."""

    calendar_hours = "calendar_hours"
    working_days = "working_days"


class EscalationStep(BaseModel):
    """One rung of the ladder: who is told, and how long after the deadline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    after_hours: int = Field(ge=0, le=24 * 365)

    @field_validator("role")
    @classmethod
    def _escalates_to_a_superior(cls, role: Role) -> Role:
        if role not in (Role.manager, Role.director):
            raise ValueError("escalations go to a manager or a director")
        return role


def _default_ladder() -> list[EscalationStep]:
    return [
        EscalationStep(role=Role.manager, after_hours=0),
        EscalationStep(role=Role.director, after_hours=24),
    ]


class Policy(BaseModel):
    """Deadline, reminder, escalation and calendar figures for one visit.

    All durations are whole hours or days so the recorded policy hashes identically
    wherever it is read back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "Asia/Shanghai"
    report_deadline_mode: DeadlineMode = DeadlineMode.calendar_hours
    report_deadline_hours: int = Field(default=48, ge=1, le=24 * 60)
    report_deadline_working_days: int = Field(default=2, ge=1, le=60)
    reminder_before_hours: int = Field(default=24, ge=0, le=24 * 30)
    escalation_ladder: list[EscalationStep] = Field(
        default_factory=_default_ladder, min_length=1, max_length=10
    )
    check_in_grace_hours: int = Field(default=2, ge=0, le=24 * 30)
    plan_lead_working_days: int = Field(default=1, ge=0, le=60)
    weekend: list[int] = Field(default_factory=lambda: [5, 6])
    holidays: list[date] = Field(default_factory=list)
    makeup_workdays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("weekend")
    @classmethod
    def _weekday_numbers(cls, value: list[int]) -> list[int]:
        if any(day not in range(7) for day in value):
            raise ValueError("weekend days are numbered 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @field_validator("escalation_ladder")
    @classmethod
    def _ladder_in_order(cls, value: list[EscalationStep]) -> list[EscalationStep]:
        hours = [step.after_hours for step in value]
        if hours != sorted(hours):
            raise ValueError("escalation steps must be listed in order of time")
        return value
