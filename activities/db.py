"""The asyncpg connection pool, with JSON codecs so jsonb columns read and write dicts."""

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of our own or one borrowed from the pool: the store's helpers take either."""

APPLICATION_NAME = "visitflow"

# SQLAlchemy-style URLs name a driver after the scheme; asyncpg only knows the plain ones.
_DRIVER_SUFFIXES = ("+asyncpg", "+psycopg", "+psycopg2")


def _dumps(value: Any) -> str:
    # Keep non-ASCII text as UTF-8: the stored payload then reads the way the hash chain
    # canonicalises it, and auditors see names rather than escapes.
    return json.dumps(value, ensure_ascii=False)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("jsonb", "json"):
        await conn.set_type_codec(
            type_name, encoder=_dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


def normalise_dsn(dsn: str) -> str:
    """`dsn` as asyncpg expects it: ``postgresql://`` with no driver suffix.

    Both TCP URLs and unix-socket ones (``postgresql://postgres:@/postgres?host=/tmp/x``,
    as the embedded server gives) pass through unchanged otherwise.
    """
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return dsn
    for suffix in _DRIVER_SUFFIXES:
        scheme = scheme.removesuffix(suffix)
    return f"{scheme}://{rest}"


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool on `dsn` whose connections encode and decode json/jsonb as Python values."""
    return await asyncpg.create_pool(
        normalise_dsn(dsn),
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"application_name": APPLICATION_NAME},
    )
