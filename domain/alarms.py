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

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from domain.actors import SYSTEM, Actor, CommandBase, Role
from domain.errors import RuleViolation
from domain.policy import Policy


class Remind(CommandBase):
    """Issued by the engine's timers: remind the person who owes something."""

    kind: Literal["remind"] = "remind"
    concern: str


class Escalate(CommandBase):
    """Issued by the engine's timers: tell the next rung of the ladder."""

    kind: Literal["escalate"] = "escalate"
    concern: str
    level: int = Field(ge=1)


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

    @property
    def command_id(self) -> str:
        # Unique per deadline: a report returned for revision gets a new deadline and so
        # new reminder and escalation ids.
        return f"timer:{self.kind}:{self.concern}:{self.level}@{self.at.isoformat()}"

    def command(self) -> Remind | Escalate:
        """The engine's command for this alarm."""
        if self.kind is AlarmKind.remind:
            return Remind(command_id=self.command_id, actor=SYSTEM, concern=self.concern)
        return Escalate(command_id=self.command_id, actor=SYSTEM, concern=self.concern, level=self.level)


@dataclass(frozen=True)
class Concern:
    """One open obligation with a deadline: its key, when it is due, who owes it, in words
    (for messages), and whether its owner is reminded before the deadline."""

    key: str
    due_at: datetime
    owner_id: str
    what: str
    remind: bool = True


def reminder_at(concern: Concern, policy: Policy) -> datetime | None:
    """When to remind the owner of `concern`, or None when it or the policy has no reminder."""
    if not concern.remind or not policy.reminder_before:
        return None
    return concern.due_at - policy.reminder_before


def escalation_at(concern: Concern, policy: Policy, level: int) -> datetime:
    """When escalation `level` (1 = the first rung) of `concern` is due."""
    return concern.due_at + policy.escalation_ladder[level - 1].after


def escalation_recipient(policy: Policy, level: int, *, manager_id: str, director_id: str | None) -> Actor:
    """Who receives escalation `level`: the manager, then the director (the rungs of the ladder)."""
    role = policy.escalation_ladder[level - 1].role
    if role is Role.director:
        # A stream opened without a named director escalates to the directors' group.
        return Actor(id=director_id or "directors", role=role)
    return Actor(id=manager_id, role=role)


def next_alarm(
    concerns: Iterable[Concern],
    *,
    reminded: Collection[str],
    levels: Mapping[str, int],
    policy: Policy,
    now: datetime,
) -> Alarm | None:
    """The earliest reminder or escalation of the open `concerns`, still to come or overdue.

    `reminded` names the concerns already reminded, `levels` the rung each has reached. A
    reminder whose deadline has passed is skipped: the escalation says more.
    """
    alarms: list[Alarm] = []
    ladder = len(policy.escalation_ladder)
    for c in concerns:
        remind = reminder_at(c, policy)
        if remind is not None and c.key not in reminded and now < c.due_at:
            alarms.append(Alarm(remind, AlarmKind.remind, c.key))
        level = levels.get(c.key, 0) + 1
        if level <= ladder:
            alarms.append(Alarm(escalation_at(c, policy, level), AlarmKind.escalate, c.key, level))
    return min(alarms, key=lambda a: (a.at, a.kind != AlarmKind.escalate, a.concern), default=None)


def check_reminder(
    command: Remind, concern: Concern | None, *, reminded: Collection[str], policy: Policy, now: datetime
) -> Concern:
    """The concern a timer's reminder is for, or the `timer.remind` refusal when none is due now."""
    when = reminder_at(concern, policy) if concern is not None else None
    if concern is None or when is None or command.concern in reminded:
        raise RuleViolation("timer.remind", f"No reminder is pending for {command.concern!r}.")
    if now < when or now >= concern.due_at:
        raise RuleViolation("timer.remind", f"The reminder for {command.concern!r} is not due now.")
    return concern


def check_escalation(
    command: Escalate, concern: Concern | None, *, levels: Mapping[str, int], policy: Policy, now: datetime
) -> tuple[Concern, datetime]:
    """The concern a timer's escalation is for and the instant it was due, or the
    `timer.escalate` refusal when it is not the next rung or not due yet."""
    if concern is None:
        raise RuleViolation("timer.escalate", f"Nothing is overdue for {command.concern!r}.")
    expected = levels.get(command.concern, 0) + 1
    if command.level != expected or command.level > len(policy.escalation_ladder):
        raise RuleViolation(
            "timer.escalate", f"Escalation level {command.level} of {command.concern!r} is not the next one."
        )
    at = escalation_at(concern, policy, command.level)
    if now < at:
        raise RuleViolation("timer.escalate", f"Escalation of {command.concern!r} is not due yet.")
    return concern, at
