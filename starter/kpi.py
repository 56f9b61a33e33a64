"""Monthly KPIs from the PostgreSQL log: read the month's visits, compute, write CSV, draw.

The figures are `domain.kpi`'s (defined there and in the README). The CSV has one row per
rep, then the team's, with these columns, in this order (`CSV_COLUMNS`): `scope` (`rep` or
`team`), `rep` (empty for the team), `month`, `as_of`, `planned`, `approved`, `executed`,
`missed`, `cancelled`, `reports_due`, `reports_on_time`, `reports_late`, `reports_missing`,
`report_on_time_rate`, `median_report_delay_hours`, `escalations`, `escalations_level_1`,
`escalations_level_2`, `escalations_level_3_plus`, `items_opened`, `items_closed_on_time`,
`items_closed_late`, `items_overdue`, then for each tier (core, potential, regular, assist)
`cadence_<tier>_customers`, `cadence_<tier>_kept`, `cadence_<tier>_rate`. Rates are
fractions from 0 to 1, empty when there was nothing to judge; `as_of` is ISO 8601 in UTC.
"""

import csv
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from activities.errors import UnreadableEvent
from activities.store import EventStore, recorded_from_row
from domain.calendar import zone
from domain.customers import CustomerRecord
from domain.events import RecordedEvent
from domain.kpi import RepMonthKpi, kpis, month_bounds
from domain.models import CustomerTier
from domain.planning import PlanRules
from settings import Settings

_MARGIN = timedelta(days=1)
"""Widens the read on both sides: each visit counts the month in its own recorded zone."""

_FLAT = (
    "planned",
    "approved",
    "executed",
    "missed",
    "cancelled",
    "reports_due",
    "reports_on_time",
    "reports_late",
    "reports_missing",
    "report_on_time_rate",
    "median_report_delay_hours",
    "escalations",
)
_ITEMS = ("items_opened", "items_closed_on_time", "items_closed_late", "items_overdue")
_LEVELS = ("escalations_level_1", "escalations_level_2", "escalations_level_3_plus")

CSV_COLUMNS = (
    "scope",
    "rep",
    "month",
    "as_of",
    *_FLAT,
    *_LEVELS,
    *_ITEMS,
    *(f"cadence_{t}_{part}" for t in CustomerTier for part in ("customers", "kept", "rate")),
)


def cadence_days(settings: Settings) -> dict[CustomerTier, int]:
    """The longest gap per tier: the planning settings' when the settings have them."""
    # The monthly plan's settings (VISITFLOW_PLANNING__...) may not be part of Settings yet;
    # until they are, the plan rules' defaults (DOMAIN.md's cadences) apply.
    rules = getattr(settings, "planning", None)
    return dict((rules if isinstance(rules, PlanRules) else PlanRules()).cadence_days)


async def month_kpis(
    store: EventStore,
    month: str,
    *,
    as_of: datetime,
    timezone: str,
    cadence_days: Mapping[CustomerTier, int],
    customers: Sequence[CustomerRecord] = (),
) -> list[RepMonthKpi]:
    """The KPIs of `month` from the log as it stood at `as_of` (one row per rep, then the team)."""
    start, end = month_bounds(month, timezone)
    # Cadence looks back as far as the longest cadence: a customer's last visit may be older.
    since = start - timedelta(days=max(cadence_days.values(), default=0))
    ids = await store.visits_for_period(since - _MARGIN, end + _MARGIN, before=as_of)
    logs: dict[str, list[RecordedEvent]] = {}
    for row in await store.raw_rows_of(ids, before=as_of):
        logs.setdefault(row["visit_id"], []).append(recorded_from_row(row))
    try:
        return kpis(
            logs.values(),
            month,
            as_of=as_of,
            cadence_days=cadence_days,
            customers=customers,
            timezone=timezone,
        )
    except ValueError as exc:  # the month was checked above: this is a log the fold refuses
        raise UnreadableEvent(f"The log cannot be folded for {month}: {exc}") from exc


def csv_row(k: RepMonthKpi) -> dict[str, Any]:
    """One CSV row (`CSV_COLUMNS`) of a rep's or the team's figures."""
    levels = k.escalations_by_level
    row: dict[str, Any] = {
        "scope": "team" if k.is_team else "rep",
        "rep": k.rep_id or "",
        "month": k.month,
        "as_of": k.as_of.isoformat(),
        **{name: getattr(k, name) for name in (*_FLAT, *_ITEMS)},
        "escalations_level_1": levels.get(1, 0),
        "escalations_level_2": levels.get(2, 0),
        "escalations_level_3_plus": sum(n for level, n in levels.items() if level >= 3),
    }
    for tier in CustomerTier:
        judged = k.cadence.get(tier)
        row[f"cadence_{tier}_customers"] = judged.customers if judged else 0
        row[f"cadence_{tier}_kept"] = judged.kept if judged else 0
        row[f"cadence_{tier}_rate"] = judged.rate if judged else None
    return {name: "" if value is None else value for name, value in row.items()}


def write_csv(rows: Sequence[RepMonthKpi], path: Path) -> None:
    """Write the rows as CSV (UTF-8, a header line, `CSV_COLUMNS`)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_row(k) for k in rows)


TEAM_LABEL = "Team"
_TEAM_COLOUR, _REP_COLOUR = "#1f4e79", "#7fa7cf"


def draw_chart(rows: Sequence[RepMonthKpi], path: Path, *, timezone: str) -> None:
    """A PNG of the team's and each rep's on-time report rate and cadence compliance per tier."""
    # Imported here: matplotlib takes a while to load and only this command draws. The Agg
    # canvas renders to a file without a screen, and a bare Figure keeps no global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = sorted(rows, key=lambda k: (not k.is_team, k.rep_id or ""))
    labels = [TEAM_LABEL if k.is_team else (k.rep_id or "") for k in ordered]
    month = ordered[0].month if ordered else ""
    as_of = ordered[0].as_of.astimezone(zone(timezone)) if ordered else None
    fig = Figure(figsize=(12, 2.2 + 0.55 * len(ordered)), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.15]})
    _rates_panel(left, ordered, labels)
    _cadence_panel(right, ordered, labels)
    when = f"as of {as_of:%Y-%m-%d %H:%M} ({timezone})" if as_of else ""
    fig.suptitle(f"Visit KPIs for {month}: reports on time and cadence kept\n{when}", fontsize=14)
    fig.savefig(path, format="png", dpi=110)


def _rates_panel(ax: Any, rows: Sequence[RepMonthKpi], labels: Sequence[str]) -> None:
    ys = range(len(rows))
    rates = [(k.report_on_time_rate or 0) * 100 for k in rows]
    colours = [_TEAM_COLOUR if k.is_team else _REP_COLOUR for k in rows]
    ax.barh(ys, rates, color=colours, height=0.6)
    for y, k, rate in zip(ys, rows, rates, strict=True):
        if k.report_on_time_rate is None:
            text = "no report due"
        else:
            text = f"{k.report_on_time_rate:.0%}  ({k.reports_on_time} of {k.reports_due})"
        # The label sits just past the bar's end, or inside a bar too long to leave room.
        inside = rate > 70
        ax.text(
            rate - 1.5 if inside else rate + 1.5,
            y,
            text,
            va="center",
            ha="right" if inside else "left",
            fontsize=11,
            color="white" if inside and k.is_team else "black",
        )
    ax.set_yticks(list(ys), labels=labels, fontsize=11)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the team on top, as in the table
    ax.set_xlim(0, 100)
    ax.set_xticks([0, 25, 50, 75, 100], labels=["0%", "25%", "50%", "75%", "100%"])
    ax.set_title("Reports submitted on time (first submission)", fontsize=12)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    _separate_team(ax, rows)


def _cadence_panel(ax: Any, rows: Sequence[RepMonthKpi], labels: Sequence[str]) -> None:
    import matplotlib

    tiers = list(CustomerTier)
    grid = [[_cadence_rate(k, t) for t in tiers] for k in rows]
    colours = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#e6e6e6")
    ax.imshow(grid, cmap=colours, vmin=0, vmax=1, aspect="auto")
    for y, k in enumerate(rows):
        for x, tier in enumerate(tiers):
            judged = k.cadence.get(tier)
            if judged is None or judged.rate is None:
                ax.text(x, y, "no customers", ha="center", va="center", fontsize=10, color="#666666")
                continue
            # White on the dark ends of the colour scale, black on its light middle.
            dark = judged.rate < 0.2 or judged.rate > 0.85
            ax.text(
                x,
                y,
                f"{judged.rate:.0%}  ({judged.kept} of {judged.customers})",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if dark else "black",
            )
    ax.set_xticks(range(len(tiers)), labels=[t.value for t in tiers], fontsize=11)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)), labels=labels, fontsize=11)
    ax.tick_params(length=0)
    ax.set_title("Customers who kept their tier's cadence", fontsize=12)
    _separate_team(ax, rows)


def _cadence_rate(k: RepMonthKpi, tier: CustomerTier) -> float:
    judged = k.cadence.get(tier)
    # NaN cells are drawn in the colour map's "bad" grey: no customer of that tier.
    return judged.rate if judged is not None and judged.rate is not None else float("nan")


def _separate_team(ax: Any, rows: Sequence[RepMonthKpi]) -> None:
    if len(rows) > 1 and rows[0].is_team:
        ax.axhline(0.5, color="#333333", linewidth=1.5)
