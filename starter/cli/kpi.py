"""`visits kpi`: each rep's and the team's figures for a month, from the log.

Prints a table (or JSON), writes CSV (`kpi-YYYY-MM.csv` unless told otherwise) and, with
`--chart`, a PNG of the on-time report rate and cadence compliance. The figures are
defined in `domain.kpi` and the README's "KPIs" section.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from activities.customers import CustomerStore
from domain.calendar import zone
from domain.kpi import RepMonthKpi, month_bounds
from domain.models import CustomerTier
from settings import Settings
from starter.cli.common import (
    EXIT_BAD_INPUT,
    CliContext,
    JsonOut,
    console,
    dump,
    event_store,
    fail,
    instant,
    load_settings,
    run,
)
from starter.kpi import cadence_days, draw_chart, month_kpis, write_csv


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _levels(k: RepMonthKpi) -> str:
    if not k.escalations:
        return "0"
    split = ", ".join(f"L{level} {n}" for level, n in k.escalations_by_level.items())
    return f"{k.escalations} ({split})"


def _cadence(tier: CustomerTier) -> Callable[[RepMonthKpi], str]:
    def cell(k: RepMonthKpi) -> str:
        judged = k.cadence.get(tier)
        if judged is None:
            return "-"
        return f"{judged.kept}/{judged.customers} {_rate(judged.rate)}"

    return cell


FIGURES: list[tuple[str, Callable[[RepMonthKpi], str]]] = [
    ("visits planned", lambda k: str(k.planned)),
    ("  approved", lambda k: str(k.approved)),
    ("  executed", lambda k: str(k.executed)),
    ("  missed", lambda k: str(k.missed)),
    ("  cancelled", lambda k: str(k.cancelled)),
    ("reports due", lambda k: str(k.reports_due)),
    ("  on time", lambda k: str(k.reports_on_time)),
    ("  late", lambda k: str(k.reports_late)),
    ("  missing", lambda k: str(k.reports_missing)),
    ("  on-time rate", lambda k: _rate(k.report_on_time_rate)),
    (
        "  median delay when late",
        lambda k: "-" if k.median_report_delay_hours is None else f"{k.median_report_delay_hours:g} h",
    ),
    ("escalations", _levels),
    ("promises opened", lambda k: str(k.items_opened)),
    ("  closed on time", lambda k: str(k.items_closed_on_time)),
    ("  closed late", lambda k: str(k.items_closed_late)),
    ("  overdue", lambda k: str(k.items_overdue)),
    *((f"cadence kept: {tier.value}", _cadence(tier)) for tier in CustomerTier),
]
"""The table's rows: a label and how to show the figure."""


def kpi_table(rows: Sequence[RepMonthKpi], timezone: str) -> Table:
    """Figures down, reps across, the team last: a month's KPIs stay readable in a terminal."""
    first = rows[0]
    as_of = first.as_of.astimezone(zone(timezone))
    table = Table(
        title=f"KPIs for {first.month} (as of {as_of:%Y-%m-%d %H:%M}, {timezone})",
        title_justify="left",
        caption="Definitions: README, section KPIs. Cadence: customers who kept it / customers.",
        caption_justify="left",
    )
    table.add_column("figure", no_wrap=True)
    for k in rows:
        table.add_column("team" if k.is_team else (k.rep_id or ""), justify="right", no_wrap=True)
    for label, show in FIGURES:
        table.add_row(label, *(show(k) for k in rows))
    return table


kpi_app = typer.Typer()
"""`visits kpi`; the root app takes it in as its own command (no group name)."""


@kpi_app.command()
def kpi(
    ctx: typer.Context,
    month: Annotated[
        str, typer.Option("--month", metavar="YYYY-MM", help="The month, in the company time zone.")
    ],
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", metavar="FILE", help="Write the CSV here (default: kpi-YYYY-MM.csv)."),
    ] = None,
    no_csv: Annotated[bool, typer.Option("--no-csv", help="Write no CSV.")] = False,
    chart: Annotated[
        Path | None,
        typer.Option("--chart", metavar="FILE.png", help="Also draw on-time reports and cadence as a PNG."),
    ] = None,
    rep: Annotated[
        str | None, typer.Option("--rep", metavar="REP", help="Only this rep (and the team row).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="TIME", help="Judge from the log as it stood then (ISO with offset)."),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Each rep's and the team's KPIs for a month, computed from the event log."""
    _, settings = load_settings(ctx)
    tz = settings.policy.timezone
    try:
        month_bounds(month, tz)
    except ValueError as err:
        fail(f"--month: {err}", EXIT_BAD_INPUT)
    if chart is not None and chart.suffix.lower() != ".png":
        fail(f"--chart writes a PNG; name the file FILE.png (got {str(chart)!r})", EXIT_BAD_INPUT)
    if csv_path is not None and no_csv:
        fail("give either --csv FILE or --no-csv, not both", EXIT_BAD_INPUT)
    # A machine reading JSON asked for no files; a person gets the CSV by default.
    target = None if no_csv else csv_path or (None if as_json else Path(f"kpi-{month}.csv"))

    async def main(cli: CliContext, s: Settings) -> list[RepMonthKpi]:
        as_of = instant(at, "--at") or datetime.now(UTC)
        async with event_store(s) as store:
            # Cadence is judged over the customers each rep owns in the registry; with an
            # empty registry, over the customers of the rep's visits.
            customers = await CustomerStore(store.pool).list()
            return await month_kpis(
                store, month, as_of=as_of, timezone=tz, cadence_days=cadence_days(s), customers=customers
            )

    rows = run(ctx, main)
    if rep is not None:
        rows = [k for k in rows if k.is_team or k.rep_id == rep]
        if len(rows) == 1:
            typer.echo(f"Rep {rep} has no visits, events or customers in {month}.", err=True)
    written: list[str] = []
    if target is not None:
        write_csv(rows, target)
        written.append(f"CSV written to {target}")
    if chart is not None:
        draw_chart(rows, chart, timezone=tz)
        written.append(f"Chart written to {chart}")
    if as_json:
        dump([k.model_dump(mode="json") for k in rows])
    else:
        console().print(kpi_table(rows, tz))
    for line in written:
        typer.echo(line, err=as_json)
