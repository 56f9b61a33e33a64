"""A visit as one stream of the kernel (`domain.stream`): its envelope, fold and deadlines."""

from datetime import datetime

from domain.actors import Actor
from domain.alarms import Alarm
from domain.deadlines import next_alarm
from domain.decide import decide
from domain.events import Event, PlanApproved, RecordedEvent
from domain.state import VisitState, evolve
from domain.stream import Stream


def _decide_alarm(state: VisitState, alarm: Alarm, now: datetime) -> list[Event]:
    return decide(state, alarm.command(), now, state.policy)


def recorded_actor(event: Event, actor: Actor) -> Actor:
    """Who `event` is recorded as, when `actor` sent the command that decided it.

    An approval given elsewhere (a monthly plan's, or one a submitter carries with the plan)
    is the approver's act: its row names the approver, not the rep who opened the visit.
    """
    if isinstance(event, PlanApproved) and event.approved_by is not None:
        return event.approved_by
    return actor


VISITS: Stream[VisitState, RecordedEvent] = Stream(
    name="visit",
    envelope=RecordedEvent,
    evolve=evolve,
    next_alarm=next_alarm,
    decide_alarm=_decide_alarm,
    closed=lambda state: state.closed,
    recorded_actor=recorded_actor,
)
"""The visit stream: one per visit, its log `visit_events`."""
