"""Benchmark: whole-log verify-and-fold throughput against streaming the same rows raw.

    python -m bench.verify_log [--events N] [--rounds R] [--workers W] [--json]
                               [--database-url URL] [--data-dir DIR]

Loads (once) a database of N generated, chained events, then alternates, R times, a raw
stream of the log with plain asyncpg and the product's `verify_log`, and prints both
rates and their ratio per round. See bench/README.md.
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from activities.db import create_pool
from activities.log_stream import FETCH_BATCH, LOG_QUERY
from bench.database import prepare, server
from logs import configure_logging
from starter.log_check import verify_log

DATABASE_ENV = "VISITFLOW_BENCH_DATABASE_URL"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "results" / "pgdata"


@dataclass
class Round:
    raw_seconds: float
    raw_events_per_second: float
    verify_seconds: float
    verify_events_per_second: float
    ratio: float
    load_before: float
    load_after: float


async def stream_raw(url: str) -> tuple[int, float]:
    """Rows and seconds to read the whole log with plain asyncpg: the same query, a batched
    cursor, each row touched and nothing else (no JSON codec, no checks)."""
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        rows = 0
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(LOG_QUERY)
            while batch := await cursor.fetch(FETCH_BATCH):
                for _row in batch:
                    rows += 1
        return rows, time.perf_counter() - started
    finally:
        await conn.close()


async def measure(url: str, rounds: int, workers: int | None, say: Any) -> tuple[list[Round], dict[str, Any]]:
    pool = await create_pool(url, min_size=1, max_size=2)
    rows: list[Round] = []
    facts: dict[str, Any] = {}
    try:
        for number in range(1, rounds + 1):
            load_before = os.getloadavg()[0]
            raw_events, raw_seconds = await stream_raw(url)
            report = await verify_log(pool, database_url=url, workers=workers, progress=lambda d, t: None)
            if not report.ok or report.events != raw_events:
                raise SystemExit(
                    f"the benchmark log is not intact ({len(report.bad)} bad visits, "
                    f"{report.events} events verified, {raw_events} streamed): reload it"
                )
            raw_rate = raw_events / raw_seconds
            verify_rate = report.events / report.elapsed_seconds
            rows.append(
                Round(
                    raw_seconds=raw_seconds,
                    raw_events_per_second=raw_rate,
                    verify_seconds=report.elapsed_seconds,
                    verify_events_per_second=verify_rate,
                    ratio=verify_rate / raw_rate,
                    load_before=load_before,
                    load_after=os.getloadavg()[0],
                )
            )
            say(
                f"  round {number}: raw {raw_rate:,.0f} ev/s, verify {verify_rate:,.0f} ev/s, "
                f"ratio {verify_rate / raw_rate:.3f}"
            )
            facts = {
                "events": report.events,
                "visits": report.streams,
                "workers": report.workers,
                "postgres": await pool.fetchval("SHOW server_version"),
            }
    finally:
        await pool.close()
    return rows, facts


def table(rows: list[Round], facts: dict[str, Any]) -> str:
    lines = [
        f"{facts['events']:,} events in {facts['visits']:,} visits; PostgreSQL {facts['postgres']}; "
        f"verify_log with {facts['workers']} worker process(es); {os.cpu_count()} cores",
        "",
        f"{'round':>5}  {'raw ev/s':>12}  {'verify ev/s':>12}  {'ratio':>7}  {'load 1m':>8}",
    ]
    for n, r in enumerate(rows, start=1):
        lines.append(
            f"{n:>5}  {r.raw_events_per_second:>12,.0f}  {r.verify_events_per_second:>12,.0f}  "
            f"{r.ratio:>7.3f}  {r.load_before:>8.2f}"
        )
    lines += ["", f"median ratio verify/raw: {statistics.median(r.ratio for r in rows):.3f}"]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    async with server(args.database_url, args.data_dir) as server_url:
        url = await prepare(server_url, args.events, say=say)
        say(f"measuring {args.rounds} rounds (raw, then verify) ...")
        rows, facts = await measure(url, args.rounds, args.workers, say)
    if args.json:
        print(
            json.dumps(
                {
                    **facts,
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "rounds": [asdict(r) for r in rows],
                    "median_ratio": statistics.median(r.ratio for r in rows),
                },
                indent=2,
            )
        )
    else:
        print()
        print(table(rows, facts))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_log", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to load (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="raw/verify rounds (default 3)")
    parser.add_argument("--workers", type=int, default=None, help="verify_log's worker processes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_ENV),
        help=f"a server to use (database visitflow_bench is created there); env {DATABASE_ENV}; "
        "default: the embedded PostgreSQL",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the embedded server's data directory"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    # Quiet: the migrations' log lines would interleave with the figures.
    configure_logging("console", "WARNING")
    asyncio.run(main(parse()))
