"""`visits`: the command-line tool.

Each command is thin: parse the flags (or a JSON body) → build the `domain.commands` model
→ one `VisitClient` call → print. The engine judges every command; this module only
reports its answer. Errors print one line on stderr: exit 2 for bad input (unreadable JSON,
a field the model refuses), 1 for a refused command or an unreachable server.
"""

import asyncio
import json
import re
import signal
import sys
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import typer
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from activities.db import create_pool
from activities.errors import StoreError
from activities.store import EventStore
from domain import commands as c
from domain.calendar import zone
from domain.state import VisitState, VisitStatus, fold
from domain.summary import VisitSummary, summarize
from domain.timeline import TimelineEntry, concern_text, timeline
from logs import configure_logging
from settings import Settings
from starter.audit import VisitNotLogged
from starter.bundle import BundleError
from starter.client import CommandRefused, VisitClient, VisitNotFound
from starter.connect import NotConfigured, connect_temporal, database_url, temporal_address
from workflows.contract import OPENED, STATE, UPDATES, WORKFLOW_ID_PREFIX, WORKFLOW_TYPE, CommandResult

T = TypeVar("T")

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the engine's answer before saying so (a worker may be down)."""


class BadInput(Exception):
    """Input this tool cannot turn into a command (unreadable JSON, a malformed flag)."""


class Unanswered(Exception):
    """The engine did not answer in time; the command may still be applied."""


@dataclass
class CliContext:
    """What every command runs with. Tests pass one (`obj=`) to aim the tool at their servers."""

    settings: Settings | None = None
    timeout: float = DEFAULT_TIMEOUT

    def resolve_settings(self) -> Settings:
        if self.settings is None:
            self.settings = Settings()
        return self.settings


app = typer.Typer(
    name="visits",
    help="Customer-visit lifecycles: plans, approvals, check-ins, reports, promised items, escalations.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks with locals would print settings (database passwords); errors get one line.
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _console() -> Console:
    # A terminal gets tables at its width; a pipe or a file gets whole lines, not 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


class Output(StrEnum):
    text = "text"
    json = "json"


# --- errors -------------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(" ".join(message.split()), err=True)
    raise typer.Exit(code)


def _fields(err: ValidationError) -> str:
    """A pydantic error as one line: each field path with its reason."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in err.errors(include_url=False)
    )


def _settings(ctx: typer.Context) -> tuple[CliContext, Settings]:
    cli: CliContext = ctx.obj or CliContext()
    try:
        return cli, cli.resolve_settings()
    except ValidationError as err:
        _fail(f"invalid settings (VISITFLOW_* variables): {_fields(err)}", EXIT_BAD_INPUT)


def _run(ctx: typer.Context, work: Callable[[CliContext, Settings], Coroutine[Any, Any, T]]) -> T:
    """Run one command's coroutine and turn every expected failure into one line and an exit code."""
    cli, settings = _settings(ctx)
    try:
        return asyncio.run(work(cli, settings))
    except BadInput as err:
        _fail(str(err), EXIT_BAD_INPUT)
    except ValidationError as err:
        _fail(f"invalid {err.title}: {_fields(err)}", EXIT_BAD_INPUT)
    except VisitNotFound as err:
        _fail(err.message, EXIT_REFUSED)
    except CommandRefused as err:
        _fail(f"refused ({err.rule}): {err.message}", EXIT_REFUSED)
    except (NotConfigured, Unanswered, Unreachable, StoreError, BundleError, VisitNotLogged) as err:
        _fail(str(err), EXIT_REFUSED)
    except WorkflowUpdateFailedError as err:
        # A failure without a rule code (the workflow itself failed): report its message.
        cause = err.cause
        _fail(f"command failed: {getattr(cause, 'message', None) or cause or err}", EXIT_REFUSED)
    except RPCError as err:
        _fail(f"Temporal refused the request: {err.message}", EXIT_REFUSED)
    except (OSError, asyncpg.PostgresError) as err:
        _fail(f"database error: {_reason(err)}", EXIT_REFUSED)


# --- input --------------------------------------------------------------------------------


def load_json(source: str) -> Any:
    """`--json` input: the JSON text itself, `@path` for a file, or `-` for stdin."""
    where = "--json"
    if source == "-":
        text, where = sys.stdin.read(), "--json - (stdin)"
    elif source.startswith("@"):
        path = Path(source[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise BadInput(f"cannot read --json file {path}: {err.strerror or err}") from None
        where = f"--json file {path}"
    else:
        text = source
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInput(f"bad JSON in {where}: {err.msg} (line {err.lineno} column {err.colno})") from None


def parse_actor(text: str) -> dict[str, str]:
    """`--as ROLE:ID` → the actor's JSON; the model checks the role."""
    role, sep, actor_id = text.partition(":")
    if not sep or not role or not actor_id:
        raise BadInput(f"--as takes ROLE:ID, for example --as manager:m-li (got {text!r})")
    return {"role": role.strip(), "id": actor_id.strip()}


def _put(body: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at the dotted `path` of `body` (flags given win over the JSON body)."""
    if value is None:
        return
    *parents, last = path.split(".")
    node = body
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[last] = value


def _body(json_source: str | None) -> dict[str, Any]:
    if json_source is None:
        return {}
    body = load_json(json_source)
    if not isinstance(body, dict):
        raise BadInput("--json must be a JSON object (the command's fields)")
    return body


def _envelope(json_source: str | None, actor: str | None, command_id: str | None) -> dict[str, Any]:
    """The command body: JSON first, then --as and --command-id (a fresh uuid4 when neither names one)."""
    body = _body(json_source)
    if actor is not None:
        body["actor"] = parse_actor(actor)
    if "actor" not in body:
        raise BadInput("say who acts: --as ROLE:ID, for example --as manager:m-li")
    if command_id is not None:
        body["command_id"] = command_id
    elif "command_id" not in body:
        body["command_id"] = str(uuid.uuid4())
    return body


def _instant(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        return TypeAdapter(AwareDatetime).validate_python(text)
    except ValidationError:
        raise BadInput(
            f"{flag} takes an ISO time with its offset, for example 2026-06-01T10:00+08:00 (got {text!r})"
        ) from None


# --- connections --------------------------------------------------------------------------


class Unreachable(Exception):
    """A server named by the settings (or by `visits dev`) does not answer."""


def _reason(err: BaseException) -> str:
    # The SDK's core wraps the socket error in a long transport trace; keep its message.
    text = str(err)
    found = re.search(r'message: "([^"]+)"', text)
    return found.group(1) if found else text


async def _connect_temporal(settings: Settings) -> Client:
    address = temporal_address(settings)
    try:
        return await connect_temporal(settings, address)
    except RuntimeError as err:
        raise Unreachable(
            f"Cannot reach the Temporal server at {address} ({_reason(err)}); is `visits dev` "
            "running, or is VISITFLOW_TEMPORAL_ADDRESS right?"
        ) from None


async def _create_pool(url: str) -> asyncpg.Pool:
    try:
        return await create_pool(url, min_size=1, max_size=2)
    except (OSError, asyncpg.PostgresError) as err:
        # The URL is not repeated: it may carry a password.
        raise Unreachable(f"Cannot use the PostgreSQL database ({_reason(err)}).") from None


@asynccontextmanager
async def visit_client(settings: Settings, *, history: bool = False) -> AsyncIterator[VisitClient]:
    """The one place the tool builds its `VisitClient` (Temporal, and the log when known)."""
    temporal = await _connect_temporal(settings)
    try:
        url = database_url(settings)
    except NotConfigured:
        if history:
            raise
        url = None
    pool = await _create_pool(url) if url else None
    try:
        yield VisitClient(temporal, pool, task_queue=settings.task_queue)
    finally:
        if pool is not None:
            await pool.close()


@asynccontextmanager
async def event_store(settings: Settings) -> AsyncIterator[EventStore]:
    """The PostgreSQL log and read models, for the commands that only read."""
    pool = await _create_pool(database_url(settings))
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


async def _answer(call: Awaitable[T], seconds: float, command_id: str | None = None) -> T:
    """Await the engine's answer; say plainly when it may not have come."""
    retry = f" Send it again with --command-id {command_id} to find out." if command_id else ""
    try:
        async with asyncio.timeout(seconds):
            return await call
    # The SDK reports an update cancelled by our timeout (or timed out by the server) as
    # its own error rather than TimeoutError.
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise Unanswered(
            f"No answer from the engine within {seconds:g} s (is a worker running? `visits dev` "
            f"or `visits worker`). The command may still be recorded.{retry}"
        ) from None
    except RPCError as err:
        if command_id is None:
            raise
        # The request may have reached the server before the connection failed.
        raise Unanswered(f"Temporal did not answer ({err.message}).{retry}") from None


# --- output -------------------------------------------------------------------------------


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
        result = await _answer(
            visits.send(visit_id, command),  # type: ignore[arg-type]  # every model here is a Command
            cli.timeout,
            body["command_id"],
        )
    _print_result(result, output)


def _local(instant: datetime | None, tz: str) -> str:
    if instant is None:
        return "-"
    return instant.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def _local_seconds(instant: datetime, tz: str) -> str:
    return instant.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S")


def _concern_words(key: str | None) -> str:
    return "-" if key is None else concern_text(key)


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timeline(entries: list[TimelineEntry], tz: str, *, status: bool = False) -> Table:
    """The timeline table; with `status`, the visit's status after each step too."""
    table = Table(title=f"Timeline (times in {tz})", title_justify="left", expand=False)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("actor", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("what / why", overflow="fold")
    if status:
        table.add_column("status after", no_wrap=True)
    for e in entries:
        why = f" — why: {_short(e.why, 120)}" if e.why else ""
        cells = [str(e.seq), _local_seconds(e.occurred_at, tz), f"{e.actor_id} ({e.actor_role})", e.type]
        cells.append(e.what + why)
        if status:
            cells.append(str(e.status))
        table.add_row(*cells)
    return table


def _state_lines(state: VisitState, summary: VisitSummary) -> list[str]:
    tz = state.policy.timezone
    plan = state.plan
    people = f"rep {state.rep_id} · manager {state.manager_id}"
    if state.director_id:
        people += f" · director {state.director_id}"
    status = str(state.status) + (f" ({state.outcome})" if state.outcome else "")
    lines = [
        f"Visit {state.visit_id}: {status}",
        f"  Customer   {plan.customer.name} ({plan.customer.id}, {plan.customer.tier})",
        f"  People     {people}",
        f"  Planned    {_local(plan.scheduled_start, tz)}, {plan.duration_minutes} min {plan.method}: "
        f"{_short(plan.purpose, 60)}",
    ]
    if state.execution is not None:
        x = state.execution
        lines.append(f"  Visited    {_local(x.started_at, tz)}–{_local(x.ended_at, tz)} {x.method}")
    if state.report_due_at is not None:
        late = " (late)" if state.report_late else ""
        lines.append(f"  Report due {_local(state.report_due_at, tz)}{late}")
    if state.items:
        done = len(state.items) - summary.open_items
        lines.append(f"  Promises   {done}/{len(state.items)} completed")
    if summary.next_due_at is not None:
        lines.append(
            f"  Next due   {_concern_words(summary.next_due_concern)} by {_local(summary.next_due_at, tz)}"
        )
    if summary.escalated:
        names = ", ".join(_concern_words(k) for k in summary.escalated)
        lines.append(f"  Escalated  {names} (level {summary.escalation_level})")
    return lines


def _visits_table(rows: list[VisitSummary], tz: str, *, title: str, overdue: bool) -> Table:
    table = Table(title=f"{title} (times in {tz})", title_justify="left")
    table.add_column("visit", no_wrap=True)
    if not overdue:
        table.add_column("status", no_wrap=True)
    table.add_column("rep", no_wrap=True)
    if not overdue:
        table.add_column("manager", no_wrap=True)
        table.add_column("scheduled", no_wrap=True)
    table.add_column("customer")
    table.add_column("due" if overdue else "next due")
    table.add_column("due at", no_wrap=True)
    table.add_column("escalation", justify="right", no_wrap=True)
    for s in rows:
        level = str(s.escalation_level) if s.escalation_level else "-"
        cells = [s.visit_id]
        if not overdue:
            cells.append(str(s.status))
        cells.append(s.rep_id)
        if not overdue:
            cells += [s.manager_id, _local(s.scheduled_start, tz)]
        cells += [
            f"{s.customer_name} ({s.customer_id})",
            _concern_words(s.next_due_concern),
            _local(s.next_due_at, tz),
            level,
        ]
        table.add_row(*cells)
    return table


def _dump(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


# --- shared options -----------------------------------------------------------------------

VisitIdArg = Annotated[str, typer.Argument(metavar="VISIT_ID", help="The visit's id.")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", metavar="ROLE:ID", help="Who acts: rep, manager, director or auditor, and id."),
]
CommandIdOpt = Annotated[
    str | None,
    typer.Option(
        "--command-id",
        help="Idempotency key: the same id sent again records nothing new. Default: a fresh uuid4.",
    ),
]
JsonOpt = Annotated[
    str | None,
    typer.Option(
        "--json",
        metavar="JSON|@FILE|-",
        help="The whole command body as JSON (text, @file, or - for stdin); flags given win.",
    ),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text: one line; json: the CommandResult.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (kept in the log).")]
CommentOpt = Annotated[str | None, typer.Option("--comment", help="A comment kept in the log.")]


# --- commands -----------------------------------------------------------------------------


@app.callback()
def _root(
    ctx: typer.Context,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the engine's answer.", min=1)
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Customer-visit lifecycles on Temporal, with every event in PostgreSQL.

    Servers come from VISITFLOW_* settings, or from a running `visits dev`.
    """
    cli = ctx.ensure_object(CliContext)
    cli.timeout = timeout


@app.command()
def dev(ctx: typer.Context) -> None:
    """Run embedded PostgreSQL, the Temporal dev server (with web UI) and a worker."""
    from starter.dev import DevError, run_dev

    _, settings = _settings(ctx)
    configure_logging(settings.log_format, settings.log_level)

    async def main() -> None:
        await run_dev(settings, _stop_on_signals())

    try:
        asyncio.run(main())
    except DevError as err:
        _fail(str(err), EXIT_REFUSED)


@app.command("worker")
def worker_command(ctx: typer.Context) -> None:
    """Run a worker against the configured (or `visits dev`) servers until Ctrl-C."""
    import worker

    _, settings = _settings(ctx)
    configure_logging(settings.log_format, settings.log_level)

    async def main(_: CliContext, s: Settings) -> None:
        await worker.serve(s, _stop_on_signals())

    _run(ctx, main)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command()
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
        body = _body(json_body)
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
            _put(body, path, value)
        if approved_by is not None:
            body["approved_by"] = {"role": "manager", "id": approved_by}
        if actor is not None:
            body["actor"] = parse_actor(actor)
        elif "actor" not in body and isinstance(body.get("rep_id"), str):
            body["actor"] = {"role": "rep", "id": body["rep_id"]}
        body["command_id"] = command_id or body.get("command_id") or str(uuid.uuid4())
        command = c.SubmitPlan.model_validate(body)
        async with visit_client(settings) as visits:
            result = await _answer(visits.start_visit(command), cli.timeout, command.command_id)
        _print_result(result, output)

    _run(ctx, main)


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
        body = _envelope(json_body, actor, command_id)
        for path, value in fields.items():
            _put(body, path, value)
        await _send(cli, settings, visit_id, model, body, output)

    _run(ctx, main)


@app.command()
def approve(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    comment: CommentOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Approve the plan (the visit's manager or a director)."""
    _update(ctx, visit_id, c.ApprovePlan, {"comment": comment}, actor, command_id, json_body, output)


@app.command()
def reject(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Reject the plan; the visit closes (manager or director)."""
    _update(ctx, visit_id, c.RejectPlan, {"reason": reason}, actor, command_id, json_body, output)


@app.command("return-plan")
def return_plan(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Return the plan to the rep for changes (修改意见)."""
    _update(ctx, visit_id, c.ReturnPlan, {"reason": reason}, actor, command_id, json_body, output)


@app.command()
def reschedule(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    at: Annotated[str | None, typer.Option("--at", help="New time, ISO with offset.")] = None,
    duration: Annotated[int | None, typer.Option("--duration", help="New expected minutes.")] = None,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Move the visit before it happens; the new time needs approval again."""
    fields = {"scheduled_start": at, "duration_minutes": duration, "reason": reason}
    _update(ctx, visit_id, c.Reschedule, fields, actor, command_id, json_body, output)


@app.command()
def cancel(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Cancel the visit before it happens (the rep, manager or a director)."""
    _update(ctx, visit_id, c.CancelVisit, {"reason": reason}, actor, command_id, json_body, output)


@app.command("check-in")
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


@app.command()
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
        _fail(str(err), EXIT_BAD_INPUT)
    _update(ctx, visit_id, c.SubmitReport, fields, actor, command_id, json_body, output)


@app.command("accept-report")
def accept_report(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    comment: CommentOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Accept the report (manager or director); promised items are then followed up."""
    _update(ctx, visit_id, c.AcceptReport, {"comment": comment}, actor, command_id, json_body, output)


@app.command("return-report")
def return_report(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Return the report for revision (manager or director); a new deadline starts."""
    _update(ctx, visit_id, c.ReturnReport, {"reason": reason}, actor, command_id, json_body, output)


@app.command("complete-item")
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


@app.command()
def waive(
    ctx: typer.Context,
    visit_id: VisitIdArg,
    reason: ReasonOpt = None,
    actor: AsOpt = None,
    command_id: CommandIdOpt = None,
    json_body: JsonOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Waive a missing report, with a reason (manager or director); the waiver is on record."""
    _update(ctx, visit_id, c.WaiveReport, {"reason": reason}, actor, command_id, json_body, output)


@app.command()
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
        body = _envelope(json_body, actor, command_id)
        async with visit_client(settings) as visits:
            if "plan" not in body:
                # Start from the plan on record, so a flag changes only what it names.
                current = await _answer(visits.state(visit_id), cli.timeout)
                body["plan"] = current.plan.model_dump(mode="json")
            for path, value in (
                ("plan.scheduled_start", at),
                ("plan.duration_minutes", duration),
                ("plan.method", method),
                ("plan.purpose", purpose),
                ("plan.agenda", agenda),
                ("note", note),
            ):
                _put(body, path, value)
            command = c.RevisePlan.model_validate(body)
            result = await _answer(visits.send(visit_id, command), cli.timeout, command.command_id)
        _print_result(result, output)

    _run(ctx, main)


@app.command()
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
            _dump(
                {
                    "state": state.model_dump(mode="json"),
                    "summary": summary.model_dump(mode="json"),
                    "events": [e.model_dump(mode="json") for e in events],
                }
            )
            return
        out = _console()
        for line in _state_lines(state, summary):
            out.print(line)
        out.print(_timeline(timeline(events), state.policy.timezone))

    _run(ctx, main)


async def _live_state(cli: CliContext, settings: Settings, visit_id: str) -> VisitState | None:
    """The workflow's own state when Temporal answers; None to fall back on the log's fold."""
    try:
        async with visit_client(settings) as visits:
            return await asyncio.wait_for(visits.state(visit_id), cli.timeout)
    except (NotConfigured, Unreachable, CommandRefused, RPCError, TimeoutError):
        # The log is the system of record: the same fold gives the same state.
        return None


@app.command()
def overdue(
    ctx: typer.Context,
    at: Annotated[
        str | None, typer.Option("--at", help="Judge lateness at this time (ISO with offset). Default: now.")
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Open visits past a deadline or escalated, soonest deadline first."""

    async def main(cli: CliContext, settings: Settings) -> None:
        now = _instant(at, "--at") or datetime.now(UTC)
        async with event_store(settings) as store:
            rows = await store.overdue(now)
        if as_json:
            _dump([r.model_dump(mode="json") for r in rows])
            return
        if not rows:
            typer.echo(f"Nothing overdue at {_local(now, settings.policy.timezone)}.")
            return
        _console().print(_visits_table(rows, settings.policy.timezone, title="Overdue", overdue=True))

    _run(ctx, main)


@app.command("list")
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
            _dump([r.model_dump(mode="json") for r in rows])
            return
        if not rows:
            typer.echo("No visits match.")
            return
        _console().print(_visits_table(rows, settings.policy.timezone, title="Visits", overdue=False))

    _run(ctx, main)


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


@app.command()
def schema(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="One update or query name (approve_plan, state, ...); default: everything."),
    ] = None,
) -> None:
    """Print the JSON Schemas of the workflow's input, each update and the state query."""
    _, settings = _settings(ctx)
    schemas = contract_schemas(settings.task_queue)
    if name is None:
        _dump(schemas)
        return
    found = schemas["updates"].get(name) or schemas["queries"].get(name)
    if found is None:
        known = ", ".join([*schemas["updates"], *schemas["queries"]])
        _fail(f"no update or query named {name!r}; known: {known}", EXIT_BAD_INPUT)
    _dump(found)


# Imported last: the audit commands use this module's helpers.
from starter.cli_audit import audit_app  # noqa: E402

app.add_typer(audit_app, name="audit")
from starter.cli_customers import customers_app  # noqa: E402

app.add_typer(customers_app, name="customers")

from starter.cli_kpi import kpi  # noqa: E402

app.command()(kpi)
from starter.cli_plans import plan_app  # noqa: E402

app.add_typer(plan_app, name="plan")


def main() -> None:
    """The `visits` console script."""
    # Client commands stay quiet; `dev` and `worker` reconfigure with VISITFLOW_LOG_LEVEL.
    configure_logging("auto", "WARNING")
    app()
