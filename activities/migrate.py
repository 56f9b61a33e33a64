"""Versioned SQL migrations: `activities/migrations/NNNN_name.sql`, applied once each, in order.

Each migration runs in its own transaction under a transaction-scoped advisory lock, so
two workers starting at once apply it exactly once between them: the second waits, then
finds the version recorded in `schema_migrations` and skips it.
"""

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

MIGRATIONS_PACKAGE = "activities.migrations"

MIGRATION_LOCK = 0x7669_7369_7466_6C77
"""The advisory-lock key migrations hold ("visitflw" in ASCII)."""

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""

log = structlog.get_logger(__name__)


class MigrationError(Exception):
    """The migrations package is malformed (a badly named file, a repeated version)."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found: dict[str, Migration] = {}
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"Migration file {entry.name!r} is not named NNNN_name.sql.")
        version = match["version"]
        if version in found:
            raise MigrationError(f"Migration version {version} appears twice.")
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply the pending migrations in order; return the versions this call applied."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        for migration in available_migrations():
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                # Created under the lock: concurrent CREATE TABLE IF NOT EXISTS can still collide.
                await conn.execute(_CREATE_LEDGER)
                done = await conn.fetchval(
                    "SELECT true FROM schema_migrations WHERE version = $1", migration.version
                )
                if done:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("migration_applied", version=migration.version, name=migration.name)
            applied.append(migration.version)
    return applied
