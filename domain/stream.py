"""The stream kernel: what every event-sourced stream (a visit, a monthly plan) shares, pure.

A stream is one instance's log: numbered events, each chained to the one before it. This
module holds the parts that do not depend on what the stream is about:

- `Recorded`, the envelope of one row (where it sits, who caused it, when, for which
  command, its link in the hash chain); each stream subclasses it to name its id column
  (`visit_id`, `plan_id`) and its event union;
- `seal`, which numbers, stamps and chains decided events after the stream's head;
- `Stream`, what the kernel needs to know of one kind of stream to fold it and follow its
  deadlines (the workflow's command log, the store and the auditor all take one).

Time and ids are always arguments, so a workflow replaying its history seals the same rows.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import Field

from domain.actors import Actor
from domain.alarms import Alarm
from domain.chain import GENESIS_HASH, link_hash, stream_content
from domain.models import Frozen, Instant


class Recorded(Frozen):
    """One row of a stream's log: an event in its envelope.

    Subclasses declare the stream's id field (named by `stream_field`) and `event` as their
    event union; the hash covers exactly `content()` (see `domain.chain`).
    """

    stream_field: ClassVar[str]

    event_id: str
    seq: int = Field(ge=1)
    occurred_at: Instant
    actor: Actor
    command_id: str
    event: Any
    prev_hash: str = GENESIS_HASH
    hash: str = ""

    @property
    def stream_id(self) -> str:
        return str(getattr(self, self.stream_field))

    @property
    def type(self) -> str:
        return str(self.event.type)

    def payload(self) -> dict[str, Any]:
        """The event's fields as stored in the `payload` column (type and version apart)."""
        return dict(self.event.model_dump(mode="json", exclude={"type", "schema_version"}))

    def content(self) -> dict[str, Any]:
        """The row's hashed fields, as the canonical JSON object the chain covers."""
        return stream_content(
            self.stream_field,
            self.stream_id,
            seq=self.seq,
            event_id=self.event_id,
            type=self.type,
            schema_version=self.event.schema_version,
            occurred_at=self.occurred_at,
            actor_id=self.actor.id,
            actor_role=self.actor.role.value,
            command_id=self.command_id,
            payload=self.payload(),
        )


R = TypeVar("R", bound=Recorded)
S = TypeVar("S")


def seal(
    envelope: type[R],
    events: Sequence[Any],
    *,
    stream_id: str,
    last_seq: int,
    head_hash: str,
    actors: Sequence[Actor],
    command_id: str,
    occurred_at: datetime,
    event_ids: Sequence[str],
) -> list[R]:
    """Number, stamp and chain decided events after the stream's current head.

    `actors` names who each event is recorded as (usually the command's actor for all; an
    approval given elsewhere is recorded as its approver's). Ids and time are arguments (the
    workflow passes `workflow.uuid4()` and `workflow.now()`), so the same call always yields
    the same rows.
    """
    if not len(event_ids) == len(actors) == len(events):
        raise ValueError("one event id and one actor are needed per event")
    sealed: list[R] = []
    prev = head_hash or GENESIS_HASH
    for offset, (event, event_id, actor) in enumerate(zip(events, event_ids, actors, strict=True), start=1):
        draft = envelope.model_validate(
            {
                envelope.stream_field: stream_id,
                "event_id": event_id,
                "seq": last_seq + offset,
                "occurred_at": occurred_at,
                "actor": actor,
                "command_id": command_id,
                "event": event,
                "prev_hash": prev,
            }
        )
        done = draft.model_copy(update={"hash": link_hash(prev, draft.content())})
        sealed.append(done)
        prev = done.hash
    return sealed


def _same_actor(event: Any, actor: Actor) -> Actor:
    return actor


@dataclass(frozen=True)
class Stream(Generic[S, R]):
    """One kind of stream, as the kernel needs it: its envelope, its fold, its deadlines.

    `evolve` applies one recorded event (raising ValueError for one that does not follow);
    `next_alarm` names the next reminder or escalation; `decide_alarm` decides the engine's
    command for an alarm (a `RuleViolation` when it is not due); `closed` says the stream
    takes no more events; `recorded_actor` says who an event is recorded as, given the
    command's actor.
    """

    name: str
    envelope: type[R]
    evolve: Callable[[S | None, R], S]
    next_alarm: Callable[[S, datetime], Alarm | None]
    decide_alarm: Callable[[S, Alarm, datetime], list[Any]]
    closed: Callable[[S], bool]
    recorded_actor: Callable[[Any, Actor], Actor] = _same_actor

    def fold(self, events: Iterable[R], state: S | None = None) -> S | None:
        """Fold events, in order, into the state they produce."""
        for recorded in events:
            state = self.evolve(state, recorded)
        return state

    def actors(self, events: Sequence[Any], actor: Actor) -> list[Actor]:
        """Who each of a command's events is recorded as."""
        return [self.recorded_actor(event, actor) for event in events]

    def seal(
        self,
        events: Sequence[Any],
        *,
        stream_id: str,
        last_seq: int,
        head_hash: str,
        actor: Actor,
        command_id: str,
        occurred_at: datetime,
        event_ids: Sequence[str],
    ) -> list[R]:
        """`seal` a command's events in this stream's envelope, each recorded as `actors` says."""
        return seal(
            self.envelope,
            events,
            stream_id=stream_id,
            last_seq=last_seq,
            head_hash=head_hash,
            actors=self.actors(events, actor),
            command_id=command_id,
            occurred_at=occurred_at,
            event_ids=event_ids,
        )

    def due_alarm(self, state: S, now: datetime) -> Alarm | None:
        """The earliest alarm whose time has come at `now`, or None."""
        alarm = self.next_alarm(state, now)
        return alarm if alarm is not None and alarm.at <= now else None
