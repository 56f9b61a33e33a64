"""The visit workflow's activities: append decided events, and hand out the configured policy."""

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import StoreError
from activities.models import AppendRequest, AppendResult, DeputyCheck
from activities.people import PeopleStore
from activities.store import EventStore
from domain.calendar import local_date
from domain.people import deputy_may_act
from domain.policy import Policy

log = structlog.get_logger(__name__)


class VisitActivities:
    """Activities bound to one event store and the policy new visits start with."""

    def __init__(self, store: EventStore, policy: Policy, people: PeopleStore | None = None) -> None:
        self._store = store
        self._policy = policy
        self._people = people

    @activity.defn(name="append_events")
    async def append_events(self, req: AppendRequest) -> AppendResult:
        """Record the workflow's events; a retried call returns the original result.

        Store errors become `ApplicationError`s typed by their class name (SequenceConflict,
        SequenceGap, ChainBroken, DuplicateEvent, InvalidAppend, StoreUnavailable, ...);
        the ones no retry can fix are non-retryable, outages are retried by Temporal.
        """
        first, last = req.events[0], req.events[-1]
        with structlog.contextvars.bound_contextvars(
            visit_id=req.visit_id,
            seq_from=first.seq,
            seq_to=last.seq,
            command_id=first.command_id,
            attempt=activity.info().attempt,
        ):
            try:
                result = await self._store.append(req)
            except StoreError as exc:
                kind = type(exc).__name__
                if exc.non_retryable:
                    log.warning("append refused", error=kind, reason=exc.message)
                else:
                    log.warning("append failed, will retry", error=kind, reason=exc.message)
                raise ApplicationError(exc.message, type=kind, non_retryable=exc.non_retryable) from exc
            log.info("events appended", types=[e.type for e in req.events], duplicate=result.duplicate)
            return result

    @activity.defn(name="load_policy")
    async def load_policy(self) -> Policy:
        """The policy configured for new visits (the workflow records it in the first event)."""
        return self._policy

    @activity.defn(name="check_deputy")
    async def check_deputy(self, req: DeputyCheck) -> None:
        """Refuse (`role.deputy`) unless the directory names the actor the absent manager's
        deputy, and that manager away, on the company's local date of `req.at`."""
        day = local_date(req.at, self._policy)
        found = await self._people.get_many([req.deputy_id, req.absent_id]) if self._people else {}
        deputy, absent = found.get(req.deputy_id), found.get(req.absent_id)
        if deputy is None or absent is None or not deputy_may_act(deputy, absent, day):
            raise ApplicationError(
                f"{req.deputy_id} is not {req.absent_id}'s deputy on {day}: the directory must name "
                f"{req.deputy_id} as deputy of {req.absent_id}, away that day.",
                type="role.deputy",
                non_retryable=True,
            )
