"""`visits people`: the directory of people (import and export CSV, show, list).

Contact details are confidential: `show` and `export` print them only to the people
`domain.people.may_see_contacts` names (the person, their managers up the tree, directors),
and `list` never prints them. Exit codes: 0 done, 1 refused (a file with problems, an actor
not allowed, an unknown person, a database error), 2 bad input.
"""

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from activities.people import PeopleStore, UpsertCounts
from connect import database_url
from domain.actors import Actor, Role
from domain.calendar import zone
from domain.people import CONTACT_FIELDS, Person
from domain.people_csv import COLUMNS, RowError
from settings import Settings
from starter import people as directory
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

# The same --as, counts and Excel-friendly file writing as `visits customers`.
from starter.cli.customers import _actor, _counts, _write

people_app = typer.Typer(
    help="The directory of people: import and export CSV, show one person, list them. "
    f"CSV columns: {','.join(COLUMNS)}.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

AsRequired = Annotated[
    str | None,
    typer.Option("--as", metavar="ROLE:ID", help="Who asks: rep, manager, director or auditor, and id."),
]
AsOptional = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="ROLE:ID",
        help="Who asks; contact details are shown to the person, their managers and directors only.",
    ),
]


@asynccontextmanager
async def people_store(settings: Settings) -> AsyncIterator[PeopleStore]:
    """The directory in the configured (or `visits dev`) PostgreSQL."""
    pool = await open_pool(database_url(settings))
    try:
        yield PeopleStore(pool)
    finally:
        await pool.close()


def _viewer(text: str | None) -> Actor | None:
    return None if text is None else Actor.model_validate(parse_actor(text))


@people_app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A UTF-8 CSV file (Excel's BOM is fine).")],
    actor: AsRequired = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file against the directory; load nothing.")
    ] = False,
) -> None:
    """Load people from CSV: every row, or nothing. Managers (their own team) and directors."""

    async def main(cli: CliContext, settings: Settings) -> UpsertCounts | list[RowError]:
        who = _actor(actor, "imports")
        try:
            data = file.read_bytes()
        except OSError as err:
            raise BadInput(f"cannot read {file}: {err.strerror or err}") from None
        async with people_store(settings) as store:
            try:
                return await directory.import_csv(store, data, who, dry_run=dry_run)
            except directory.PeopleFileInvalid as err:
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


@people_app.command()
def export(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="Where to write; - (default) for stdout.")
    ] = "-",
    actor: AsOptional = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Write the directory as CSV, with contact details only where the actor may see them."""
    target = None if file == "-" else Path(file)
    if target is not None and target.exists() and not force:
        fail(f"{target} exists; name another file, or add --force to replace it.", EXIT_BAD_INPUT)

    async def main(cli: CliContext, settings: Settings) -> directory.Export:
        who = _viewer(actor)
        async with people_store(settings) as store:
            return await directory.export_csv(store, who)

    exported = run(ctx, main)
    if target is None:
        sys.stdout.write(exported.text)
        sys.stdout.flush()
    else:
        _write(target, exported.text)
        typer.echo(f"Exported {exported.people} person(s) to {target}.")
    if exported.contacts_withheld:
        typer.echo(
            f"Contact columns left empty for {exported.contacts_withheld} of {exported.people} "
            "person(s): contact details are shown only to the person, their managers and directors. "
            "Importing the file back keeps the stored ones.",
            err=True,
        )


def _day(text: str | None, settings: Settings) -> date:
    if text is None:
        return datetime.now(UTC).astimezone(zone(settings.policy.timezone)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--on takes a date as YYYY-MM-DD, for example 2026-06-01 (got {text!r})") from None


@people_app.command()
def show(
    ctx: typer.Context,
    person_id: Annotated[str, typer.Argument(metavar="ID", help="The person's id.")],
    actor: AsOptional = None,
    on: Annotated[
        str | None,
        typer.Option(
            "--on", metavar="YYYY-MM-DD", help="Whom notifications reach on this day (default: today)."
        ),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """One person: manager chain, team, absence and deputy, and whom their notifications reach."""

    async def main(cli: CliContext, settings: Settings) -> directory.PersonView | None:
        who = _viewer(actor)
        day = _day(on, settings)
        async with people_store(settings) as store:
            try:
                return await directory.show(store, person_id, who, day)
            except directory.PersonNotFound:
                return None

    view = run(ctx, main)
    if view is None:
        fail(f"There is no person {person_id} in the directory.", EXIT_REFUSED)
    if as_json:
        dump(_view_json(view))
        return
    for line in _view_lines(view):
        typer.echo(line)


def _named(person: Person) -> str:
    if person.name_zh or person.name_en:
        return f"{person.id} {person.display_name}"
    return person.id


def _names(people: list[Person], limit: int = 10) -> str:
    shown = ", ".join(_named(p) for p in people[:limit])
    return shown + (f", ... ({len(people) - limit} more)" if len(people) > limit else "")


def _view_json(view: directory.PersonView) -> dict[str, object]:
    return {
        **view.person.model_dump(mode="json"),
        "contacts_confidential": view.contacts_confidential,
        "managers": [m.id for m in view.managers],
        "team": [p.id for p in view.team],
        "team_size": view.team_size,
        "deputy_for": [p.id for p in view.deputy_for],
        "notified": {
            "on": view.on.isoformat(),
            **view.resolved.model_dump(mode="json", exclude={"recipient"}),
        },
    }


def _contact_line(person: Person, confidential: bool) -> str:
    if confidential:
        return "(confidential)"
    labels = {"email": "email", "mobile": "mobile", "dingtalk_id": "DingTalk", "wecom_id": "WeCom"}
    given = [f"{labels[f]} {getattr(person, f)}" for f in CONTACT_FIELDS if getattr(person, f)]
    return " · ".join(given) or "(none)"


def _view_lines(view: directory.PersonView) -> list[str]:
    p = view.person
    team = "(none)"
    if view.team:
        team = f"{_names(view.team)}; {view.team_size} in all"
    lines = [
        f"Person {p.id}: {p.display_name}",
        f"  Role       {p.role}, {'active' if p.active else 'inactive'}",
        f"  Managers   {' → '.join(_named(m) for m in view.managers) or '(none)'}",
        f"  Team       {team}",
        f"  Contacts   {_contact_line(p, view.contacts_confidential)}",
    ]
    reach = f"{p.channel}, in {p.language}"
    if not view.contacts_confidential and not p.address(p.channel):
        reach += f" (no {p.channel} address: their notifications cannot be delivered)"
    lines.append(f"  Channel    {reach}")
    quiet = f"{p.quiet_from:%H:%M}–{p.quiet_to:%H:%M}" if p.quiet_from and p.quiet_to else "(none)"
    lines.append(f"  Quiet      {quiet}")
    deputy = _named(view.deputy) if view.deputy is not None else p.deputy_id
    if p.away_from is not None:
        lines.append(f"  Away       {p.away_from} to {p.away_to}; deputy {deputy}")
    elif deputy:
        lines.append(f"  Deputy     {deputy} (stands in while they are away)")
    for n, other in enumerate(view.deputy_for):
        away = f", away {other.away_from} to {other.away_to}" if other.away_from else ""
        lines.append(f"  {'Deputy for' if n == 0 else '':<10} {_named(other)}{away}")
    r = view.resolved
    if r.problem is not None:
        lines.append(f"  Notified   on {view.on}: nobody ({r.problem})")
    else:
        lines.append(f"  Notified   on {view.on}: {_names(view.told)}")
        lines += [f"             {step}" for step in r.steps]
    return lines


@people_app.command("list")
def list_people(
    ctx: typer.Context,
    role: Annotated[Role | None, typer.Option("--role", help="Only people of this role.")] = None,
    manager: Annotated[
        str | None, typer.Option("--manager", help="Only the people reporting directly to this id.")
    ] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Only active, or only inactive, people.")
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """People by id, without contact details (`visits people show ID --as ROLE:ID` for those)."""

    async def main(cli: CliContext, settings: Settings) -> list[Person]:
        async with people_store(settings) as store:
            return await store.list(role=role, manager_id=manager, active=active)

    people = run(ctx, main)
    if as_json:
        dump([p.model_dump(mode="json", exclude=set(CONTACT_FIELDS)) for p in people])
        return
    if not people:
        typer.echo("No people match.")
        return
    table = Table(title="People", title_justify="left")
    for column in ("id", "name", "role", "manager", "active", "channel", "away", "deputy"):
        table.add_column(column, no_wrap=column != "name")
    for p in people:
        away = f"{p.away_from} to {p.away_to}" if p.away_from else "-"
        cells = (
            p.id,
            p.display_name,
            p.role,
            p.manager_id or "-",
            "yes" if p.active else "no",
            f"{p.channel} ({p.language})",
            away,
            p.deputy_id or "-",
        )
        # Text cells: a name like "[b]" is the person's, not rich markup.
        table.add_row(*(Text(str(cell)) for cell in cells))
    console().print(table)
