"""The monthly plan workflow's activities: append its events, review a submission, hand out settings."""

from collections.abc import Iterable
from typing import Protocol

import structlog
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import StoreError
from activities.plan_models import PlanAppendRequest, PlanAppendResult, ReviewRequest
from activities.plan_store import PlanStore
from domain.actors import Role
from domain.customers import CustomerRecord
from domain.month_plan import PlanSettings, SubmissionReview, review_submission
from domain.people import Person
from domain.planning import MonthPlanVisits, PlanRules
from domain.policy import Policy

log = structlog.get_logger(__name__)


class CustomerRegistry(Protocol):
    """Where a rep's customers are read from (`activities.customers.CustomerStore`)."""

    async def owned_by(self, rep_id: str) -> list[CustomerRecord]: ...


class Directory(Protocol):
    """Who works here (`activities.people.PeopleStore`)."""

    async def active_reps(self) -> list[Person]: ...

    async def get_many(self, ids: Iterable[str]) -> dict[str, Person]: ...


class RepLine(BaseModel):
    """An active rep of the directory with the managers their plan is opened for."""

    rep_id: str
    manager_id: str | None
    director_id: str | None


def _failure(exc: StoreError) -> ApplicationError:
    kind = type(exc).__name__
    return ApplicationError(exc.message, type=kind, non_retryable=exc.non_retryable)


class PlanActivities:
    """Activities bound to the plans' store, the customer registry and the settings new plans start with."""

    def __init__(
        self,
        store: PlanStore,
        registry: CustomerRegistry,
        policy: Policy,
        rules: PlanRules,
        directory: Directory | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._directory = directory
        self._settings = PlanSettings(policy=policy, rules=rules)

    @activity.defn(name="append_plan_events")
    async def append_plan_events(self, req: PlanAppendRequest) -> PlanAppendResult:
        """Record the workflow's plan events; a retried call returns the original result.

        Store errors become `ApplicationError`s typed by their class name, as for visits.
        """
        first, last = req.events[0], req.events[-1]
        with structlog.contextvars.bound_contextvars(
            plan_id=req.plan_id,
            seq_from=first.seq,
            seq_to=last.seq,
            command_id=first.command_id,
            attempt=activity.info().attempt,
        ):
            try:
                result = await self._store.append(req)
            except StoreError as exc:
                log.warning("plan append failed", error=type(exc).__name__, reason=exc.message)
                raise _failure(exc) from exc
            log.info("plan events appended", types=[e.type for e in req.events], duplicate=result.duplicate)
            return result

    @activity.defn(name="review_month_plan")
    async def review_month_plan(self, req: ReviewRequest) -> SubmissionReview:
        """The registry's snapshot of the rep's customers and the plan checks' findings.

        Read at the workflow's time of submission: the rep's customers, their previous
        month's plan, and each customer's last visit before the month.
        """
        with structlog.contextvars.bound_contextvars(plan_id=req.plan_id, attempt=activity.info().attempt):
            try:
                customers = await self._registry.owned_by(req.rep_id)
                previous = await self._store.previous_plan(req.rep_id, req.month)
                last = await self._store.last_visits([c.id for c in customers], req.month, req.policy)
            except StoreError as exc:
                log.warning("plan review failed", error=type(exc).__name__, reason=exc.message)
                raise _failure(exc) from exc
            try:
                review = review_submission(
                    MonthPlanVisits(rep_id=req.rep_id, month=req.month, visits=req.visits),
                    submitted_at=req.submitted_at,
                    rules=req.rules,
                    policy=req.policy,
                    customers=customers,
                    previous_plan=previous,
                    last_visits=last,
                )
            except ValueError as exc:
                # The logs contradict the checks' expectations: no retry changes that.
                raise ApplicationError(str(exc), type="ReviewFailed", non_retryable=True) from exc
            log.info("plan reviewed", customers=len(customers), findings=len(review.findings))
            return review

    @activity.defn(name="load_plan_settings")
    async def load_plan_settings(self) -> PlanSettings:
        """The policy and plan rules configured for new plans (recorded in their first event)."""
        return self._settings

    @activity.defn(name="active_reps")
    async def active_reps(self) -> list[RepLine]:
        """Every active rep of the directory, with their manager and that manager's director."""
        if self._directory is None:
            return []
        try:
            reps = await self._directory.active_reps()
            managers = await self._directory.get_many({r.manager_id for r in reps if r.manager_id})
        except StoreError as exc:
            log.warning("directory read failed", error=type(exc).__name__, reason=exc.message)
            raise _failure(exc) from exc
        lines = []
        for rep in reps:
            manager = managers.get(rep.manager_id) if rep.manager_id else None
            director = manager.manager_id if manager is not None and manager.role is Role.manager else None
            lines.append(RepLine(rep_id=rep.id, manager_id=rep.manager_id, director_id=director))
        return lines
