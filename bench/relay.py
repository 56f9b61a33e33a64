"""Benchmark: notifications delivered per second by the relay to a local webhook receiver,
against a plain loop posting the same payloads with the same HTTP client.

    python -m bench.relay [--notifications N] [--rounds R] [--concurrency C] [--batch B]
                          [--json] [--database-url URL] [--data-dir DIR]

Loads (once) a database whose outbox holds N notifications written by the real store (late
reports: each visit reminded, escalated to its manager, then to its director), starts a
webhook receiver in a process of its own, then alternates R times: the relay delivering
every notification (claim, resolve through the directory, render, sign, post, record), and
a plain loop posting the very bodies and headers the relay sends, with the same
`httpx.AsyncClient` and the same number of requests in flight, doing nothing else. See
bench/README.md.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from activities.channels import Channels, WebhookSender
from activities.db import create_pool
from activities.migrate import available_migrations, migrate
from activities.models import AppendRequest
from activities.people import PeopleStore
from activities.relay import Relay
from activities.store import EventStore
from bench.database import server
from domain.actors import Actor, Role
from domain.commands import ApprovePlan, CheckIn, Command, SubmitPlan
from domain.deadlines import next_alarm
from domain.decide import decide
from domain.people import Channel, Person
from domain.policy import Policy
from domain.state import VisitState, fold
from domain.summary import summarize
from domain.visit import VISITS
from logs import configure_logging
from settings import NotifySettings

DATABASE_ENV = "VISITFLOW_BENCH_DATABASE_URL"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "results" / "pgdata"
DATABASE = "visitflow_bench_relay"
TIMEZONE = "Asia/Shanghai"
SECRET = "bench-secret"

REP = Actor(id="rep-bench", role=Role.rep)
MANAGER = Actor(id="mgr-bench", role=Role.manager)
DIRECTOR = Actor(id="dir-bench", role=Role.director)
PEOPLE = [
    Person(id=DIRECTOR.id, name_zh="赵总", role=Role.director, channel=Channel.webhook),
    Person(id=MANAGER.id, name_zh="李明", role=Role.manager, manager_id=DIRECTOR.id, channel=Channel.webhook),
    Person(id=REP.id, name_zh="王伟", role=Role.rep, manager_id=MANAGER.id, channel=Channel.webhook),
]


@dataclass
class Round:
    plain_seconds: float
    plain_per_second: float
    relay_seconds: float
    relay_per_second: float
    ratio: float
    load_before: float


# --- the receiver: a process of its own, so neither side pays for it -------------------------


class _Hook(asyncio.Protocol):
    """HTTP/1.1 keep-alive: answers every POST with 200, GET /count with how many it took."""

    count = 0
    _length = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            found = self._length.search(head)
            size = int(found.group(1)) if found else 0
            if len(self.buffer) < end + 4 + size:
                return
            self.buffer = self.buffer[end + 4 + size :]
            if head.startswith(b"GET /count"):
                body = str(_Hook.count).encode()
            else:
                _Hook.count += 1
                body = b'{"errcode":0,"errmsg":"ok"}'
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


async def _receive() -> None:
    server_ = await asyncio.get_running_loop().create_server(_Hook, "127.0.0.1", 0)
    print(server_.sockets[0].getsockname()[1], flush=True)
    # Ends with the benchmark: its end of our stdin closes when it exits, however it exits.
    await asyncio.to_thread(sys.stdin.read)


class Receiver:
    """The receiver's process: started by `start`, stopped by `stop`."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.relay", "--receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/hook"

    async def count(self, client: httpx.AsyncClient) -> int:
        return int((await client.get(self.url.replace("/hook", "/count"))).text)

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(10)


# --- the outbox: written once by the real store ----------------------------------------------


def _send(state: VisitState | None, command: Command, at: datetime, visit_id: str) -> AppendRequest:
    events = decide(state, command, at, Policy())
    recorded = VISITS.seal(
        events,
        stream_id=visit_id,
        last_seq=state.last_seq if state else 0,
        head_hash=state.head_hash if state else "",
        actor=command.actor,
        command_id=command.command_id,
        occurred_at=at,
        event_ids=[str(uuid.uuid4()) for _ in events],
    )
    after = fold(recorded, state)
    assert after is not None
    return AppendRequest(visit_id=visit_id, events=recorded, summary=summarize(after))


def late_report(number: int, alarms: int) -> list[AppendRequest]:
    """The append requests of a visit whose report is late: planned, approved, checked in,
    then `alarms` of its reminder and two escalations (one notification each)."""
    visit_id = f"bench-{number:06d}"
    start = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    plan = SubmitPlan.model_validate(
        {
            "command_id": f"{visit_id}-plan",
            "actor": REP,
            "visit_id": visit_id,
            "rep_id": REP.id,
            "manager_id": MANAGER.id,
            "director_id": DIRECTOR.id,
            "plan": {
                "customer": {"id": f"cust-{number % 50}", "name": f"华东五金 {number % 50}", "tier": "core"},
                "scheduled_start": start,
                "duration_minutes": 30,
                "method": "on_site",
                "purpose": "季度回访",
            },
        }
    )
    requests = [_send(None, plan, start - timedelta(days=2), visit_id)]
    state = fold(requests[-1].events)
    steps: list[tuple[Command, datetime]] = [
        (ApprovePlan(command_id=f"{visit_id}-ok", actor=MANAGER), start - timedelta(days=2, hours=-1)),
        (
            CheckIn.model_validate(
                {
                    "command_id": f"{visit_id}-in",
                    "actor": REP,
                    "execution": {
                        "method": "on_site",
                        "started_at": start,
                        "ended_at": start + timedelta(minutes=30),
                    },
                }
            ),
            start + timedelta(hours=1),
        ),
    ]
    for command, at in steps:
        requests.append(_send(state, command, at, visit_id))
        state = fold(requests[-1].events, state)
    for _ in range(alarms):
        assert state is not None
        alarm = next_alarm(state, state.updated_at)
        assert alarm is not None
        requests.append(_send(state, alarm.command(), alarm.at, visit_id))
        state = fold(requests[-1].events, state)
    return requests


async def prepare(server_url: str, notifications: int, say: Callable[[str], None]) -> str:
    """The URL of the benchmark's database, holding exactly `notifications` notifications."""
    base, _, query = server_url.partition("?")
    url = f"{base.rsplit('/', 1)[0]}/{DATABASE}" + (f"?{query}" if query else "")
    try:
        conn = await asyncpg.connect(url)
        try:
            have = await conn.fetchval("SELECT count(*) FROM notifications")
            # A database migrated by an older version of the code is loaded afresh.
            if (
                await conn.fetchval("SELECT max(version) FROM schema_migrations")
                != available_migrations()[-1].version
            ):
                have = None
        finally:
            await conn.close()
    except (asyncpg.InvalidCatalogNameError, asyncpg.UndefinedTableError):
        have = None
    if have == notifications:
        say(f"reusing {DATABASE}: {have:,} notifications")
        return url
    say(f"writing {notifications:,} notifications through the store into {DATABASE} ...")
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    pool = await create_pool(url, min_size=2, max_size=8)
    try:
        await migrate(pool)
        await PeopleStore(pool).upsert_many(PEOPLE)
        store = EventStore(pool)
        visits = -(-notifications // 3)
        gate = asyncio.Semaphore(8)

        async def write(number: int) -> None:
            alarms = min(3, notifications - 3 * number)
            async with gate:
                for request in late_report(number, alarms):
                    await store.append(request)

        await asyncio.gather(*(write(n) for n in range(visits)))
        await pool.execute("VACUUM ANALYZE notifications")
    finally:
        await pool.close()
    return url


_RESET = """
UPDATE notifications SET status = 'pending', next_attempt_at = now(), attempts = 0, retry_from = 0,
       claimed_by = NULL, claimed_until = NULL, delivered_at = NULL, sent_at = NULL, channel = NULL,
       last_error = NULL, resolution = NULL
"""


async def reset(pool: asyncpg.Pool) -> None:
    """Every notification pending again, its history gone: the next round starts alike."""
    await pool.execute(_RESET)
    await pool.execute("TRUNCATE notification_attempts")
    await pool.execute("VACUUM ANALYZE notifications")


# --- the two sides ----------------------------------------------------------------------------


def notify_settings(url: str, concurrency: int, batch: int) -> NotifySettings:
    return NotifySettings(
        webhook_url=url,
        webhook_secret=SecretStr(SECRET),
        concurrency=concurrency,
        batch_size=batch,
        lease=timedelta(minutes=10),
    )


async def payloads(
    pool: asyncpg.Pool, settings: NotifySettings, client: httpx.AsyncClient
) -> list[tuple[bytes, dict[str, str]]]:
    """The bodies and headers the relay posts, built by the relay's own code (then given back)."""
    relay = Relay(pool, settings, timezone=TIMEZONE, client=client, name="bench-payloads")
    sender = Channels(settings, client).senders[Channel.webhook]
    assert isinstance(sender, WebhookSender)
    built = []
    now = datetime.now(UTC)
    while jobs := await relay.claim(settings.batch_size):
        for job in jobs:
            for target in job.targets:
                assert target.person is not None
                message = relay.outgoing(job, target, target.person, now, sender)
                built.append(sender.request(message))
    await reset(pool)
    return built


async def plain(
    client: httpx.AsyncClient, url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> float:
    """Seconds to post every request, `concurrency` at a time, doing nothing else."""
    work = iter(requests)

    async def poster() -> None:
        for body, headers in work:
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(concurrency)))
    return time.perf_counter() - started


async def relayed(
    pool: asyncpg.Pool, settings: NotifySettings, client: httpx.AsyncClient, expected: int
) -> float:
    """Seconds for the relay to deliver every notification and record it."""
    relay = Relay(pool, settings, timezone=TIMEZONE, client=client, name="bench-relay")
    started = time.perf_counter()
    report = await relay.drain()
    seconds = time.perf_counter() - started
    if report.delivered != expected:
        raise SystemExit(f"the relay delivered {report.delivered} of {expected} notifications: {report}")
    return seconds


async def measure(
    url: str, args: argparse.Namespace, say: Callable[[str], None]
) -> tuple[list[Round], dict[str, Any]]:
    receiver = Receiver()
    pool = await create_pool(url, min_size=2, max_size=8)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    rows: list[Round] = []
    try:
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            settings = notify_settings(receiver.url, args.concurrency, args.batch)
            await reset(pool)
            requests = await payloads(pool, settings, client)
            n = len(requests)
            for number in range(1, args.rounds + 1):
                load = os.getloadavg()[0]
                before = await receiver.count(client)
                plain_seconds = await plain(client, receiver.url, requests, args.concurrency)
                relay_seconds = await relayed(pool, settings, client, n)
                received = await receiver.count(client) - before
                if received != 2 * n:
                    raise SystemExit(f"the receiver got {received} requests in round {number}, not {2 * n}")
                await reset(pool)
                rows.append(
                    Round(
                        plain_seconds,
                        n / plain_seconds,
                        relay_seconds,
                        n / relay_seconds,
                        plain_seconds / relay_seconds,
                        load,
                    )
                )
                say(
                    f"  round {number}: plain {n / plain_seconds:,.0f}/s, relay {n / relay_seconds:,.0f}/s, "
                    f"ratio {plain_seconds / relay_seconds:.3f}"
                )
            facts = {
                "notifications": n,
                "concurrency": args.concurrency,
                "batch": args.batch,
                "postgres": await pool.fetchval("SHOW server_version"),
            }
    finally:
        await pool.close()
        receiver.stop()
    return rows, facts


def table(rows: list[Round], facts: dict[str, Any]) -> str:
    lines = [
        f"{facts['notifications']:,} notifications to a local webhook receiver; "
        f"{facts['concurrency']} in flight, batches of {facts['batch']}; PostgreSQL {facts['postgres']}; "
        f"{os.cpu_count()} cores",
        "",
        f"{'round':>5}  {'plain n/s':>10}  {'relay n/s':>10}  {'ratio':>7}  {'load 1m':>8}",
    ]
    for number, r in enumerate(rows, start=1):
        lines.append(
            f"{number:>5}  {r.plain_per_second:>10,.0f}  {r.relay_per_second:>10,.0f}  "
            f"{r.ratio:>7.3f}  {r.load_before:>8.2f}"
        )
    plain_median = statistics.median(r.plain_per_second for r in rows)
    relay_median = statistics.median(r.relay_per_second for r in rows)
    lines += [
        "",
        f"median plain {plain_median:,.0f}/s, relay {relay_median:,.0f}/s; "
        f"median ratio relay/plain: {statistics.median(r.ratio for r in rows):.3f}",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    async with server(args.database_url, args.data_dir) as server_url:
        url = await prepare(server_url, args.notifications, say)
        say(f"measuring {args.rounds} rounds (plain, then relay) ...")
        rows, facts = await measure(url, args, say)
    if args.json:
        print(
            json.dumps(
                {
                    **facts,
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "rounds": [asdict(r) for r in rows],
                    "median_plain_per_second": statistics.median(r.plain_per_second for r in rows),
                    "median_relay_per_second": statistics.median(r.relay_per_second for r in rows),
                    "median_ratio": statistics.median(r.ratio for r in rows),
                },
                indent=2,
            )
        )
    else:
        print()
        print(table(rows, facts))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--notifications", type=int, default=10_000, help="notifications (default 10,000)")
    parser.add_argument("--rounds", type=int, default=5, help="plain/relay rounds (default 5)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--batch", type=int, default=100, help="the relay's batch size (default 100)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_ENV),
        help=f"a server to use (database {DATABASE} is created there); env {DATABASE_ENV}; "
        "default: the embedded PostgreSQL",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the embedded server's data directory"
    )
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    if arguments.receiver:
        asyncio.run(_receive())
    else:
        # Quiet: the migrations' and the relay's log lines would interleave with the figures.
        configure_logging("console", "WARNING")
        asyncio.run(main(arguments))
