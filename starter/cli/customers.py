"""`visits customers`: the customer registry (import and export CSV, show, list).

Contact details are confidential: `show` and `export` print them only to the people
`domain.customers.may_see_contacts` names, and `list` never prints them. Exit codes: 0 done,
1 refused (a file with problems, an actor not allowed, an unknown customer, a database
error), 2 bad input.
"""

import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from activities.customers import CustomerStore, UpsertCounts
from connect import database_url
from domain.actors import Actor
from domain.customer_csv import COLUMNS, RowError
from domain.customers import CustomerRecord, may_see_contacts
from domain.models import CustomerTier
from settings import Settings
from starter import customers as registry
from starter.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_REFUSED,
    BadInput,
    CliContext,
    JsonOut,
    console,
    dump,
    fail,
    open_pool,
    parse_actor,
    run,
)

customers_app = typer.Typer(
    help="The customer registry: import and export CSV, show one customer, list them. "
    f"CSV columns: {','.join(COLUMNS)}.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

AsRequired = Annotated[
    str | None,
    typer.Option("--as", metavar="ROLE:ID", help="Who asks: rep, manager, director or auditor, and id."),
]


@asynccontextmanager
async def customer_store(settings: Settings) -> AsyncIterator[CustomerStore]:
    """The registry in the configured (or `visits dev`) PostgreSQL."""
    pool = await open_pool(database_url(settings))
    try:
        yield CustomerStore(pool)
    finally:
        await pool.close()


def _actor(text: str | None, what: str) -> Actor:
    if text is None:
        raise BadInput(f"say who {what}: --as ROLE:ID, for example --as manager:m-li")
    return Actor.model_validate(parse_actor(text))


def _counts(counts: UpsertCounts, *, dry_run: bool) -> str:
    would = "would be " if dry_run else ""
    return f"{counts.added} {would}added, {counts.updated} {would}updated, {counts.unchanged} unchanged"


@customers_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A UTF-8 CSV file (Excel's BOM is fine).")],
    actor: AsRequired = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file against the registry; load nothing.")
    ] = False,
) -> None:
    """Load customers from CSV: every row, or nothing. Managers (their own customers) and directors."""

    async def main(cli: CliContext, settings: Settings) -> UpsertCounts | list[RowError]:
        who = _actor(actor, "imports")
        try:
            data = file.read_bytes()
        except OSError as err:
            raise BadInput(f"cannot read {file}: {err.strerror or err}") from None
        async with customer_store(settings) as store:
            try:
                return await registry.import_csv(store, data, who, dry_run=dry_run)
            except registry.CustomerFileInvalid as err:
                return err.errors

    outcome = run(ctx, main)
    if isinstance(outcome, list):
        for error in outcome:
            typer.echo(str(error), err=True)
        fail(f"Nothing was loaded: {len(outcome)} problem(s) in {file}.", EXIT_REFUSED)
    if dry_run:
        typer.echo(f"{file} is valid: {_counts(outcome, dry_run=True)}. Nothing was loaded (--dry-run).")
    else:
        typer.echo(f"Imported {file}: {_counts(outcome, dry_run=False)}.")


@customers_app.command()
def export(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="Where to write; - (default) for stdout.")
    ] = "-",
    actor: AsRequired = None,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this rep's customers.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Write customers as CSV, with contacts only where the actor may see them."""
    target = None if file == "-" else Path(file)
    if target is not None and target.exists() and not force:
        fail(f"{target} exists; name another file, or add --force to replace it.", EXIT_BAD_INPUT)

    async def main(cli: CliContext, settings: Settings) -> registry.Export:
        who = _actor(actor, "exports")
        async with customer_store(settings) as store:
            return await registry.export_csv(store, who, rep_id=rep)

    exported = run(ctx, main)
    if target is None:
        sys.stdout.write(exported.text)
        sys.stdout.flush()
    else:
        _write(target, exported.text)
        typer.echo(f"Exported {exported.customers} customer(s) to {target}.")
    if exported.contacts_withheld:
        typer.echo(
            f"Contact columns left empty for {exported.contacts_withheld} of {exported.customers} "
            "customer(s): contacts are shown only to the owning rep, the rep's manager and directors.",
            err=True,
        )


def _write(target: Path, text: str) -> None:
    # With a byte-order mark Excel reads the file as UTF-8 (Chinese names intact); written
    # aside and renamed, so a failure never leaves half a file in place.
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8-sig", newline="")
        os.replace(temporary, target)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        fail(f"cannot write {target}: {err.strerror or err}", EXIT_REFUSED)


@customers_app.command()
def show(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="The customer's id.")],
    actor: AsRequired = None,
    as_json: JsonOut = False,
) -> None:
    """One customer; its contacts only to the owning rep, the rep's manager and directors."""

    async def main(cli: CliContext, settings: Settings) -> tuple[CustomerRecord, bool] | None:
        who = _actor(actor, "asks")
        async with customer_store(settings) as store:
            try:
                record = await registry.show(store, customer_id, who)
            except registry.CustomerNotFound:
                return None
        return record, not may_see_contacts(who, record)

    found = run(ctx, main)
    if found is None:
        fail(f"There is no customer {customer_id}.", EXIT_REFUSED)
    record, confidential = found
    if as_json:
        dump({**record.model_dump(mode="json"), "contacts_confidential": confidential})
        return
    for line in _record_lines(record, confidential):
        typer.echo(line)


def _record_lines(record: CustomerRecord, confidential: bool) -> list[str]:
    grade = f" (grade {record.grade})" if record.grade else ""
    lines = [
        f"Customer {record.id}: {record.name}",
        f"  Tier      {record.tier}{grade}",
        f"  Owner     rep {record.owner_rep_id} · manager {record.manager_id}",
        f"  Region    {record.region or '-'}",
    ]
    if confidential:
        return [*lines, "  Contacts  (confidential)"]
    if not record.contacts:
        return [*lines, "  Contacts  (none)"]
    for n, c in enumerate(record.contacts):
        details = ", ".join(part for part in (c.name, c.title, c.phone, c.email) if part)
        lines.append(f"  {'Contacts' if n == 0 else '':<8}  {details}")
    return lines


@customers_app.command("list")
def list_customers(
    ctx: typer.Context,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this rep's customers.")] = None,
    manager: Annotated[str | None, typer.Option("--manager", help="Only this manager's customers.")] = None,
    tier: Annotated[CustomerTier | None, typer.Option("--tier", help="Only customers of this tier.")] = None,
    as_json: JsonOut = False,
) -> None:
    """Customers by id, without contacts (`visits customers show ID --as ROLE:ID` for those)."""

    async def main(cli: CliContext, settings: Settings) -> list[CustomerRecord]:
        async with customer_store(settings) as store:
            return await store.list(owner_rep_id=rep, manager_id=manager, tier=tier)

    records = run(ctx, main)
    if as_json:
        dump([r.model_dump(mode="json", exclude={"contacts"}) for r in records])
        return
    if not records:
        typer.echo("No customers match.")
        return
    table = Table(title="Customers", title_justify="left")
    for column in ("id", "name", "tier", "grade", "rep", "manager", "region"):
        table.add_column(column, no_wrap=column != "name")
    for r in records:
        cells = (r.id, r.name, r.tier, r.grade or "-", r.owner_rep_id, r.manager_id, r.region or "-")
        # Text cells: a name like "[b]" is the customer's, not rich markup.
        table.add_row(*(Text(str(cell)) for cell in cells))
    console().print(table)
