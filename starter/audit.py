"""The auditor's view of a visit or a monthly plan: its log verified, replayed, laid out as a timeline.

Reads the PostgreSQL log only (the system of record), never the workflow's word: the rows
are chain-verified as stored, then folded with `domain.state.evolve`, the fold the
workflow itself uses. Trust in the read model is limited to one thing: its head (last seq
and hash) is the anchor that shows a deleted tail or rows appended past it;
`visits audit ID --check-history` compares the log with Temporal's history, a second,
independent record.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from activities.errors import UnreadableEvent
from activities.event_log import EventLog
from activities.plan_store import PlanStore
from activities.store import EventStore
from domain.month_plan import MonthPlanState, MonthPlanSummary, summarize_plan
from domain.state import VisitState
from domain.stream import Recorded
from domain.summary import VisitSummary, summarize
from domain.timeline import TimelineEntry, plan_steps
from domain.timeline import steps as timeline_steps
from domain.verify import ChainReport, verify_chain


class AuditStep(BaseModel):
    """One timeline entry with the whole state after it (for machines)."""

    entry: TimelineEntry
    state: VisitState


class VisitAudit(BaseModel):
    """What happened to a visit, who did it, when, and whether the log is whole and intact.

    `steps` runs up to `as_of` (all of it when None); `state` is the visit at that moment
    (None when it had not been submitted yet). `readable` is False when a row could not
    be folded; `problem` then says which and why.
    """

    visit_id: str
    as_of: datetime | None
    chain: ChainReport
    anchored: bool
    readable: bool
    problem: str | None = None
    steps: list[AuditStep]
    state: VisitState | None
    summary: VisitSummary | None

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.anchored and self.readable


class PlanAuditStep(BaseModel):
    """One timeline entry of a monthly plan with the plan after it (for machines)."""

    entry: TimelineEntry
    state: MonthPlanState


class PlanAudit(BaseModel):
    """What happened to a monthly plan, who did it, when, and whether its log is whole and
    intact: the plan's counterpart of `VisitAudit`, with the same fields."""

    plan_id: str
    as_of: datetime | None
    chain: ChainReport
    anchored: bool
    readable: bool
    problem: str | None = None
    steps: list[PlanAuditStep]
    state: MonthPlanState | None
    summary: MonthPlanSummary | None

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.anchored and self.readable


class NotLogged(Exception):
    """Neither the log nor the read model knows the stream asked for."""

    def __init__(self, stream: str, stream_id: str) -> None:
        super().__init__(f"The log holds no events of {stream} {stream_id}.")
        self.message = str(self)


class VisitNotLogged(NotLogged):
    def __init__(self, visit_id: str) -> None:
        super().__init__("visit", visit_id)


R = TypeVar("R", bound=Recorded)
S = TypeVar("S", VisitState, MonthPlanState)


@dataclass
class _Replay(Generic[S]):
    chain: ChainReport
    anchored: bool
    problem: str | None
    steps: list[tuple[TimelineEntry, S]]


async def _replay(
    log: EventLog[S, R, Any, Any],
    stream_id: str,
    as_of: datetime | None,
    steps: Callable[[list[R], datetime | None], Iterator[tuple[TimelineEntry, S]]],
) -> _Replay[S]:
    """Verify a stream's whole stored log against its head, then fold it up to `as_of`."""
    rows = await log.raw_rows(stream_id)
    anchor = (await log.heads([stream_id])).get(stream_id)
    if not rows and anchor is None:
        raise NotLogged(log.word, stream_id)
    field = log.tables.stream.envelope.stream_field
    chain = verify_chain(rows, anchor=anchor, visit_id=stream_id, stream_field=field)
    events: list[R] = []
    problem = None
    for row in rows:
        try:
            events.append(log.tables.recorded_from_row(row))
        except UnreadableEvent as err:
            problem = err.message
            break  # what comes after an unreadable event cannot be folded either
    done: list[tuple[TimelineEntry, S]] = []
    try:
        done.extend(steps(events, as_of))
    except ValueError as err:
        seq = events[len(done)].seq
        problem = problem or f"Event {seq} of {log.word} {stream_id} does not follow from those before: {err}"
    return _Replay(chain=chain, anchored=anchor is not None, problem=problem, steps=done)


class Auditor:
    """Audit reads over the visits' log and, when given, the monthly plans' log."""

    def __init__(self, store: EventStore, plans: PlanStore | None = None) -> None:
        self.store = store
        self.plans = plans or PlanStore(store.pool)

    async def audit(self, visit_id: str, as_of: datetime | None = None) -> VisitAudit:
        """Verify the visit's whole log, then replay it up to `as_of` (now when None).

        Raises `VisitNotLogged` when no event of the visit is recorded and the read model
        does not know it either; a visit whose events were all deleted is reported, not
        refused.
        """
        try:
            replay = await _replay(self.store.log, visit_id, as_of, timeline_steps)
        except NotLogged:
            raise VisitNotLogged(visit_id) from None
        state = replay.steps[-1][1] if replay.steps else None
        return VisitAudit(
            visit_id=visit_id,
            as_of=as_of,
            chain=replay.chain,
            anchored=replay.anchored,
            readable=replay.problem is None,
            problem=replay.problem,
            steps=[AuditStep(entry=entry, state=after) for entry, after in replay.steps],
            state=state,
            summary=summarize(state) if state is not None else None,
        )

    async def audit_plan(self, plan_id: str, as_of: datetime | None = None) -> PlanAudit:
        """Verify a monthly plan's whole log, then replay it up to `as_of`, as `audit` does.

        Raises `NotLogged` when neither the plans' log nor their read model knows the plan.
        """
        replay = await _replay(self.plans.log, plan_id, as_of, plan_steps)
        state = replay.steps[-1][1] if replay.steps else None
        return PlanAudit(
            plan_id=plan_id,
            as_of=as_of,
            chain=replay.chain,
            anchored=replay.anchored,
            readable=replay.problem is None,
            problem=replay.problem,
            steps=[PlanAuditStep(entry=entry, state=after) for entry, after in replay.steps],
            state=state,
            summary=summarize_plan(state) if state is not None else None,
        )
