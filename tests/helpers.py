"""Drive a visit or a monthly plan through commands the way the workflow does, without Temporal.

`VisitDriver.send(command, at)` runs `decide` at `at`, envelopes the events (fresh uuid
event ids, the command's actor and id, `at` as their time), folds them into the state and
returns the `AppendRequest` the workflow would send to `append_events`; `PlanDriver` does
the same for a rep's monthly plan (`PlanAppendRequest`). Store tests append those
requests; any test can read `driver.state` for the state after them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from activities.models import AppendRequest
from activities.plan_models import PlanAppendRequest
from domain import month_plan
from domain.actors import Actor, Role
from domain.commands import Command
from domain.deadlines import next_alarm
from domain.decide import decide
from domain.models import Customer, CustomerTier
from domain.month_plan import (
    PLANS,
    ApproveMonthPlan,
    MonthPlanCommand,
    MonthPlanState,
    OpenMonthPlan,
    PlanSettings,
    SubmissionReview,
    SubmitMonthPlan,
    plan_id_of,
    summarize_plan,
)
from domain.planning import PlannedVisit, PlanRules
from domain.policy import Policy
from domain.state import VisitState, fold
from domain.summary import summarize
from domain.visit import VISITS
from tests import factory as f

SHANGHAI = ZoneInfo("Asia/Shanghai")
PLAN_MANAGER = Actor(id="mgr-li", role=Role.manager)
ACME = Customer(id="C-17", name="Acme Trading 华东", tier=CustomerTier.core)


def shanghai(text: str) -> datetime:
    """A Shanghai wall-clock time as an aware instant."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


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
        recorded = VISITS.seal(
            events,
            stream_id=visit_id,
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
        return self.send(alarm.command(), max(alarm.at, now) if now else alarm.at)

    def fork(self) -> VisitDriver:
        """Another driver from the same state: a second writer with a view of the same log."""
        return VisitDriver(self.policy, self.state)


def drive(steps: Iterable[tuple[Command, datetime]], policy: Policy | None = None) -> list[AppendRequest]:
    """The append requests of a new visit driven through `steps` (command, time) in order."""
    driver = VisitDriver(policy)
    return [driver.send(command, at) for command, at in steps]


class PlanDriver:
    """One rep's plan for `month`, moved forward command by command; keeps the requests it made.

    Each driver has a rep of its own (a uuid-based id), so its plan id is new to any log.
    """

    def __init__(self, month: str = "2026-12") -> None:
        self.rep = Actor(id=f"rep-{uuid.uuid4().hex[:8]}", role=Role.rep)
        self.month = month
        self.state: MonthPlanState | None = None
        self.requests: list[PlanAppendRequest] = []

    @property
    def plan_id(self) -> str:
        return plan_id_of(self.rep.id, self.month)

    def send(
        self, command: MonthPlanCommand, now: datetime, review: SubmissionReview | None = None
    ) -> PlanAppendRequest:
        """The append request for `command` decided at `now`; raises RuleViolation if refused."""
        settings = PlanSettings(policy=Policy(), rules=PlanRules())
        events = month_plan.decide(self.state, command, now, settings=settings, review=review)
        recorded = PLANS.seal(
            events,
            stream_id=self.plan_id,
            last_seq=self.state.last_seq if self.state else 0,
            head_hash=self.state.head_hash if self.state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=now,
            event_ids=[str(uuid.uuid4()) for _ in events],
        )
        after = month_plan.fold(recorded, self.state)
        if after is None:
            raise ValueError(f"command {command.command_id} recorded no event")
        self.state = after
        request = PlanAppendRequest(plan_id=self.plan_id, events=recorded, summary=summarize_plan(after))
        self.requests.append(request)
        return request

    def open(self, now: str = "2026-11-02 09:00") -> PlanAppendRequest:
        command = OpenMonthPlan(
            command_id=f.new_id("c"),
            actor=self.rep,
            rep_id=self.rep.id,
            manager_id=PLAN_MANAGER.id,
            month=self.month,
        )
        return self.send(command, shanghai(now))

    def visit(self, n: int, when: str, purpose: str = "Review") -> PlannedVisit:
        return PlannedVisit(
            visit_id=f"{self.rep.id}-V{n}",
            customer_id=ACME.id,
            scheduled_start=shanghai(when),
            purpose=purpose,
        )

    def submit(self, *visits: PlannedVisit, now: str | datetime = "2026-11-20 10:00") -> PlanAppendRequest:
        command = SubmitMonthPlan(command_id=f.new_id("c"), actor=self.rep, visits=list(visits))
        at = shanghai(now) if isinstance(now, str) else now
        return self.send(command, at, SubmissionReview(customers=[ACME]))

    def approve(self, *visit_ids: str, now: str | datetime = "2026-11-23 15:00") -> PlanAppendRequest:
        command = ApproveMonthPlan(
            command_id=f.new_id("c"), actor=PLAN_MANAGER, visit_ids=list(visit_ids) or None
        )
        return self.send(command, shanghai(now) if isinstance(now, str) else now)

    def fire(self) -> PlanAppendRequest:
        """Issue the next reminder or escalation the plan's timer would, at its instant."""
        if self.state is None:
            raise ValueError("an unopened plan has no alarms")
        alarm = month_plan.next_alarm(self.state, self.state.updated_at)
        if alarm is None:
            raise ValueError(f"plan {self.plan_id} has no alarm pending")
        return self.send(alarm.command(), alarm.at)

    def fork(self) -> PlanDriver:
        """Another driver of the same plan from its current state: a second writer with the same view."""
        other = PlanDriver(self.month)
        other.rep, other.state = self.rep, self.state
        return other
