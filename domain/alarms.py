"""The alarm ladder every stream shares: reminders before a deadline, escalations after it.

An *alarm* is what the engine must do on its own, and when: remind the owner of an open
concern before its deadline, or escalate it one rung up the policy's ladder after it. The
engine's commands for alarms (`Remind`, `Escalate`) carry the actor `visitflow`/`system`
and an id derived from the alarm, so a timer fired twice records once.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from domain.actors import SYSTEM, CommandBase


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
