"""Given-events helpers for the pure domain tests.

A `Visit` applies commands the way the workflow does: `decide` at a given time, then
`envelope` (uuid event ids) and `evolve`. The builders below return a visit already in a
named state, so each test reads as: given this visit, when this command, then these
events (or this refusal).

All times are written as local wall-clock times in Asia/Shanghai, the default policy's
zone, through `at()`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from domain.actors import SYSTEM, Actor, Role
from domain.commands import (
    AcceptReport,
    ApprovePlan,
    CancelVisit,
    CheckIn,
    Command,
    CompleteItem,
    Escalate,
    RejectPlan,
    Remind,
    Reschedule,
    ReturnPlan,
    ReturnReport,
    RevisePlan,
    SubmitPlan,
    SubmitReport,
    WaiveReport,
)
from domain.decide import decide
from domain.errors import RuleViolation
from domain.events import Event, EventBase, RecordedEvent
from domain.models import Customer, CustomerTier, Execution, Plan, PromisedItemIn, Report, VisitMethod
from domain.policy import Policy
from domain.state import VisitState, evolve
from domain.visit import VISITS

SHANGHAI = ZoneInfo("Asia/Shanghai")

VISIT_ID = "visit-1"
REP = Actor(id="rep-1", role=Role.rep)
OTHER_REP = Actor(id="rep-2", role=Role.rep)
MANAGER = Actor(id="mgr-1", role=Role.manager)
OTHER_MANAGER = Actor(id="mgr-2", role=Role.manager)
DIRECTOR = Actor(id="dir-1", role=Role.director)
OTHER_DIRECTOR = Actor(id="dir-2", role=Role.director)
AUDITOR = Actor(id="audit-1", role=Role.auditor)
ENGINE = SYSTEM

CUSTOMER = Customer(id="cust-1", name="Hangzhou Trading Co.", tier=CustomerTier.core)


def at(text: str) -> datetime:
    """A Shanghai wall-clock time, e.g. ``at("2026-11-23 09:00")``, as an aware instant."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


# The default story: planned a week ahead for Monday 2026-11-23 09:00-10:00 Shanghai.
SUBMITTED_AT = at("2026-11-16 10:00")
APPROVED_AT = at("2026-11-17 10:00")
VISIT_START = at("2026-11-23 09:00")
VISIT_END = at("2026-11-23 10:00")
CHECKED_IN_AT = at("2026-11-23 12:00")
REPORTED_AT = at("2026-11-24 09:00")
REVIEWED_AT = at("2026-11-24 15:00")
REPORT_DUE = at("2026-11-25 10:00")  # 48 calendar hours after the recorded visit end
ITEM_DUE = at("2026-11-30 18:00")


def new_id() -> str:
    return str(uuid.uuid4())


def plan(start: datetime = VISIT_START, duration_minutes: int = 60, **changes: Any) -> Plan:
    fields: dict[str, Any] = {
        "customer": CUSTOMER,
        "scheduled_start": start,
        "duration_minutes": duration_minutes,
        "method": VisitMethod.on_site,
        "purpose": "Quarterly review and new price list",
    }
    fields.update(changes)
    return Plan(**fields)


# Command builders: every argument has the default story's value.


def submit_plan(
    actor: Actor = REP,
    start: datetime = VISIT_START,
    *,
    rep_id: str = REP.id,
    manager_id: str = MANAGER.id,
    director_id: str | None = DIRECTOR.id,
    approved_by: Actor | None = None,
    the_plan: Plan | None = None,
) -> SubmitPlan:
    return SubmitPlan(
        command_id=new_id(),
        actor=actor,
        visit_id=VISIT_ID,
        rep_id=rep_id,
        manager_id=manager_id,
        director_id=director_id,
        plan=the_plan or plan(start),
        approved_by=approved_by,
    )


def revise_plan(actor: Actor = REP, start: datetime = VISIT_START, **changes: Any) -> RevisePlan:
    return RevisePlan(command_id=new_id(), actor=actor, plan=plan(start, **changes), note="agenda added")


def approve_plan(actor: Actor = MANAGER) -> ApprovePlan:
    return ApprovePlan(command_id=new_id(), actor=actor, comment="ok")


def reject_plan(actor: Actor = MANAGER) -> RejectPlan:
    return RejectPlan(command_id=new_id(), actor=actor, reason="customer is handled by key accounts")


def return_plan(actor: Actor = MANAGER) -> ReturnPlan:
    return ReturnPlan(command_id=new_id(), actor=actor, reason="add the agenda")


def reschedule(
    actor: Actor = REP, start: datetime = at("2026-11-25 14:00"), duration_minutes: int | None = None
) -> Reschedule:
    return Reschedule(
        command_id=new_id(),
        actor=actor,
        scheduled_start=start,
        duration_minutes=duration_minutes,
        reason="customer asked to move it",
    )


def cancel(actor: Actor = REP) -> CancelVisit:
    return CancelVisit(command_id=new_id(), actor=actor, reason="customer closed for inventory")


def check_in(
    actor: Actor = REP, started_at: datetime = VISIT_START, ended_at: datetime = VISIT_END
) -> CheckIn:
    return CheckIn(
        command_id=new_id(),
        actor=actor,
        execution=Execution(method=VisitMethod.on_site, started_at=started_at, ended_at=ended_at),
    )


def promised(item_id: str | None, due_at: datetime = ITEM_DUE, owner_id: str = REP.id) -> PromisedItemIn:
    return PromisedItemIn(
        item_id=item_id, description=f"send {item_id or 'the'} quote", owner_id=owner_id, due_at=due_at
    )


def submit_report(actor: Actor = REP, items: list[PromisedItemIn] | None = None) -> SubmitReport:
    return SubmitReport(
        command_id=new_id(),
        actor=actor,
        report=Report(outcome="Customer will trial the new line", promised_items=items or []),
    )


def accept_report(actor: Actor = MANAGER) -> AcceptReport:
    return AcceptReport(command_id=new_id(), actor=actor, comment="good")


def return_report(actor: Actor = MANAGER) -> ReturnReport:
    return ReturnReport(command_id=new_id(), actor=actor, reason="add the competitor prices")


def waive_report(actor: Actor = MANAGER) -> WaiveReport:
    return WaiveReport(command_id=new_id(), actor=actor, reason="rep on sick leave")


def complete_item(item_id: str = "quote", actor: Actor = REP) -> CompleteItem:
    return CompleteItem(
        command_id=new_id(), actor=actor, item_id=item_id, resolution="sent", customer_reply="thanks"
    )


def remind(concern: str, actor: Actor = ENGINE) -> Remind:
    return Remind(command_id=new_id(), actor=actor, concern=concern)


def escalate(concern: str, level: int = 1, actor: Actor = ENGINE) -> Escalate:
    return Escalate(command_id=new_id(), actor=actor, concern=concern, level=level)


@dataclass
class Visit:
    """One visit's state and recorded log, advanced one command at a time."""

    policy: Policy = field(default_factory=Policy)
    state: VisitState | None = None
    log: list[RecordedEvent] = field(default_factory=list)

    def decide(self, command: Command, now: datetime) -> list[Event]:
        """The events `command` would produce at `now`, without recording them."""
        return decide(self.state, command, now, self.policy)

    def apply(self, command: Command, now: datetime) -> list[RecordedEvent]:
        """Decide, envelope and fold `command` at `now`; return the new recorded events."""
        events = self.decide(command, now)
        recorded = VISITS.seal(
            events,
            stream_id=self.state.visit_id if self.state else VISIT_ID,
            last_seq=self.state.last_seq if self.state else 0,
            head_hash=self.state.head_hash if self.state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=now,
            event_ids=[new_id() for _ in events],
        )
        for one in recorded:
            self.state = evolve(self.state, one)
        self.log.extend(recorded)
        return recorded

    def refuse(self, command: Command, now: datetime, rule: str) -> RuleViolation:
        """Assert that `command` at `now` is refused by `rule`; return the violation."""
        with pytest.raises(RuleViolation) as caught:
            self.decide(command, now)
        assert caught.value.rule == rule, caught.value.message
        return caught.value

    @property
    def s(self) -> VisitState:
        assert self.state is not None
        return self.state


E = TypeVar("E", bound=EventBase)


def first(recorded: list[RecordedEvent] | list[Event], kind: type[E]) -> E:
    """The first event, checked to be of type `kind` (and typed as one)."""
    event = recorded[0].event if isinstance(recorded[0], RecordedEvent) else recorded[0]
    assert isinstance(event, kind), event
    return event


def types(recorded: list[RecordedEvent] | list[Event]) -> list[str]:
    """The event type names, in order."""
    return [e.type for e in recorded]


# Builders: a visit given in a named state of the default story.


def submitted(policy: Policy | None = None, **submit: Any) -> Visit:
    visit = Visit(policy=policy or Policy())
    visit.apply(submit_plan(**submit), SUBMITTED_AT)
    return visit


def returned(policy: Policy | None = None) -> Visit:
    visit = submitted(policy)
    visit.apply(return_plan(), APPROVED_AT)
    return visit


def approved(policy: Policy | None = None, **submit: Any) -> Visit:
    visit = submitted(policy, **submit)
    visit.apply(approve_plan(), APPROVED_AT)
    return visit


def checked_in(policy: Policy | None = None, **submit: Any) -> Visit:
    visit = approved(policy, **submit)
    visit.apply(check_in(), CHECKED_IN_AT)
    return visit


def reported(items: list[PromisedItemIn] | None = None, policy: Policy | None = None) -> Visit:
    visit = checked_in(policy)
    visit.apply(submit_report(items=items), REPORTED_AT)
    return visit


def report_returned(items: list[PromisedItemIn] | None = None) -> Visit:
    visit = reported(items)
    visit.apply(return_report(), REVIEWED_AT)
    return visit


def following_up() -> Visit:
    """Report accepted, one promised item ("quote") still open."""
    visit = reported([promised("quote")])
    visit.apply(accept_report(), REVIEWED_AT)
    return visit


def closed() -> Visit:
    """Report accepted with no promised items: closed as completed."""
    visit = reported()
    visit.apply(accept_report(), REVIEWED_AT)
    return visit
