"""The policy figures of DOMAIN.md, each a setting with the default named there.

A visit keeps the policy it was started with (it is recorded in its first event), so a
change of settings never moves the deadlines of visits already running, and an auditor's
replay uses the figures that were in force.
"""

import re
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from domain.actors import Role

DURATION_FORMAT = (
    "a duration is written in ISO 8601 (PT10M, PT48H, P2D, PT1H30M, PT30S) or as a whole "
    "number and a unit s, m, h or d (90m, 48h, 2d)"
)
"""The sentence a duration in any other form is refused with."""

_ISO_DURATION = re.compile(r"P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?")
_SHORT_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: object) -> timedelta:
    """A policy duration from a timedelta, ISO 8601 text (``PT10M``) or a short form (``10m``).

    Durations are whole seconds and never negative; anything else is refused (ValueError).
    """
    if isinstance(value, timedelta):
        found = value
    elif isinstance(value, str):
        found = _parse_text(value)
    else:
        raise ValueError(DURATION_FORMAT)
    if found < timedelta(0):
        raise ValueError("a duration cannot be negative")
    if found.microseconds:
        raise ValueError("a duration is a whole number of seconds")
    return found


def _parse_text(text: str) -> timedelta:
    if text.startswith("-"):
        raise ValueError("a duration cannot be negative")
    try:
        if short := _SHORT_DURATION.fullmatch(text):
            return timedelta(**{_UNIT[short[2]]: int(short[1])})
        iso = _ISO_DURATION.fullmatch(text)
        # "P" and "P1DT" match the pattern but name no amount.
        if iso is None or text == "P" or text.endswith("T"):
            raise ValueError(DURATION_FORMAT)
        days, hours, minutes, seconds = (int(part or 0) for part in iso.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError("a duration this long cannot be a policy figure") from None


def duration_text(value: timedelta) -> str:
    """The canonical ISO 8601 text of a duration: hours, minutes, seconds (``PT1H30M``, ``PT0S``).

    The policy is recorded, and hashed, in the first event of every visit and monthly plan,
    so each duration has exactly one text: no days component, zero parts left out.
    """
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n]
    return "PT" + ("".join(parts) or "0S")


def _at_most(days: int, *, at_least: timedelta = timedelta(0)) -> AfterValidator:
    """The bounds of one policy duration, refused in a sentence that names them."""
    high = timedelta(days=days)

    def check(value: timedelta) -> timedelta:
        if value < at_least:
            raise ValueError(f"must be at least {duration_text(at_least)}")
        if value > high:
            raise ValueError(f"must be at most {duration_text(high)} ({days} days)")
        return value

    return AfterValidator(check)


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(duration_text, return_type=str)
]
"""A policy duration: read by `parse_duration`, written as `duration_text`; bounded with `_at_most`."""


def _off_is_none(value: object) -> object:
    """ "off" (or "none", or empty) for a rule that is not followed: settings are text."""
    return None if isinstance(value, str) and value.strip().lower() in ("", "off", "none", "null") else value


_WHOLE_HOURS = re.compile(r"-?[0-9]+")


def _hours_to_durations(data: Any, renamed: dict[str, str]) -> Any:
    """`data` with each old whole-hours field (`renamed` keys) given as its duration field."""
    if not isinstance(data, dict) or not renamed.keys() & data.keys():
        return data
    data = dict(data)  # the caller's payload (a stored event's) stays as it was
    for old, new in renamed.items():
        if old not in data:
            continue
        hours = data.pop(old)
        # Environment variables arrive as text ("24"); stored events hold integers.
        if isinstance(hours, bool) or not _WHOLE_HOURS.fullmatch(str(hours)):
            raise ValueError(f"{old} is a whole number of hours; or give {new} as a duration")
        try:
            value = timedelta(hours=int(hours))
        except OverflowError:
            raise ValueError(f"{old} is too long to be a policy figure") from None
        if new in data and parse_duration(data[new]) != value:
            raise ValueError(f"{old} and {new} disagree; give only {new}")
        data[new] = value
    return data


class DeadlineMode(StrEnum):
    """How "two days" is counted: 48 clock hours, or two working days."""

    calendar_hours = "calendar_hours"
    working_days = "working_days"


class EscalationStep(BaseModel):
    """One rung of the ladder: who is told, and how long after the deadline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    after: Annotated[Duration, _at_most(days=365)]

    @model_validator(mode="before")
    @classmethod
    def _from_hours(cls, data: Any) -> Any:
        """Read the old shape, `after_hours: 24`: stored events and settings still hold it."""
        return _hours_to_durations(data, {"after_hours": "after"})

    @field_validator("role")
    @classmethod
    def _escalates_to_a_superior(cls, role: Role) -> Role:
        if role not in (Role.manager, Role.director):
            raise ValueError("escalations go to a manager or a director")
        return role


def _default_ladder() -> list[EscalationStep]:
    return [
        EscalationStep(role=Role.manager, after=timedelta(0)),
        EscalationStep(role=Role.director, after=timedelta(hours=24)),
    ]


class Policy(BaseModel):
    """Deadline, reminder, escalation and calendar figures for one visit.

    Durations are whole seconds, read from ISO 8601 (``PT10M``) or a short form (``10m``)
    and always written as one canonical text (``duration_text``), so the recorded policy
    hashes identically wherever it is read back.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "Asia/Shanghai"
    report_deadline_mode: DeadlineMode = DeadlineMode.calendar_hours
    report_deadline: Annotated[Duration, _at_most(days=60, at_least=timedelta(seconds=1))] = timedelta(
        hours=48
    )
    report_deadline_working_days: int = Field(default=2, ge=1, le=60)
    reminder_before: Annotated[Duration, _at_most(days=30)] = timedelta(hours=24)
    """How long before a deadline its owner is reminded; zero: no reminders."""
    escalation_ladder: list[EscalationStep] = Field(
        default_factory=_default_ladder, min_length=1, max_length=10
    )
    check_in_grace: Annotated[Duration, _at_most(days=30)] = timedelta(hours=2)
    """How long after a visit's scheduled end its check-in is due."""
    plan_lead_working_days: int = Field(default=1, ge=0, le=60)
    # The chasing rules below came later: a policy recorded without them (every visit and
    # plan opened before) keeps them off, so its deadlines stay as they were; the settings
    # turn them on for new visits and plans (`CHASING`).
    review_working_days: Annotated[int | None, BeforeValidator(_off_is_none)] = Field(
        default=None, ge=1, le=60
    )
    """Working days a manager has to review a submitted report or monthly plan; None: not chased."""
    remind_plan_approval: bool = False
    """Whether the manager is reminded of a plan still to approve before the visit time."""
    reminder_repeat: Annotated[Duration, _at_most(days=30)] | None = None
    """How often a reminder repeats while its concern stays open before its deadline; None or zero: once."""
    escalation_repeat: Annotated[Duration, _at_most(days=30)] | None = None
    """How often the top rung is told again while a concern stays overdue; None or zero: once."""
    weekend: list[int] = Field(default_factory=lambda: [5, 6])
    holidays: list[date] = Field(default_factory=list)
    makeup_workdays: list[date] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_hours(cls, data: Any) -> Any:
        """Read the old whole-hour names (`report_deadline_hours: 48`, ...) as durations.

        Every visit and plan recorded before durations existed holds its policy in that
        shape, and deployments set ``VISITFLOW_POLICY__REPORT_DEADLINE_HOURS``: both must
        load to the same deadlines. A payload giving an old and a new name that disagree is
        refused rather than guessed at.
        """
        return _hours_to_durations(
            data,
            {
                "report_deadline_hours": "report_deadline",
                "reminder_before_hours": "reminder_before",
                "check_in_grace_hours": "check_in_grace",
            },
        )

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
        delays = [step.after for step in value]
        if delays != sorted(delays):
            raise ValueError("escalation steps must be listed in order of time")
        return value


CHASING: dict[str, Any] = {
    "review_working_days": 2,
    "remind_plan_approval": True,
    "reminder_repeat": timedelta(hours=24),
    "escalation_repeat": timedelta(hours=24),
}
"""The chasing rules new visits and plans start with, where the settings name none."""


def with_chasing(policy: Policy) -> Policy:
    """`policy` with each chasing rule it was not given set as `CHASING` says."""
    missing = {name: value for name, value in CHASING.items() if name not in policy.model_fields_set}
    return policy.model_copy(update=missing) if missing else policy
