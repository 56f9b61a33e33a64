"""What every `visits` sub-command shares: its context, input parsing, connections, output.

Sub-command modules import this module (and `output`), never the root app, so the root
can import them all without a circle. Errors print one line on stderr: exit 2 for bad
input (unreadable JSON, a field the model refuses), 1 for a refused command or an
unreachable server.
"""

import asyncio
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import typer
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from rich.console import Console
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from activities.db import create_pool
from activities.errors import StoreError
from activities.store import EventStore
from connect import NotConfigured, connect_temporal, database_url, temporal_address
from domain.calendar import zone
from settings import Settings
from starter.audit import NotLogged
from starter.bundle import BundleError
from starter.client import CommandRefused, VisitClient, VisitNotFound

T = TypeVar("T")

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for the engine's answer before saying so (a worker may be down)."""


class BadInput(Exception):
    """Input this tool cannot turn into a command (unreadable JSON, a malformed flag)."""


class Unanswered(Exception):
    """The engine did not answer in time; the command may still be applied."""


class Unreachable(Exception):
    """A server named by the settings (or by `visits dev`) does not answer."""


@dataclass
class CliContext:
    """What every command runs with. Tests pass one (`obj=`) to aim the tool at their servers."""

    settings: Settings | None = None
    timeout: float = DEFAULT_TIMEOUT

    def resolve_settings(self) -> Settings:
        if self.settings is None:
            self.settings = Settings()
        return self.settings


class Output(StrEnum):
    text = "text"
    json = "json"


# --- shared options -----------------------------------------------------------------------

AsOpt = Annotated[
    str | None,
    typer.Option("--as", metavar="ROLE:ID", help="Who acts: rep, manager, director or auditor, and id."),
]
ForOpt = Annotated[
    str | None,
    typer.Option(
        "--for",
        metavar="MANAGER_ID",
        help="Act as the deputy of this absent manager (the directory must name you their deputy).",
    ),
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


# --- errors -------------------------------------------------------------------------------


def fail(message: str, code: int) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    typer.echo(" ".join(message.split()), err=True)
    raise typer.Exit(code)


def _fields(err: ValidationError) -> str:
    """A pydantic error as one line: each field path with its reason."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in err.errors(include_url=False)
    )


def load_settings(ctx: typer.Context) -> tuple[CliContext, Settings]:
    """The command's context and its settings; invalid VISITFLOW_* variables exit 2."""
    cli: CliContext = ctx.obj or CliContext()
    try:
        return cli, cli.resolve_settings()
    except ValidationError as err:
        fail(f"invalid settings (VISITFLOW_* variables): {_fields(err)}", EXIT_BAD_INPUT)


def run(ctx: typer.Context, work: Callable[[CliContext, Settings], Coroutine[Any, Any, T]]) -> T:
    """Run one command's coroutine and turn every expected failure into one line and an exit code."""
    cli, settings = load_settings(ctx)
    try:
        return asyncio.run(work(cli, settings))
    except BadInput as err:
        fail(str(err), EXIT_BAD_INPUT)
    except ValidationError as err:
        fail(f"invalid {err.title}: {_fields(err)}", EXIT_BAD_INPUT)
    except VisitNotFound as err:
        fail(err.message, EXIT_REFUSED)
    except CommandRefused as err:
        fail(f"refused ({err.rule}): {err.message}", EXIT_REFUSED)
    except (NotConfigured, Unanswered, Unreachable, StoreError, BundleError, NotLogged) as err:
        fail(str(err), EXIT_REFUSED)
    except WorkflowUpdateFailedError as err:
        # A failure without a rule code (the workflow itself failed): report its message.
        cause = err.cause
        fail(f"command failed: {getattr(cause, 'message', None) or cause or err}", EXIT_REFUSED)
    except RPCError as err:
        fail(f"Temporal refused the request: {err.message}", EXIT_REFUSED)
    except (OSError, asyncpg.PostgresError) as err:
        fail(f"database error: {_reason(err)}", EXIT_REFUSED)


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


def put(body: dict[str, Any], path: str, value: Any) -> None:
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


def json_object(json_source: str | None) -> dict[str, Any]:
    """The `--json` body, which must be an object; empty when not given."""
    if json_source is None:
        return {}
    body = load_json(json_source)
    if not isinstance(body, dict):
        raise BadInput("--json must be a JSON object (the command's fields)")
    return body


def envelope(json_source: str | None, actor: str | None, command_id: str | None) -> dict[str, Any]:
    """The command body: JSON first, then --as and --command-id (a fresh uuid4 when neither names one)."""
    body = json_object(json_source)
    if actor is not None:
        body["actor"] = parse_actor(actor)
    if "actor" not in body:
        raise BadInput("say who acts: --as ROLE:ID, for example --as manager:m-li")
    if command_id is not None:
        body["command_id"] = command_id
    elif "command_id" not in body:
        body["command_id"] = str(uuid.uuid4())
    return body


def instant(text: str | None, flag: str) -> datetime | None:
    """A flag's ISO time with offset, or None when the flag was not given."""
    if text is None:
        return None
    try:
        return TypeAdapter(AwareDatetime).validate_python(text)
    except ValidationError:
        raise BadInput(
            f"{flag} takes an ISO time with its offset, for example 2026-06-01T10:00+08:00 (got {text!r})"
        ) from None


# --- connections --------------------------------------------------------------------------


def _reason(err: BaseException) -> str:
    # The SDK's core wraps the socket error in a long transport trace; keep its message.
    text = str(err)
    found = re.search(r'message: "([^"]+)"', text)
    return found.group(1) if found else text


async def temporal_client(settings: Settings) -> Client:
    """A Temporal client for the configured (or `visits dev`) server, or `Unreachable`."""
    address = temporal_address(settings)
    try:
        return await connect_temporal(settings, address)
    except RuntimeError as err:
        raise Unreachable(
            f"Cannot reach the Temporal server at {address} ({_reason(err)}); is `visits dev` "
            "running, or is VISITFLOW_TEMPORAL_ADDRESS right?"
        ) from None


async def open_pool(url: str) -> asyncpg.Pool:
    """A small pool on the database at `url`, or `Unreachable`."""
    try:
        return await create_pool(url, min_size=1, max_size=2)
    except (OSError, asyncpg.PostgresError) as err:
        # The URL is not repeated: it may carry a password.
        raise Unreachable(f"Cannot use the PostgreSQL database ({_reason(err)}).") from None


@asynccontextmanager
async def visit_client(settings: Settings, *, history: bool = False) -> AsyncIterator[VisitClient]:
    """The one place the tool builds its `VisitClient` (Temporal, and the log when known)."""
    temporal = await temporal_client(settings)
    try:
        url = database_url(settings)
    except NotConfigured:
        if history:
            raise
        url = None
    pool = await open_pool(url) if url else None
    try:
        yield VisitClient(temporal, pool, task_queue=settings.task_queue)
    finally:
        if pool is not None:
            await pool.close()


@asynccontextmanager
async def event_store(settings: Settings) -> AsyncIterator[EventStore]:
    """The PostgreSQL log and read models, for the commands that only read."""
    pool = await open_pool(database_url(settings))
    try:
        yield EventStore(pool)
    finally:
        await pool.close()


async def answer(call: Awaitable[T], seconds: float, command_id: str | None = None) -> T:
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


def console() -> Console:
    """A rich console for tables and lines on stdout."""
    # A terminal gets tables at its width; a pipe or a file gets whole lines, not 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def dump(value: Any) -> None:
    """Print `value` as indented JSON, non-ASCII text kept as is."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def local(when: datetime | None, tz: str) -> str:
    """A time in the zone `tz` to the minute; `-` for none."""
    if when is None:
        return "-"
    return when.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")


def local_seconds(when: datetime, tz: str) -> str:
    """A time in the zone `tz` to the second."""
    return when.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S")


def short(text: str, limit: int = 90) -> str:
    """`text` on one line, cut with an ellipsis past `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
