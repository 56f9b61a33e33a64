"""`visits plan`: a rep's monthly visit plan (open, submit, approve, return, show).

A plan is named by its rep and month: ``visits plan show r-wang 2026-12``. As with the
visit commands, each is thin: flags or a JSON body → a `domain.month_plan` command → one
`MonthPlanClient` call → print. Exit 2 for bad input, 1 for a refused command or an
unreachable server.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import typer
from rich.table import Table
from temporalio.service import RPCError

from connect import NotConfigured, database_url
from domain.month_plan import (
    ApproveMonthPlan,
    MonthPlanState,
    OpenMonthPlan,
    ReturnMonthPlan,
    SubmitMonthPlan,
    fold,
    plan_id_of,
    summarize_plan,
)
from domain.plan_checks import Finding
from domain.timeline import TimelineEntry, plan_steps
from settings import Settings
from starter.cli.common import (
    AsOpt,
    BadInput,
    CliContext,
    CommandIdOpt,
    CommentOpt,
    ForOpt,
    JsonOpt,
    JsonOut,
    Output,
    OutputOpt,
    ReasonOpt,
    Unanswered,
    answer,
    console,
    dump,
    envelope,
    load_json,
    local,
    open_pool,
    parse_actor,
    put,
    run,
    short,
    temporal_client,
)
from starter.cli.output import timeline_table
from starter.errors import CommandRefused
from starter.plan_client import MonthPlanClient, PlanNotFound
from workflows.plan_contract import PlanCommandResult

plan_app = typer.Typer(
    help="Monthly visit plans: the rep submits the month's visits, the manager approves all or part "
    "(each approved visit then opens, approved) or returns them; a missing plan is chased.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RepArg = Annotated[str, typer.Argument(metavar="REP_ID", help="The rep whose plan it is.")]
MonthArg = Annotated[str, typer.Argument(metavar="MONTH", help="The month planned, YYYY-MM.")]


@asynccontextmanager
async def plan_client(settings: Settings, *, log: bool = False) -> AsyncIterator[MonthPlanClient]:
    """The one place this module builds its `MonthPlanClient` (Temporal, and the log when known)."""
    temporal = await temporal_client(settings)
    try:
        url: str | None = database_url(settings)
    except NotConfigured:
        if log:
            raise
        url = None
    pool = await open_pool(url) if url else None
    try:
        yield MonthPlanClient(temporal, pool, task_queue=settings.task_queue)
    finally:
        if pool is not None:
            await pool.close()


def _finding_line(finding: Finding) -> str:
    return f"  [{finding.severity}] {finding.message} ({finding.rule})"


def _print_result(result: PlanCommandResult, output: Output) -> None:
    if output is Output.json:
        typer.echo(result.model_dump_json())
        return
    events = ", ".join(f"#{e.seq} {e.type}" for e in result.events) or "no events"
    verb = "already recorded" if result.duplicate else "recorded"
    typer.echo(
        f"{result.kind} {result.plan_id}: {verb} {events}; status {result.status}"
        f" (command id {result.command_id})"
    )
    for finding in result.findings:
        typer.echo(_finding_line(finding))


async def _send(
    cli: CliContext,
    settings: Settings,
    rep_id: str,
    month: str,
    command: SubmitMonthPlan | ApproveMonthPlan | ReturnMonthPlan,
    output: Output,
) -> None:
    async with plan_client(settings) as plans:
        result = await answer(plans.send(rep_id, month, command), cli.timeout, command.command_id)
    _print_result(result, output)


@plan_app.command("open")
def open_plan(
    ctx: typer.Context,
    rep: Annotated[str | None, typer.Option("--rep", help="The rep whose plan it is.")] = None,
    manager: Annotated[str | None, typer.Option("--manager", help="The manager who approves it.")] = None,
    director: Annotated[
        str | None, typer.Option("--director", help="The director (second escalation).")
    ] = None,
    month: Annotated[str | None, typer.Option("--month", help="The month planned, YYYY-MM.")] = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Open a rep's plan for a month (the rep, their manager or a director); its deadline starts."""

    async def main(cli: CliContext, settings: Settings) -> None:
        body = envelope(json_body, actor, command_id)
        for path, value in (
            ("rep_id", rep),
            ("manager_id", manager),
            ("director_id", director),
            ("month", month),
        ):
            put(body, path, value)
        command = OpenMonthPlan.model_validate(body)
        async with plan_client(settings) as plans:
            result = await answer(plans.open_month_plan(command), cli.timeout, command.command_id)
        _print_result(result, output)

    run(ctx, main)


def _visits(specs: list[str] | None) -> list[dict[str, Any]] | None:
    """`--visit ID|CUSTOMER|AT|MINUTES|PURPOSE` flags → planned visits."""
    if not specs:
        return None
    visits = []
    for spec in specs:
        parts = [p.strip() for p in spec.split("|", 4)]
        if len(parts) != 5:
            raise BadInput(
                "--visit takes ID|CUSTOMER_ID|AT|MINUTES|PURPOSE, for example "
                f"'V-101|C-17|2026-12-07T10:00+08:00|30|Monthly review' (got {spec!r})"
            )
        visit_id, customer_id, at, minutes, purpose = parts
        visits.append(
            {
                "visit_id": visit_id,
                "customer_id": customer_id,
                "scheduled_start": at,
                "duration_minutes": minutes,
                "purpose": purpose,
            }
        )
    return visits


@plan_app.command()
def submit(
    ctx: typer.Context,
    rep_id: RepArg,
    month: MonthArg,
    visit: Annotated[
        list[str] | None,
        typer.Option(
            "--visit", metavar="ID|CUSTOMER|AT|MINUTES|PURPOSE", help="A planned visit; repeat for more."
        ),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note for the manager.")] = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="JSON|@FILE|-",
            help='The command body ({"visits": [...], "note": ...}) or just the list of visits, '
            "as JSON text, @file, or - for stdin; flags given win.",
        ),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Submit (or revise, until approved) the plan: the whole list of the month's visits (the rep)."""

    async def main(cli: CliContext, settings: Settings) -> None:
        loaded = load_json(json_body) if json_body is not None else {}
        if isinstance(loaded, list):
            loaded = {"visits": loaded}
        if not isinstance(loaded, dict):
            raise BadInput("--json must be a JSON object (the command's fields) or a list of visits")
        body = dict(loaded)
        if actor is not None:
            body["actor"] = parse_actor(actor)
        if "actor" not in body:
            raise BadInput("say who acts: --as ROLE:ID, for example --as rep:r-wang")
        if command_id is not None or "command_id" not in body:
            body["command_id"] = command_id or str(uuid.uuid4())
        put(body, "visits", _visits(visit))
        put(body, "note", note)
        command = SubmitMonthPlan.model_validate(body)
        await _send(cli, settings, rep_id, month, command, output)

    run(ctx, main)


@plan_app.command()
def approve(
    ctx: typer.Context,
    rep_id: RepArg,
    month: MonthArg,
    visit: Annotated[
        list[str] | None,
        typer.Option("--visit", metavar="VISIT_ID", help="Approve only these visits (repeat); default: all."),
    ] = None,
    comment: CommentOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Approve the plan, all of it or the visits named (the manager or a director); they then open."""

    async def main(cli: CliContext, settings: Settings) -> None:
        body = envelope(json_body, actor, command_id)
        put(body, "visit_ids", visit or None)
        put(body, "comment", comment)
        put(body, "on_behalf_of", for_id)
        await _send(cli, settings, rep_id, month, ApproveMonthPlan.model_validate(body), output)

    run(ctx, main)


@plan_app.command("return")
def return_plan(
    ctx: typer.Context,
    rep_id: RepArg,
    month: MonthArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Return the plan to the rep for changes, with a reason (the manager or a director)."""

    async def main(cli: CliContext, settings: Settings) -> None:
        body = envelope(json_body, actor, command_id)
        put(body, "reason", reason)
        put(body, "on_behalf_of", for_id)
        await _send(cli, settings, rep_id, month, ReturnMonthPlan.model_validate(body), output)

    run(ctx, main)


# --- show ---------------------------------------------------------------------------------------


def _decision(state: MonthPlanState, visit_id: str) -> str:
    if visit_id in state.started:
        return "started"
    if visit_id in state.not_started:
        return f"not started ({state.not_started[visit_id].rule})"
    if visit_id in state.approved:
        return "approved"
    if visit_id in state.declined:
        return "declined"
    return "-"


def plan_lines(state: MonthPlanState) -> list[str]:
    """The plan's header lines: who, when due, submitted, escalated."""
    tz = state.policy.timezone
    people = f"rep {state.rep_id} · manager {state.manager_id}"
    if state.director_id:
        people += f" · director {state.director_id}"
    lines = [f"Plan {state.plan_id}: {state.status}", f"  People     {people}"]
    lines.append(f"  Due by     {local(state.due_at, tz)}")
    if state.submitted_at is not None:
        late = " (first submitted late)" if state.submitted_late else ""
        lines.append(f"  Submitted  revision {state.revision} at {local(state.submitted_at, tz)}{late}")
    if state.escalation_level:
        lines.append(f"  Escalated  level {state.escalation_level}")
    return lines


def print_plan(state: MonthPlanState, entries: list[TimelineEntry], *, status: bool = False) -> None:
    """The plan's header, its visits and their fate, its findings and its timeline."""
    tz = state.policy.timezone
    out = console()
    for line in plan_lines(state):
        out.print(line)
    if state.visits:
        table = Table(title=f"Visits (times in {tz})", title_justify="left")
        for column in ("visit", "customer", "when", "min", "method", "purpose", "decision"):
            table.add_column(column, no_wrap=column not in ("customer", "purpose"))
        for v in state.visits:
            customer = state.customers.get(v.customer_id)
            who = f"{customer.name} ({v.customer_id})" if customer else v.customer_id
            table.add_row(
                v.visit_id,
                who,
                local(v.scheduled_start, tz),
                str(v.duration_minutes),
                str(v.method),
                short(v.purpose, 50),
                _decision(state, v.visit_id),
            )
        out.print(table)
    if state.findings:
        out.print("Findings:")
        for finding in state.findings:
            out.print(_finding_line(finding))
    out.print(timeline_table(entries, tz, status=status))


@plan_app.command()
def show(ctx: typer.Context, rep_id: RepArg, month: MonthArg, as_json: JsonOut = False) -> None:
    """The plan's state, its visits and their fate, and its event timeline from the PostgreSQL log."""

    async def main(cli: CliContext, settings: Settings) -> None:
        async with plan_client(settings, log=True) as plans:
            events = await plans.store.events(plan_id_of(rep_id, month))
            if not events:
                raise PlanNotFound(rep_id, month)
            try:
                state: MonthPlanState | None = await answer(
                    plans.month_plan_state(rep_id, month), cli.timeout
                )
            except (CommandRefused, Unanswered, RPCError):
                # The log is the system of record: the same fold gives the same state.
                state = None
        state = state or fold(events)
        if state is None:
            raise PlanNotFound(rep_id, month)
        if as_json:
            dump(
                {
                    "state": state.model_dump(mode="json"),
                    "summary": summarize_plan(state).model_dump(mode="json"),
                    "events": [e.model_dump(mode="json") for e in events],
                }
            )
            return
        print_plan(state, [entry for entry, _ in plan_steps(events)])

    run(ctx, main)
