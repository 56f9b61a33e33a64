"""`visits kpi` on a real log: the table, the CSV and the chart match counts made from the rows.

The month is `tests.domain.test_kpi`'s simulated November (hand-counted there); here its
events are appended to PostgreSQL and the figures are counted again in SQL, straight from
`visit_events`, without the domain's fold.
"""

import asyncio
import csv
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from activities.store import EventStore
from domain.kpi import month_bounds
from settings import Settings
from starter.cli import app
from starter.cli.common import CliContext
from starter.kpi import CSV_COLUMNS, csv_row, month_kpis
from tests.domain.test_kpi import AS_OF, CADENCE, EXPECTED, MONTH, V, at, figures, november

pytestmark = pytest.mark.store

AT = "2026-12-05T00:00+08:00"


async def record(pool: asyncpg.Pool, visits: tuple[V, ...]) -> None:
    store = EventStore(pool)
    for v in visits:
        for request in v.driver.requests:
            await store.append(request)


async def visits(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=CliContext(settings=settings))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# Counted from the rows: each visit's rep from its first event, its plan's start from the
# last event that set one; the team is the grouping set ().
_COUNT_FROM_ROWS = """
WITH plans AS (
    SELECT DISTINCT ON (visit_id) visit_id,
           COALESCE(payload #>> '{plan,scheduled_start}', payload ->> 'scheduled_start')::timestamptz
           AS starts
    FROM visit_events WHERE type IN ('PlanSubmitted', 'PlanRevised', 'VisitRescheduled') AND occurred_at < $3
    ORDER BY visit_id, seq DESC
), reps AS (
    SELECT visit_id, payload ->> 'rep_id' AS rep FROM visit_events WHERE type = 'PlanSubmitted'
), planned AS (
    SELECT visit_id, rep FROM plans JOIN reps USING (visit_id) WHERE starts >= $1 AND starts < $2
), firsts AS (
    SELECT p.rep, (e.payload ->> 'late')::boolean AS late,
           extract(epoch FROM e.occurred_at - (e.payload ->> 'due_at')::timestamptz) / 3600 AS hours
    FROM planned p JOIN visit_events e ON e.visit_id = p.visit_id
    WHERE e.type = 'ReportSubmitted' AND (e.payload ->> 'revision')::int = 1 AND e.occurred_at < $3
), opened AS (
    SELECT visit_id, item ->> 'item_id' AS item, min(e.occurred_at) AS first_listed
    FROM visit_events e, jsonb_array_elements(e.payload -> 'items') AS item
    WHERE e.type = 'ReportSubmitted' AND e.occurred_at < $3 GROUP BY 1, 2
), in_month AS (
    SELECT r.rep, e.type, e.payload FROM visit_events e JOIN reps r USING (visit_id)
    WHERE e.occurred_at >= $1 AND e.occurred_at < $2 AND e.occurred_at < $3
)
SELECT 'planned' AS figure, rep, count(*)::float AS value FROM planned GROUP BY GROUPING SETS ((rep), ())
UNION ALL
SELECT 'executed', p.rep, count(*) FROM planned p
WHERE EXISTS (SELECT 1 FROM visit_events e WHERE e.visit_id = p.visit_id AND e.type = 'VisitCheckedIn'
              AND e.occurred_at < $3)
GROUP BY GROUPING SETS ((p.rep), ())
UNION ALL
SELECT 'cancelled', p.rep, count(*) FROM planned p
WHERE EXISTS (SELECT 1 FROM visit_events e WHERE e.visit_id = p.visit_id AND e.type = 'VisitCancelled'
              AND e.occurred_at < $3)
GROUP BY GROUPING SETS ((p.rep), ())
UNION ALL
SELECT 'reports_on_time', rep, count(*) FILTER (WHERE NOT late) FROM firsts GROUP BY GROUPING SETS ((rep), ())
UNION ALL
SELECT 'reports_late', rep, count(*) FILTER (WHERE late) FROM firsts GROUP BY GROUPING SETS ((rep), ())
UNION ALL
SELECT 'median_report_delay_hours', rep, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY hours)::numeric, 2)
FROM firsts WHERE late GROUP BY GROUPING SETS ((rep), ())
UNION ALL
SELECT 'escalations_level_' || (payload ->> 'level'), rep, count(*) FROM in_month WHERE type = 'Escalated'
GROUP BY GROUPING SETS ((rep, payload ->> 'level'), (payload ->> 'level'))
UNION ALL
SELECT 'escalations', rep, count(*) FROM in_month WHERE type = 'Escalated' GROUP BY GROUPING SETS ((rep), ())
UNION ALL
SELECT 'items_closed_on_time', rep, count(*) FILTER (WHERE NOT (payload ->> 'late')::boolean)
FROM in_month WHERE type = 'PromisedItemCompleted' GROUP BY GROUPING SETS ((rep), ())
UNION ALL
SELECT 'items_closed_late', rep, count(*) FILTER (WHERE (payload ->> 'late')::boolean)
FROM in_month WHERE type = 'PromisedItemCompleted' GROUP BY GROUPING SETS ((rep), ())
UNION ALL
SELECT 'items_opened', r.rep, count(*) FROM opened o JOIN reps r USING (visit_id)
WHERE o.first_listed >= $1 AND o.first_listed < $2 GROUP BY GROUPING SETS ((r.rep), ())
"""


async def counted_from_rows(pool: asyncpg.Pool, month: str, as_of: datetime) -> dict[tuple[str, str], float]:
    """{(figure, rep or "" for the team): value} counted in SQL from `visit_events`."""
    start, end = month_bounds(month, "Asia/Shanghai")
    rows = await pool.fetch(_COUNT_FROM_ROWS, start, end, as_of)
    return {(r["figure"], r["rep"] or ""): float(r["value"]) for r in rows}


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return {row["rep"]: row for row in reader}


async def test_the_csv_matches_counts_made_directly_from_the_logged_rows(own_database, own_pool, tmp_path):
    await record(own_pool, november())
    out_csv, chart = tmp_path / "nov.csv", tmp_path / "nov.png"
    code, out, err = await visits(
        own_database,
        tmp_path,
        "kpi",
        "--month",
        MONTH,
        "--at",
        AT,
        "--csv",
        str(out_csv),
        "--chart",
        str(chart),
    )
    assert code == 0, err
    written = read_csv(out_csv)
    assert list(written) == ["rep-a", "rep-b", ""]
    counted = await counted_from_rows(own_pool, MONTH, AS_OF)
    assert len(counted) > 30
    for (figure, rep), value in counted.items():
        assert float(written[rep][figure] or 0) == value, (figure, rep)
    # Every column, cadence and overdue items included, is the hand count.
    for rep_id, expected in EXPECTED.items():
        row = written[rep_id or ""]
        assert row == {name: str(value) for name, value in csv_row(expected).items()}, rep_id
    assert f"CSV written to {out_csv}" in out and f"Chart written to {chart}" in out
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and chart.stat().st_size > 10_000


async def test_the_table_shows_each_rep_and_the_team(own_database, own_pool, tmp_path, monkeypatch):
    await record(own_pool, november())
    monkeypatch.chdir(tmp_path)
    code, out, err = await visits(own_database, tmp_path, "kpi", "--month", MONTH, "--at", AT)
    assert code == 0, err
    assert "KPIs for 2026-11 (as of 2026-12-05 00:00, Asia/Shanghai)" in out
    split = [[c.strip() for c in re.split("[│┃]", line)[1:-1]] for line in out.splitlines()]
    cells = {row[0]: row[1:] for row in split if len(row) > 2}
    assert cells["figure"] == ["rep-a", "rep-b", "team"]
    assert cells["visits planned"] == ["7", "5", "12"]
    assert cells["missed"] == ["1", "0", "1"]
    assert cells["on-time rate"] == ["80%", "0%", "44%"]
    assert cells["median delay when late"] == ["5 h", "10 h", "7.5 h"]
    assert cells["escalations"] == ["6 (L1 4, L2 2)", "3 (L1 2, L2 1)", "9 (L1 6, L2 3)"]
    assert cells["cadence kept: core"] == ["1/1 100%", "0/1 0%", "1/2 50%"]
    assert cells["cadence kept: potential"] == ["0/2 0%", "-", "0/2 0%"]
    # The CSV goes to the current directory by default.
    assert "CSV written to kpi-2026-11.csv" in out
    assert read_csv(tmp_path / "kpi-2026-11.csv")["rep-b"]["reports_missing"] == "1"


async def test_json_for_one_rep_keeps_the_team_row_and_writes_no_file_unasked(
    own_database, own_pool, tmp_path, monkeypatch
):
    await record(own_pool, november())
    monkeypatch.chdir(tmp_path)
    code, out, err = await visits(
        own_database, tmp_path, "kpi", "--month", MONTH, "--at", AT, "--rep", "rep-b", "--json"
    )
    assert code == 0, err
    body: list[dict[str, Any]] = json.loads(out)
    assert [row["rep_id"] for row in body] == ["rep-b", None]
    assert body[0] == EXPECTED["rep-b"].model_dump(mode="json")
    assert list(tmp_path.glob("*.csv")) == []


async def test_the_store_read_gives_the_domain_every_visit_the_month_needs(own_pool):
    # Also recorded: a visit closed long before, which no November figure can depend on.
    old = V("rep-a", "C1", "core", "2026-06-01 10:00").approve().check_in().report("2026-06-01 15:00")
    await record(own_pool, (*november(), old))
    store = EventStore(own_pool)
    rows = await month_kpis(store, MONTH, as_of=AS_OF, timezone="Asia/Shanghai", cadence_days=CADENCE)
    assert {k.rep_id: k for k in rows} == figures()
    start, end = month_bounds(MONTH, "Asia/Shanghai")
    assert old.driver.visit_id not in await store.visits_for_period(start, end)
    mid_month = await month_kpis(
        store, MONTH, as_of=at("2026-11-18 12:00"), timezone="Asia/Shanghai", cadence_days=CADENCE
    )
    assert {k.rep_id: k for k in mid_month} == figures(as_of=at("2026-11-18 12:00"))


async def test_bad_input_is_refused_in_one_line(own_database, tmp_path):
    cases = [
        (("kpi", "--month", "2026-13"), "--month: a month is written YYYY-MM"),
        (("kpi", "--month", "11-2026"), "--month: a month is written YYYY-MM"),
        (("kpi", "--month", MONTH, "--chart", str(tmp_path / "c.jpg")), "--chart writes a PNG"),
        (("kpi", "--month", MONTH, "--csv", "a.csv", "--no-csv"), "either --csv FILE or --no-csv"),
        (("kpi", "--month", MONTH, "--at", "yesterday"), "--at takes an ISO time with its offset"),
    ]
    for args, message in cases:
        code, _, err = await visits(own_database, tmp_path, *args)
        assert code == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)


async def test_cadence_is_judged_over_the_customers_each_rep_owns_in_the_registry(
    own_database, own_pool, tmp_path, monkeypatch
):
    from activities.customers import CustomerStore
    from domain.customers import CustomerRecord

    await record(own_pool, november())
    # A regular customer rep-b owns but never visited: the registry makes it count.
    neglected = CustomerRecord(
        id="C-900", name="被遗忘 Forgotten Ltd", tier="regular", owner_rep_id="rep-b", manager_id="m-1"
    )
    await CustomerStore(own_pool).upsert_many([neglected])
    monkeypatch.chdir(tmp_path)
    code, out, err = await visits(own_database, tmp_path, "kpi", "--month", MONTH, "--at", AT, "--no-csv")
    assert code == 0, err
    split = [[c.strip() for c in re.split("[│┃]", line)[1:-1]] for line in out.splitlines()]
    cells = {row[0]: row[1:] for row in split if len(row) > 2}
    assert cells["figure"] == ["rep-a", "rep-b", "team"]
    assert cells["cadence kept: regular"] == ["-", "0/1 0%", "0/1 0%"]
