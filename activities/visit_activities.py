"""The visit workflow's activities: append decided events, and hand out the configured policy."""

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import StoreError
from activities.models import AppendRequest, AppendResult
from activities.store import EventStore
from domain.policy import Policy

log = structlog.get_logger(__name__)


class VisitActivities:
    """Activities bound to one event store and the policy new visits start with."""

    def __init__(self, store: EventStore, policy: Policy) -> None:
        self._store = store
        self._policy = policy

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
