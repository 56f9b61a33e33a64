"""`visits start` and the visit commands: approve, check in, report, ... and show, overdue, list, schema.

Each command is thin: parse the flags (or a JSON body) → build the `domain.commands` model
→ one `VisitClient` call → print. The engine judges every command; this module only
reports its answer.
"""

import asyncio
import typing
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from temporalio.service import RPCError

from activities.plan_store import PlanStore
from connect import NotConfigured
from domain import commands as c
from domain.state import VisitState, VisitStatus, fold
from domain.summary import summarize
from domain.timeline import timeline
from settings import Settings
from starter.cli.common import (
    EXIT_BAD_INPUT,
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
    Unreachable,
    answer,
    console,
    dump,
    envelope,
    event_store,
    fail,
    instant,
    json_object,
    load_settings,
    local,
    parse_actor,
    put,
    run,
    temporal_client,
    visit_client,
)
from starter.cli.output import state_lines, timeline_table, visits_table
from starter.client import CommandRefused, VisitNotFound
from starter.liveness import check_liveness
from workflows.contract import OPENED, STATE, UPDATES, WORKFLOW_ID_PREFIX, WORKFLOW_TYPE, CommandResult

visits_app = typer.Typer()
"""The visit commands; the root app takes them in as its own (no sub-command name)."""

VisitIdArg = Annotated[str, typer.Argument(metavar="VISIT_ID", help="The visit's id.")]


def _print_result(result: CommandResult, output: Output) -> None:
    if output is Output.json:
        typer.echo(result.model_dump_json())
        return
    events = ", ".join(f"#{e.seq} {e.type}" for e in result.events) or "no events"
    verb = "already recorded" if result.duplicate else "recorded"
    typer.echo(
        f"{result.kind} {result.visit_id}: {verb} {events}; status {result.status}"
        f" (command id {result.command_id})"
    )


async def _send(
    cli: CliContext,
    settings: Settings,
    visit_id: str,
    model: type[BaseModel],
    body: dict[str, Any],
    output: Output,
) -> None:
    command = model.model_validate(body)
    async with visit_client(settings) as visits:
        result = await answer(
            visits.send(visit_id, command),  # type: ignore[arg-type]  # every model here is a Command
            cli.timeout,
            body["command_id"],
        )
    _print_result(result, output)


@visits_app.command()
def start(
    ctx: typer.Context,
    visit_id: Annotated[str | None, typer.Option("--visit-id", help="The new visit's id.")] = None,
    rep: Annotated[str | None, typer.Option("--rep", help="The rep who visits.")] = None,
    manager: Annotated[str | None, typer.Option("--manager", help="The manager who approves.")] = None,
    director: Annotated[str | None, typer.Option("--director", help="The director (2nd escalation).")] = None,
    customer_id: Annotated[str | None, typer.Option("--customer-id")] = None,
    customer_name: Annotated[str | None, typer.Option("--customer-name")] = None,
    tier: Annotated[str | None, typer.Option("--tier", help="core, potential, regular or assist.")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Visit time, ISO with offset: 2026-06-01T10:00+08:00.")
    ] = None,
    duration: Annotated[int | None, typer.Option("--duration", help="Expected minutes.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="on_site, online or phone.")] = None,
    purpose: Annotated[str | None, typer.Option("--purpose")] = None,
    agenda: Annotated[str | None, typer.Option("--agenda")] = None,
    approved_by: Annotated[
        str | None,
        typer.Option("--approved-by", metavar="MANAGER_ID", help="The plan was approved elsewhere."),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--as", metavar="ROLE:ID", help="Who submits. Default: rep:<--rep>.")
    ] = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Open a visit with its plan (submitted for approval, or --approved-by already)."""

    async def main(cli: CliContext, settings: Settings) -> None:
        body = json_object(json_body)
        for path, value in (
            ("visit_id", visit_id),
            ("rep_id", rep),
            ("manager_id", manager),
            ("director_id", director),
            ("plan.customer.id", customer_id),
            ("plan.customer.name", customer_name),
            ("plan.customer.tier", tier),
            ("plan.scheduled_start", at),
            ("plan.duration_minutes", duration),
            ("plan.method", method),
            ("plan.purpose", purpose),
            ("plan.agenda", agenda),
        ):
            put(body, path, value)
        if approved_by is not None:
            body["approved_by"] = {"role": "manager", "id": approved_by}
        if actor is not None:
            body["actor"] = parse_actor(actor)
        elif "actor" not in body and isinstance(body.get("rep_id"), str):
            body["actor"] = {"role": "rep", "id": body["rep_id"]}
        body["command_id"] = command_id or body.get("command_id") or str(uuid.uuid4())
        command = c.SubmitPlan.model_validate(body)
        async with visit_client(settings) as visits:
            result = await answer(visits.start_visit(command), cli.timeout, command.command_id)
        _print_result(result, output)

    run(ctx, main)


def _update(
    ctx: typer.Context,
    visit_id: str,
    model: type[BaseModel],
    fields: dict[str, Any],
    actor: str | None,
    command_id: str | None,
    json_body: str | None,
    output: Output,
) -> None:
    """Send one update: the JSON body, then --as/--command-id, then the command's own flags."""

    async def main(cli: CliContext, settings: Settings) -> None:
        body = envelope(json_body, actor, command_id)
        for path, value in fields.items():
            put(body, path, value)
        await _send(cli, settings, visit_id, model, body, output)

    run(ctx, main)


@visits_app.command()
def approve(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    comment: CommentOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Approve the plan (the visit's manager or a director)."""
    _update(
        ctx,
        visit_id,
        c.ApprovePlan,
        {"comment": comment, "on_behalf_of": for_id},
        actor,
        command_id,
        json_body,
        output,
    )


@visits_app.command()
def reject(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Reject the plan; the visit closes (manager or director)."""
    _update(
        ctx,
        visit_id,
        c.RejectPlan,
        {"reason": reason, "on_behalf_of": for_id},
        actor,
        command_id,
        json_body,
        output,
    )


@visits_app.command("return-plan")
def return_plan(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Return the plan to the rep for changes (修改意见)."""
    _update(
        ctx,
        visit_id,
        c.ReturnPlan,
        {"reason": reason, "on_behalf_of": for_id},
        actor,
        command_id,
        json_body,
        output,
    )


@visits_app.command()
def reschedule(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    at: Annotated[str | None, typer.Option("--at", help="New time, ISO with offset.")] = None,
    duration: Annotated[int | None, typer.Option("--duration", help="New expected minutes.")] = None,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Move the visit before it happens; the new time needs approval again."""
    fields = {"scheduled_start": at, "duration_minutes": duration, "reason": reason, "on_behalf_of": for_id}
    _update(ctx, visit_id, c.Reschedule, fields, actor, command_id, json_body, output)


@visits_app.command()
def cancel(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Cancel the visit before it happens (the rep, manager or a director)."""
    _update(
        ctx,
        visit_id,
        c.CancelVisit,
        {"reason": reason, "on_behalf_of": for_id},
        actor,
        command_id,
        json_body,
        output,
    )


@visits_app.command("check-in")
def check_in(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    method: Annotated[str | None, typer.Option("--method", help="on_site, online or phone.")] = None,
    started: Annotated[str | None, typer.Option("--start", help="When it started, ISO with offset.")] = None,
    ended: Annotated[str | None, typer.Option("--end", help="When it ended, ISO with offset.")] = None,
    location: Annotated[str | None, typer.Option("--location")] = None,
    notes: Annotated[str | None, typer.Option("--notes")] = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Record the visit (the rep): method, start and end, location. The report is due from its end."""
    fields = {
        "execution.method": method,
        "execution.started_at": started,
        "execution.ended_at": ended,
        "execution.location": location,
        "execution.notes": notes,
    }
    _update(ctx, visit_id, c.CheckIn, fields, actor, command_id, json_body, output)


def _items(specs: list[str] | None) -> list[dict[str, str]] | None:
    """`--item [ID|]OWNER|DUE|TEXT` flags → promised items."""
    if not specs:
        return None
    items = []
    for spec in specs:
        parts = [p.strip() for p in spec.split("|", 3)]
        if len(parts) == 3:
            parts.insert(0, "")
        if len(parts) != 4:
            raise BadInput(
                "--item takes [ID|]OWNER|DUE|DESCRIPTION, for example "
                f"'r-wang|2026-06-05T18:00+08:00|Send the price list' (got {spec!r})"
            )
        item_id, owner, due, text = parts
        item = {"owner_id": owner, "due_at": due, "description": text}
        if item_id:
            item["item_id"] = item_id
        items.append(item)
    return items


@visits_app.command()
def report(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    outcome: Annotated[str | None, typer.Option("--outcome", help="What came of the visit.")] = None,
    feedback: Annotated[str | None, typer.Option("--feedback", help="Customer feedback.")] = None,
    needs: Annotated[str | None, typer.Option("--needs", help="Customer needs.")] = None,
    problems: Annotated[str | None, typer.Option("--problems", help="Problems left open.")] = None,
    competitors: Annotated[str | None, typer.Option("--competitors", help="Competitor notes.")] = None,
    next_steps: Annotated[str | None, typer.Option("--next-steps")] = None,
    item: Annotated[
        list[str] | None,
        typer.Option("--item", metavar="[ID|]OWNER|DUE|TEXT", help="A promised item; repeat for more."),
    ] = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Submit the visit report (the rep), with its promised items."""
    fields: dict[str, Any] = {
        "report.outcome": outcome,
        "report.customer_feedback": feedback,
        "report.customer_needs": needs,
        "report.problems": problems,
        "report.competitor_notes": competitors,
        "report.next_steps": next_steps,
    }
    try:
        fields["report.promised_items"] = _items(item)
    except BadInput as err:
        fail(str(err), EXIT_BAD_INPUT)
    _update(ctx, visit_id, c.SubmitReport, fields, actor, command_id, json_body, output)


@visits_app.command("accept-report")
def accept_report(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    comment: CommentOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Accept the report (manager or director); promised items are then followed up."""
    _update(
        ctx,
        visit_id,
        c.AcceptReport,
        {"comment": comment, "on_behalf_of": for_id},
        actor,
        command_id,
        json_body,
        output,
    )


@visits_app.command("return-report")
def return_report(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Return the report for revision (manager or director); a new deadline starts."""
    _update(
        ctx,
        visit_id,
        c.ReturnReport,
        {"reason": reason, "on_behalf_of": for_id},
        actor,
        command_id,
        json_body,
        output,
    )


@visits_app.command("complete-item")
def complete_item(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    item: Annotated[str | None, typer.Option("--item", help="The promised item's id (item-1, ...).")] = None,
    resolution: Annotated[str | None, typer.Option("--resolution", help="What was done.")] = None,
    reply: Annotated[str | None, typer.Option("--reply", help="The reply given to the customer.")] = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Close a promised item with its resolution (the rep)."""
    fields = {"item_id": item, "resolution": resolution, "customer_reply": reply}
    _update(ctx, visit_id, c.CompleteItem, fields, actor, command_id, json_body, output)


@visits_app.command()
def waive(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    for_id: ForOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Waive a missing report, with a reason (manager or director); the waiver is on record."""
    _update(
        ctx,
        visit_id,
        c.WaiveReport,
        {"reason": reason, "on_behalf_of": for_id},
        actor,
        command_id,
        json_body,
        output,
    )


@visits_app.command()
def revise(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    at: Annotated[str | None, typer.Option("--at", help="Visit time, ISO with offset.")] = None,
    duration: Annotated[int | None, typer.Option("--duration")] = None,
    method: Annotated[str | None, typer.Option("--method")] = None,
    purpose: Annotated[str | None, typer.Option("--purpose")] = None,
    agenda: Annotated[str | None, typer.Option("--agenda")] = None,
    note: Annotated[str | None, typer.Option("--note", help="What changed, for the manager.")] = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Revise and resubmit a returned (or waiting) plan (the rep). Unnamed fields keep their value."""

    async def main(cli: CliContext, settings: Settings) -> None:
        body = envelope(json_body, actor, command_id)
        async with visit_client(settings) as visits:
            if "plan" not in body:
                # Start from the plan on record, so a flag changes only what it names.
                current = await answer(visits.state(visit_id), cli.timeout)
                body["plan"] = current.plan.model_dump(mode="json")
            for path, value in (
                ("plan.scheduled_start", at),
                ("plan.duration_minutes", duration),
                ("plan.method", method),
                ("plan.purpose", purpose),
                ("plan.agenda", agenda),
                ("note", note),
            ):
                put(body, path, value)
            command = c.RevisePlan.model_validate(body)
            result = await answer(visits.send(visit_id, command), cli.timeout, command.command_id)
        _print_result(result, output)

    run(ctx, main)


@visits_app.command()
def show(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    as_json: JsonOut = False,
) -> None:
    """The visit's state and its event timeline from the PostgreSQL log."""

    async def main(cli: CliContext, settings: Settings) -> None:
        async with event_store(settings) as store:
            events = await store.events(visit_id)
        if not events:
            raise VisitNotFound(visit_id)
        state = await _live_state(cli, settings, visit_id) or fold(events)
        if state is None:
            raise VisitNotFound(visit_id)
        summary = summarize(state)
        if as_json:
            dump(
                {
                    "state": state.model_dump(mode="json"),
                    "summary": summary.model_dump(mode="json"),
                    "events": [e.model_dump(mode="json") for e in events],
                }
            )
            return
        out = console()
        for line in state_lines(state, summary):
            out.print(line)
        out.print(timeline_table(timeline(events), state.policy.timezone))

    run(ctx, main)


async def _live_state(cli: CliContext, settings: Settings, visit_id: str) -> VisitState | None:
    """The workflow's own state when Temporal answers; None to fall back on the log's fold."""
    try:
        async with visit_client(settings) as visits:
            return await asyncio.wait_for(visits.state(visit_id), cli.timeout)
    except (NotConfigured, Unreachable, CommandRefused, RPCError, TimeoutError):
        # The log is the system of record: the same fold gives the same state.
        return None


@visits_app.command()
def overdue(
    ctx: typer.Context,
    at: Annotated[
        str | None, typer.Option("--at", help="Judge lateness at this time (ISO with offset). Default: now.")
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Open visits past a deadline or escalated, soonest deadline first; then the open visits and
    plans whose workflow has ended, so nothing follows their deadlines."""

    async def main(cli: CliContext, settings: Settings) -> None:
        now = instant(at, "--at") or datetime.now(UTC)
        unchecked: str | None = None
        async with event_store(settings) as store:
            rows = await store.overdue(now)
            try:
                async with asyncio.timeout(cli.timeout):
                    liveness = await check_liveness(
                        await temporal_client(settings),
                        store,
                        PlanStore(store.pool),
                        timezone=settings.policy.timezone,
                    )
            # The database is the system of record: what it says is shown whatever Temporal does.
            except (NotConfigured, Unreachable) as err:
                liveness, unchecked = None, str(err)
            except RPCError as err:
                liveness, unchecked = None, f"Temporal refused the request: {err.message}"
            except TimeoutError:
                liveness, unchecked = None, f"Temporal did not answer within {cli.timeout:g} s."
        unfollowed = liveness.unfollowed if liveness is not None else []
        if as_json:
            dump(
                {
                    "overdue": [r.model_dump(mode="json") for r in rows],
                    "unfollowed": [u.model_dump(mode="json") for u in unfollowed],
                    "workflows_checked": liveness is not None,
                    "workflows_problem": unchecked,
                }
            )
            return
        if rows:
            console().print(visits_table(rows, settings.policy.timezone, title="Overdue", overdue=True))
        else:
            typer.echo(f"Nothing overdue at {local(now, settings.policy.timezone)}.")
        if unfollowed:
            typer.echo("Open, but no workflow follows their deadlines:")
            for finding in unfollowed:
                typer.echo(f"  - {finding.message}")
        if unchecked is not None:
            typer.echo(
                f"Workflows not checked: {unchecked} An open visit or plan whose workflow has ended "
                "would not show."
            )

    run(ctx, main)


@visits_app.command("list")
def list_visits(
    ctx: typer.Context,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this rep's visits.")] = None,
    manager: Annotated[str | None, typer.Option("--manager", help="Only this manager's visits.")] = None,
    status: Annotated[
        VisitStatus | None, typer.Option("--status", help="Only visits in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: JsonOut = False,
) -> None:
    """Visits, latest scheduled first."""

    async def main(cli: CliContext, settings: Settings) -> None:
        async with event_store(settings) as store:
            rows = await store.list_visits(rep_id=rep, manager_id=manager, status=status, limit=limit)
        if as_json:
            dump([r.model_dump(mode="json") for r in rows])
            return
        if not rows:
            typer.echo("No visits match.")
            return
        console().print(visits_table(rows, settings.policy.timezone, title="Visits", overdue=False))

    run(ctx, main)


def contract_schemas(task_queue: str) -> dict[str, Any]:
    """JSON Schemas of the public contract: what a client in any language sends and reads."""
    result = CommandResult.model_json_schema()
    updates: dict[str, Any] = {
        OPENED: {
            "input": {"type": ["string", "null"], "description": "the opening command_id, or null"},
            "result": result,
        }
    }
    for model in typing.get_args(typing.get_args(c.Command)[0]):
        kind = model.model_fields["kind"].default
        if kind in UPDATES:
            updates[kind] = {"input": model.model_json_schema(), "result": result}
    return {
        "workflow": {
            "type": WORKFLOW_TYPE,
            "id": f"{WORKFLOW_ID_PREFIX}<visit_id>",
            "task_queue": task_queue,
            "input": c.SubmitPlan.model_json_schema(),
            "result": VisitState.model_json_schema(),
        },
        "updates": updates,
        "queries": {STATE: {"result": VisitState.model_json_schema()}},
    }


@visits_app.command()
def schema(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="One update or query name (approve_plan, state, ...); default: everything."),
    ] = None,
) -> None:
    """Print the JSON Schemas of the workflow's input, each update and the state query."""
    _, settings = load_settings(ctx)
    schemas = contract_schemas(settings.task_queue)
    if name is None:
        dump(schemas)
        return
    found = schemas["updates"].get(name) or schemas["queries"].get(name)
    if found is None:
        known = ", ".join([*schemas["updates"], *schemas["queries"]])
        fail(f"no update or query named {name!r}; known: {known}", EXIT_BAD_INPUT)
    dump(found)
