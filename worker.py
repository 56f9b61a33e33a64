"""Wiring only: settings → Temporal client → database pool → worker (+ the notification relay)."""

import asyncio
import signal

import asyncpg
import structlog
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.customers import CustomerStore
from activities.db import create_pool
from activities.migrate import migrate
from activities.people import PeopleStore
from activities.plan_activities import PlanActivities
from activities.plan_store import PlanStore
from activities.relay import Relay, RelayReport, describe
from activities.store import EventStore
from activities.visit_activities import VisitActivities
from connect import connect_temporal, database_url
from logs import configure_logging
from settings import Settings
from workflows.month_opener import SCHEDULE_ID, MonthPlanOpener, ensure_schedule
from workflows.month_plan import MonthPlanWorkflow
from workflows.visit import VisitWorkflow

log = structlog.get_logger("visitflow.worker")


def build_worker(client: Client, pool: asyncpg.Pool, settings: Settings) -> Worker:
    """A worker for the visit and monthly plan workflows and their activities on the configured task queue."""
    activities = VisitActivities(EventStore(pool), settings.policy, PeopleStore(pool))
    plans = PlanActivities(
        PlanStore(pool), CustomerStore(pool), settings.policy, settings.planning, PeopleStore(pool)
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[VisitWorkflow, MonthPlanWorkflow, MonthPlanOpener],
        activities=[
            activities.append_events,
            activities.load_policy,
            activities.check_deputy,
            plans.append_plan_events,
            plans.review_month_plan,
            plans.load_plan_settings,
            plans.active_reps,
        ],
    )


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Migrate the database, then run the worker until `stop` is set (or a signal arrives)."""
    stop = stop or _stop_on_signals()
    client = await connect_temporal(settings)
    pool = await create_pool(
        database_url(settings), min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        applied = await migrate(pool)
        if applied:
            log.info("migrated", versions=applied)
        await _schedule_month_plans(client, settings)
        async with build_worker(client, pool, settings):
            log.info("worker started", task_queue=settings.task_queue, namespace=settings.temporal_namespace)
            relay = start_relay(pool, settings, stop) if settings.notify.enabled else None
            await stop.wait()
            log.info("worker stopping")
            await stop_relay(relay)
    finally:
        await pool.close()


def start_relay(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event) -> "asyncio.Task[None]":
    """The notification relay beside the worker, on the same pool, until `stop` is set."""
    relay = Relay(pool, settings.notify, timezone=settings.policy.timezone)
    return asyncio.create_task(relay.run(stop), name="visitflow-relay")


async def stop_relay(task: "asyncio.Task[None] | None") -> None:
    """Wait for the relay to finish its sends under way (it stops with the worker's `stop`)."""
    if task is None:
        return
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
        log.error("relay failed", error=describe(outcome))


async def serve_relay(
    settings: Settings, stop: asyncio.Event | None = None, *, once: bool = False
) -> RelayReport | None:
    """`visits relay`: the relay alone (no worker), until `stop`; with `once`, deliver what is
    due now and return what happened."""
    if not once:
        stop = stop or _stop_on_signals()
    pool = await create_pool(
        database_url(settings), min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        applied = await migrate(pool)
        if applied:
            log.info("migrated", versions=applied)
        relay = Relay(pool, settings.notify, timezone=settings.policy.timezone)
        if once:
            return await relay.drain()
        await relay.run(stop or asyncio.Event())
        return None
    finally:
        await pool.close()


async def _schedule_month_plans(client: Client, settings: Settings) -> None:
    """Each month's plans open on a schedule; every worker makes sure it exists."""
    if not settings.open_month_plans:
        return
    try:
        made = await ensure_schedule(
            client, task_queue=settings.task_queue, timezone=settings.policy.timezone
        )
    except RPCError as err:
        # A server without schedules (an old one, the time-skipping test server): plans are
        # then opened by reps, managers or an operator.
        log.warning("month plans not scheduled", reason=err.message)
        return
    if made:
        log.info("month plans scheduled", schedule=SCHEDULE_ID)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
