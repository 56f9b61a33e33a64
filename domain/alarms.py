"""The alarm ladder every stream shares: reminders before a deadline, escalations after it.

A *concern* is one open obligation with a deadline (a visit's report, a promised item, a
monthly plan...). An *alarm* is what the engine must do on its own, and when: remind the
concern's owner before its deadline, or escalate it one rung up the policy's ladder after
it. Each stream says which concerns are open (`domain.deadlines`, `domain.month_plan`);
the instants, the order and the rules that refuse a timer's command live here once, so a
visit and a plan are chased alike. The engine's commands (`Remind`, `Escalate`) carry the
actor `visitflow`/`system` and an id derived from the alarm, so a timer fired twice
records once.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import Field

from domain.actors import SYSTEM, Actor, CommandBase, Role
from domain.errors import RuleViolation
from domain.policy import Policy


class Remind(CommandBase):
    """Issued by the engine's timers: remind the person who owes something.

    `repeat` counts the reminders of the same deadline sent before this one.
    """

    kind: Literal["remind"] = "remind"
    concern: str
    repeat: int = Field(default=0, ge=0)


class Escalate(CommandBase):
    """Issued by the engine's timers: tell the next rung of the ladder.

    `repeat` > 0 tells the top rung again (the ladder has no rung left, the concern is
    still open): the `repeat`-th time since it was first told.
    """

    kind: Literal["escalate"] = "escalate"
    concern: str
    level: int = Field(ge=1)
    repeat: int = Field(default=0, ge=0)


class AlarmKind(StrEnum):
    remind = "remind"
    escalate = "escalate"


@dataclass(frozen=True)
class Alarm:
    """The next thing the engine must do on its own, and when."""

    at: datetime
    kind: AlarmKind
    concern: str
    level: int = 0
    repeat: int = 0

    @property
    def command_id(self) -> str:
        # Unique per deadline: a report returned for revision gets a new deadline and so
        # new reminder and escalation ids; a repeat has its own instant.
        return f"timer:{self.kind}:{self.concern}:{self.level}@{self.at.isoformat()}"

    def command(self) -> Remind | Escalate:
        """The engine's command for this alarm."""
        if self.kind is AlarmKind.remind:
            return Remind(command_id=self.command_id, actor=SYSTEM, concern=self.concern, repeat=self.repeat)
        return Escalate(
            command_id=self.command_id,
            actor=SYSTEM,
            concern=self.concern,
            level=self.level,
            repeat=self.repeat,
        )


@dataclass(frozen=True)
class Concern:
    """One open obligation with a deadline: its key, when it is due, who owes it, in words
    (for messages), and whether its owner is reminded before the deadline."""

    key: str
    due_at: datetime
    owner_id: str
    what: str
    remind: bool = True
    owner_role: Role = Role.rep


def reminder_at(concern: Concern, policy: Policy, repeat: int = 0) -> datetime | None:
    """When to remind the owner of `concern` (the `repeat`-th time again), or None when it or
    the policy has no such reminder: the first comes `reminder_before` the deadline, each
    repeat `reminder_repeat` later, as long as the deadline has not come."""
    if not concern.remind or not policy.reminder_before:
        return None
    if repeat and not policy.reminder_repeat:
        return None
    at = concern.due_at - policy.reminder_before + repeat * (policy.reminder_repeat or timedelta(0))
    return at if repeat == 0 or at < concern.due_at else None


def escalation_at(concern: Concern, policy: Policy, level: int, repeat: int = 0) -> datetime:
    """When escalation `level` (1 = the first rung) of `concern` is due; with `repeat`, when
    the top rung is told again for the `repeat`-th time (`escalation_repeat` apart)."""
    at = concern.due_at + policy.escalation_ladder[level - 1].after
    return at + repeat * (policy.escalation_repeat or timedelta(0))


def escalation_recipient(policy: Policy, level: int, *, manager_id: str, director_id: str | None) -> Actor:
    """Who receives escalation `level`: the manager, then the director (the rungs of the ladder)."""
    role = policy.escalation_ladder[level - 1].role
    if role is Role.director:
        # A stream opened without a named director escalates to the directors' group.
        return Actor(id=director_id or "directors", role=role)
    return Actor(id=manager_id, role=role)


@dataclass(frozen=True)
class Chased:
    """How far each concern has been chased: reminders sent, the rung reached, the repeats
    of the top rung (per concern key; missing keys are at zero)."""

    reminders: Mapping[str, int]
    levels: Mapping[str, int]
    repeats: Mapping[str, int]


def next_alarm(concerns: Iterable[Concern], chased: Chased, *, policy: Policy, now: datetime) -> Alarm | None:
    """The earliest reminder or escalation of the open `concerns`, still to come or overdue.

    A reminder whose deadline has passed is skipped: the escalation says more. Once the
    ladder's top rung is told, it is told again every `escalation_repeat` (when set).
    """
    alarms: list[Alarm] = []
    ladder = len(policy.escalation_ladder)
    for c in concerns:
        sent = chased.reminders.get(c.key, 0)
        remind = reminder_at(c, policy, sent)
        if remind is not None and now < c.due_at:
            alarms.append(Alarm(remind, AlarmKind.remind, c.key, repeat=sent))
        level = chased.levels.get(c.key, 0)
        if level < ladder:
            alarms.append(Alarm(escalation_at(c, policy, level + 1), AlarmKind.escalate, c.key, level + 1))
        elif policy.escalation_repeat:
            again = chased.repeats.get(c.key, 0) + 1
            at = escalation_at(c, policy, ladder, again)
            alarms.append(Alarm(at, AlarmKind.escalate, c.key, ladder, repeat=again))
    return min(alarms, key=lambda a: (a.at, a.kind != AlarmKind.escalate, a.concern), default=None)


def check_reminder(
    command: Remind, concern: Concern | None, chased: Chased, *, policy: Policy, now: datetime
) -> Concern:
    """The concern a timer's reminder is for, or the `timer.remind` refusal when none is due now."""
    sent = chased.reminders.get(command.concern, 0)
    when = reminder_at(concern, policy, sent) if concern is not None else None
    if concern is None or when is None or command.repeat != sent:
        raise RuleViolation("timer.remind", f"No reminder is pending for {command.concern!r}.")
    if now < when or now >= concern.due_at:
        raise RuleViolation("timer.remind", f"The reminder for {command.concern!r} is not due now.")
    return concern


def check_escalation(
    command: Escalate, concern: Concern | None, chased: Chased, *, policy: Policy, now: datetime
) -> tuple[Concern, datetime]:
    """The concern a timer's escalation is for and the instant it was due, or the
    `timer.escalate` refusal when it is not the next rung (or repeat) or not due yet."""
    if concern is None:
        raise RuleViolation("timer.escalate", f"Nothing is overdue for {command.concern!r}.")
    ladder, level = len(policy.escalation_ladder), chased.levels.get(command.concern, 0)
    if command.repeat:
        expected = (ladder, chased.repeats.get(command.concern, 0) + 1)
        next_one = level == ladder and bool(policy.escalation_repeat)
    else:
        expected, next_one = (level + 1, 0), level < ladder
    if not next_one or (command.level, command.repeat) != expected:
        raise RuleViolation(
            "timer.escalate", f"Escalation level {command.level} of {command.concern!r} is not the next one."
        )
    at = escalation_at(concern, policy, command.level, command.repeat)
    if now < at:
        raise RuleViolation("timer.escalate", f"Escalation of {command.concern!r} is not due yet.")
    return concern, at
