"""Builders for commands in tests: one place that knows a valid plan, report and actor."""

import uuid
from datetime import datetime, timedelta

from domain.actors import Actor, Role
from domain.commands import (
    AcceptReport,
    ApprovePlan,
    CheckIn,
    CompleteItem,
    SubmitPlan,
    SubmitReport,
)
from domain.models import Execution, PromisedItemIn, Report

REP = Actor(id="rep-wang", role=Role.rep)
MANAGER = Actor(id="mgr-li", role=Role.manager)
DIRECTOR = Actor(id="dir-zhao", role=Role.director)
AUDITOR = Actor(id="aud-chen", role=Role.auditor)
OTHER_REP = Actor(id="rep-sun", role=Role.rep)


def new_id(prefix: str = "v") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def submit_plan(visit_id: str, start: datetime, **changes: object) -> SubmitPlan:
    fields: dict[str, object] = {
        "command_id": new_id("c"),
        "actor": REP,
        "visit_id": visit_id,
        "rep_id": REP.id,
        "manager_id": MANAGER.id,
        "director_id": DIRECTOR.id,
        "plan": {
            "customer": {"id": "cust-001", "name": "华东五金 East China Hardware", "tier": "core"},
            "scheduled_start": start,
            "duration_minutes": 30,
            "method": "on_site",
            "purpose": "Quarterly review and new catalogue",
            "agenda": "Orders, complaints, competitor pricing",
        },
    }
    fields.update(changes)
    return SubmitPlan.model_validate(fields)


def approve(**changes: object) -> ApprovePlan:
    return ApprovePlan.model_validate({"command_id": new_id("c"), "actor": MANAGER, **changes})


def check_in(started: datetime, minutes: int = 25) -> CheckIn:
    return CheckIn(
        command_id=new_id("c"),
        actor=REP,
        execution=Execution(
            method="on_site",
            started_at=started,
            ended_at=started + timedelta(minutes=minutes),
            location="Shanghai, Minhang",
        ),
    )


def report(*items: tuple[str, datetime]) -> SubmitReport:
    return SubmitReport(
        command_id=new_id("c"),
        actor=REP,
        report=Report(
            outcome="Customer will trial the new line",
            customer_needs="Faster delivery to Suzhou",
            competitor_notes="Competitor offers 3% discount",
            next_steps="Send samples",
            promised_items=[
                PromisedItemIn(item_id=item_id, description=f"Promise {item_id}", owner_id=REP.id, due_at=due)
                for item_id, due in items
            ],
        ),
    )


def accept() -> AcceptReport:
    return AcceptReport(command_id=new_id("c"), actor=MANAGER, comment="Good visit")


def complete(item_id: str) -> CompleteItem:
    return CompleteItem(
        command_id=new_id("c"),
        actor=REP,
        item_id=item_id,
        resolution="Samples delivered",
        customer_reply="Customer confirmed receipt",
    )
