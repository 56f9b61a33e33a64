"""`visits notifications`: what the relay did with each reminder and escalation (list, show)
and sending again what it could not deliver (retry).

Both outboxes read as one list; `--stream visit|plan` keeps one. A notification is named by
its id (the id of the event that caused it) or its first characters. Exit codes: 0 done,
1 refused (an unknown id, a notification that is delivered or being delivered, a database
error), 2 bad input.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from activities.relay import Notifications
from connect import database_url
from settings import Settings
from starter.cli.common import BadInput, CliContext, JsonOut, console, dump, local, open_pool, run, short

notifications_app = typer.Typer(
    help="Notifications (reminders and escalations): their delivery, attempts and dead letters; "
    "send again what could not be delivered.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


class Status(StrEnum):
    pending = "pending"
    delivering = "delivering"
    delivered = "delivered"
    dead = "dead"


class Stream(StrEnum):
    visit = "visit"
    plan = "plan"


@asynccontextmanager
async def notifications(settings: Settings) -> AsyncIterator[Notifications]:
    """Both outboxes in the configured (or `visits dev`) PostgreSQL."""
    pool = await open_pool(database_url(settings))
    try:
        yield Notifications(pool)
    finally:
        await pool.close()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("context", "claimed_by_me")}
    return json.loads(json.dumps(out, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))


def _stream_id(row: dict[str, Any]) -> str:
    return str(row.get("visit_id") or row.get("plan_id") or "-")


def _what(row: dict[str, Any]) -> str:
    level = f" L{row['level']}" if row.get("level") else ""
    return f"{row['kind']}{level} {row['concern']}"


def _when(row: dict[str, Any], tz: str) -> str:
    """The time that matters for the row's status."""
    if row["status"] == "delivered":
        return local(row.get("delivered_at"), tz)
    if row["status"] in ("pending", "delivering"):
        return local(row.get("next_attempt_at"), tz)
    return "-"


@notifications_app.command("list")
def list_notifications(
    ctx: typer.Context,
    status: Annotated[
        Status | None, typer.Option("--status", help="Only notifications in this state.")
    ] = None,
    stream: Annotated[Stream | None, typer.Option("--stream", help="Only visits' or only plans'.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")] = 50,
    as_json: JsonOut = False,
) -> None:
    """Notifications newest first: state, attempts, channel, the last error."""

    async def main(cli: CliContext, settings: Settings) -> tuple[list[dict[str, Any]], str]:
        async with notifications(settings) as store:
            found = await store.recent(
                status=status.value if status else None, stream=stream.value if stream else None, limit=limit
            )
        return found, settings.policy.timezone

    rows, tz = run(ctx, main)
    if as_json:
        dump([_jsonable(r) for r in rows])
        return
    if not rows:
        typer.echo("No notifications match.")
        return
    table = Table(title="Notifications", title_justify="left")
    for column in ("id", "stream", "what", "to", "status", "tries", "when", "channel", "last error"):
        table.add_column(column, no_wrap=column not in ("what", "last error"))
    for r in rows:
        cells = (
            r["id"],
            f"{r['stream']} {_stream_id(r)}",
            _what(r),
            r["recipient_id"],
            r["status"],
            str(r["attempts"]),
            _when(r, tz),
            r.get("channel") or "-",
            short(r.get("last_error") or "-", 60),
        )
        table.add_row(*(Text(str(cell)) for cell in cells))
    console().print(table)


@notifications_app.command()
def show(
    ctx: typer.Context,
    notification_id: Annotated[str, typer.Argument(metavar="ID", help="The id, or its first characters.")],
    as_json: JsonOut = False,
) -> None:
    """One notification: its state, who was told and why (the resolution), every attempt."""

    async def main(cli: CliContext, settings: Settings) -> tuple[dict[str, Any], str]:
        async with notifications(settings) as store:
            return await store.show(notification_id), settings.policy.timezone

    row, tz = run(ctx, main)
    if as_json:
        dump(_jsonable(row))
        return
    for line in _lines(row, tz):
        typer.echo(line)


def _lines(row: dict[str, Any], tz: str) -> list[str]:
    lines = [
        f"Notification {row['id']} ({row['stream']} {_stream_id(row)}, event #{row['seq']})",
        f"  What        {_what(row)}: {row['message']}",
        f"  To          {row['recipient_role']} {row['recipient_id']}",
        f"  Due         {local(row['due_at'], tz)}",
        f"  Status      {row['status']} after {row['attempts']} attempt(s)",
    ]
    if row["status"] == "delivered":
        lines.append(f"  Delivered   {local(row.get('delivered_at'), tz)} by {row.get('channel') or '-'}")
    elif row["status"] == "pending":
        lines.append(f"  Next try    {local(row.get('next_attempt_at'), tz)}")
    elif row["status"] == "delivering":
        lines.append(f"  Claimed     by {row.get('claimed_by')} until {local(row.get('claimed_until'), tz)}")
    if row.get("last_error"):
        lines.append(f"  Last error  {row['last_error']}")
    resolution = row.get("resolution")
    if resolution:
        told = ", ".join(resolution.get("person_ids", [])) or "nobody"
        lines.append(f"  Resolved    on {resolution.get('on')}: {told}")
        lines += [f"              {step}" for step in resolution.get("steps", [])]
        if resolution.get("problem"):
            lines.append(f"              problem: {resolution['problem']}")
    else:
        lines.append("  Resolved    not yet (at the first attempt)")
    history = row.get("history", [])
    lines.append("  Attempts" + ("" if history else "    none yet"))
    for a in history:
        took = f" {a['duration_ms']} ms" if a.get("duration_ms") is not None else ""
        where = " ".join(part for part in (a.get("channel"), a.get("person_id")) if part)
        error = f": {a['error']}" if a.get("error") else ""
        lines.append(
            f"    #{a['attempt']} {local(a['at'], tz)} {a['outcome']:<9} {where}{took} ({a['relay']}){error}"
        )
    return lines


@notifications_app.command()
def retry(
    ctx: typer.Context,
    ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Notifications to send again.")
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead notification.")] = False,
    as_json: JsonOut = False,
) -> None:
    """Send again from now: dead (or pending) notifications, resolving their recipients anew.

    People an earlier attempt reached are not told twice.
    """

    async def main(cli: CliContext, settings: Settings) -> list[dict[str, Any]]:
        if not ids and not dead:
            raise BadInput("name the notifications to send again (ID ...), or --dead for every dead one")
        if ids and dead:
            raise BadInput("give IDs or --dead, not both")
        async with notifications(settings) as store:
            return await store.retry(ids or [], dead=dead)

    redriven = run(ctx, main)
    if as_json:
        dump(redriven)
        return
    if not redriven:
        typer.echo("Nothing to send again.")
        return
    for r in redriven:
        typer.echo(f"{r['id']} ({r['stream']}): pending, sent again from now")
    typer.echo(f"{len(redriven)} notification(s) will be sent again by the relay.")
