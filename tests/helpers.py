"""Drive a visit through commands the way the workflow does, without Temporal.

`VisitDriver.send(command, at)` runs `decide` at `at`, envelopes the events (fresh uuid
event ids, the command's actor and id, `at` as their time), folds them into the state and
returns the `AppendRequest` the workflow would send to `append_events`. Store tests append
those requests; any test can read `driver.state` for the state after them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from activities.models import AppendRequest
from domain.actors import SYSTEM
from domain.alarms import AlarmKind
from domain.commands import Command, Escalate, Remind
from domain.deadlines import next_alarm
from domain.decide import decide
from domain.events import envelope
from domain.policy import Policy
from domain.state import VisitState, fold
from domain.summary import summarize


class VisitDriver:
    """One visit's state, moved forward command by command; keeps the requests it made."""

    def __init__(self, policy: Policy | None = None, state: VisitState | None = None) -> None:
        self.policy = policy or Policy()
        self.state = state
        self.requests: list[AppendRequest] = []

    @property
    def visit_id(self) -> str:
        if self.state is None:
            raise ValueError("the visit has no plan yet")
        return self.state.visit_id

    def send(self, command: Command, at: datetime) -> AppendRequest:
        """The append request for `command` decided at `at`; raises RuleViolation if refused."""
        policy = self.state.policy if self.state else self.policy
        events = decide(self.state, command, at, policy)
        visit_id = self.state.visit_id if self.state else getattr(command, "visit_id", "")
        recorded = envelope(
            events,
            visit_id=visit_id,
            last_seq=self.state.last_seq if self.state else 0,
            head_hash=self.state.head_hash if self.state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=at,
            event_ids=[str(uuid.uuid4()) for _ in events],
        )
        after = fold(recorded, self.state)
        if after is None:
            raise ValueError(f"command {command.kind} recorded no event")
        request = AppendRequest(visit_id=visit_id, events=recorded, summary=summarize(after))
        self.state = after
        self.requests.append(request)
        return request

    def fire_next_alarm(self, now: datetime | None = None) -> AppendRequest:
        """Issue the next reminder or escalation the engine's timer would, at its instant."""
        if self.state is None:
            raise ValueError("a visit without a plan has no alarms")
        alarm = next_alarm(self.state, now or self.state.updated_at)
        if alarm is None:
            raise ValueError(f"visit {self.state.visit_id} has no alarm pending")
        command: Command
        if alarm.kind is AlarmKind.remind:
            command = Remind(command_id=alarm.command_id, actor=SYSTEM, concern=alarm.concern)
        else:
            command = Escalate(
                command_id=alarm.command_id, actor=SYSTEM, concern=alarm.concern, level=alarm.level
            )
        return self.send(command, max(alarm.at, now) if now else alarm.at)

    def fork(self) -> VisitDriver:
        """Another driver from the same state: a second writer with a view of the same log."""
        return VisitDriver(self.policy, self.state)


def drive(steps: Iterable[tuple[Command, datetime]], policy: Policy | None = None) -> list[AppendRequest]:
    """The append requests of a new visit driven through `steps` (command, time) in order."""
    driver = VisitDriver(policy)
    return [driver.send(command, at) for command, at in steps]
