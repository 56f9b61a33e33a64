"""The auditor's view of a visit: its log verified, replayed and laid out as a timeline.

Reads the PostgreSQL log only (the system of record), never the workflow's word: the rows
are chain-verified as stored, then folded with `domain.state.evolve`, the fold the
workflow itself uses. Trust in the read model is limited to one thing: its head (last seq
and hash) is the anchor that shows a deleted tail or rows appended past it;
`visits audit ID --check-history` compares the log with Temporal's history, a second,
independent record.
"""

from datetime import datetime

from pydantic import BaseModel

from activities.errors import UnreadableEvent
from activities.store import EventStore, recorded_from_row
from domain.events import RecordedEvent
from domain.state import VisitState
from domain.summary import VisitSummary, summarize
from domain.timeline import TimelineEntry
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


class VisitNotLogged(Exception):
    def __init__(self, visit_id: str) -> None:
        super().__init__(f"The log holds no events of visit {visit_id}.")
        self.message = str(self)


class Auditor:
    """Audit reads over one event store."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def audit(self, visit_id: str, as_of: datetime | None = None) -> VisitAudit:
        """Verify the visit's whole log, then replay it up to `as_of` (now when None).

        Raises `VisitNotLogged` when no event of the visit is recorded and the read model
        does not know it either; a visit whose events were all deleted is reported, not
        refused.
        """
        rows = await self.store.raw_rows(visit_id)
        anchor = (await self.store.heads([visit_id])).get(visit_id)
        if not rows and anchor is None:
            raise VisitNotLogged(visit_id)
        chain = verify_chain(rows, anchor=anchor, visit_id=visit_id)
        events: list[RecordedEvent] = []
        problem = None
        for row in rows:
            try:
                events.append(recorded_from_row(row))
            except UnreadableEvent as err:
                problem = err.message
                break  # what comes after an unreadable event cannot be folded either
        steps: list[AuditStep] = []
        try:
            for entry, after in timeline_steps(events, as_of):
                steps.append(AuditStep(entry=entry, state=after))
        except ValueError as err:
            seq = events[len(steps)].seq
            problem = problem or f"Event {seq} of visit {visit_id} does not follow from those before: {err}"
        state = steps[-1].state if steps else None
        return VisitAudit(
            visit_id=visit_id,
            as_of=as_of,
            chain=chain,
            anchored=anchor is not None,
            readable=problem is None,
            problem=problem,
            steps=steps,
            state=state,
            summary=summarize(state) if state is not None else None,
        )
