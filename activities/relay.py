"""The notification relay: drains both outboxes and delivers every reminder and escalation on
the recipient's channel, at least once and never twice on its own.

One pass of a row:

1. **Claim.** Due rows of `notifications` and `plan_notifications` are claimed in batches
   with ``FOR UPDATE SKIP LOCKED`` (`EventLog.claim_notifications`): the row becomes
   `delivering`, held by this relay until its lease ends. Relays running at once skip each
   other's rows; a relay killed mid-send frees its rows when the lease ends, and the next
   relay sends them again under the same idempotency key (the history records the
   `expired` attempt).
2. **Resolve.** The recipient ("the visit's manager", a director, "directors") is resolved
   through the directory (`domain.people.resolve`) on the company's local date, at the
   first attempt; the resolution (who, and why: a deputy standing in, the director above)
   is recorded on the row and kept for the retries. A re-drive resolves again.
3. **Send.** For each person not yet reached: quiet hours postpone the row to their end;
   otherwise the notice is rendered in the person's language (`domain.notices`) and sent
   on their channel (`activities.channels`), concurrently up to `concurrency` sends, with
   one shared HTTP client.
4. **Record.** Outcomes are written in batches, in one transaction, only while the claim
   is still this relay's: `delivered` (everyone reached), back to `pending` with
   exponential backoff and jitter after a passing failure, or `dead` with the reason (a
   permanent failure, or the retries ran out). Every attempt, per person, goes to
   `notification_attempts`.

The idempotency key of a notification is its id (the id of the event that caused it); when
a notification reaches several people (every director), each gets ``<id>:<person id>``.
"""

import asyncio
import contextlib
import json
import os
import random
import re
import socket
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import structlog

from activities.channels import Channels, Outgoing, Sender, SendFailed, WebhookSender
from activities.errors import StoreError, translated
from activities.event_log import AttemptRow, DeliveryUpdate, EventLog
from activities.people import PeopleStore
from activities.plan_store import PLAN_LOG
from activities.store import VISIT_LOG
from domain.actors import Actor
from domain.calendar import zone
from domain.deadlines import CHECK_IN, REPORT
from domain.month_plan import PLAN_CONCERN
from domain.notices import NoticeFacts, render
from domain.people import DIRECTORS, Person, Resolved, resolve
from domain.state import ITEM_PREFIX
from settings import NotifySettings

log = structlog.get_logger("visitflow.relay")

_OWED_BY = re.compile(r"\(owed by ([^)]+)\)")
# Concerns the rep owes; the others (a plan's approval, a report's review) the manager owes.
_REP_OWES = (REPORT, CHECK_IN, PLAN_CONCERN)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def relay_name() -> str:
    """This process's name in claims and the history: host, pid and a few random characters."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def backoff(settings: NotifySettings, attempt: int, rng: random.Random) -> timedelta:
    """How long to wait after failed attempt `attempt` (1 = the first): exponential, capped at
    `retry_max`, with jitter (between half and all of it) so relays do not retry in step."""
    base = settings.retry_base.total_seconds() * 2 ** min(attempt - 1, 30)
    capped = min(settings.retry_max.total_seconds(), base)
    return timedelta(seconds=capped * (0.5 + rng.random() / 2))


@dataclass
class Target:
    """One person a notification is for, as the directory holds them now (None: no longer there)."""

    person_id: str
    person: Person | None
    standing_in_for: Person | None = None


@dataclass
class Job:
    """A claimed row, resolved, waiting to be sent."""

    log: EventLog[Any, Any, Any, Any]
    row: dict[str, Any]
    lease_end: float
    """`time.monotonic()` when this relay's claim ends."""
    resolution: dict[str, Any]
    targets: list[Target]
    problem: str | None = None
    owner: Person | None = None
    """Who owes the thing, as the directory has them (for their name in the notice)."""

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def stream(self) -> str:
        return self.log.word

    @property
    def budget_used(self) -> int:
        return int(self.row["attempts"]) - int(self.row["retry_from"])

    def key(self, person_id: str) -> str:
        return self.id if len(self.resolution.get("person_ids", [])) <= 1 else f"{self.id}:{person_id}"


@dataclass
class Attempted:
    """How sending to one person went."""

    person_id: str
    outcome: str  # delivered | retry | dead | postponed
    channel: str | None = None
    error: str | None = None
    duration_ms: int | None = None
    until: datetime | None = None


@dataclass
class Done:
    job: Job
    at: datetime
    attempts: list[Attempted] = field(default_factory=list)


@dataclass
class RelayReport:
    """What one `Relay.drain` did: notifications by the state they were left in."""

    delivered: int = 0
    retry: int = 0
    dead: int = 0
    postponed: int = 0
    lost: int = 0
    """Outcomes not recorded because another relay holds the row now (its lease had ended)."""
    sends: int = 0
    """Messages handed to a channel (one per person and attempt)."""

    def add(self, counts: Counter[str]) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + n)


class Relay:
    """Delivers the notifications of both outboxes (see the module's docstring).

    `client` is the HTTP client the webhook and robot channels use (one is made and closed
    per run when none is given); `clock` says what time it is (tests move it forward to
    skip backoffs, quiet hours and leases).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: NotifySettings,
        *,
        timezone: str,
        client: httpx.AsyncClient | None = None,
        name: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.timezone = timezone
        self.client = client
        self.name = name or relay_name()
        self.clock = clock
        self.rng = rng or random.Random()
        self.logs: tuple[EventLog[Any, Any, Any, Any], ...] = (
            EventLog(VISIT_LOG, pool),
            EventLog(PLAN_LOG, pool),
        )
        self.people = PeopleStore(pool)
        self._first = 0
        self._dumped: dict[int, tuple[dict[str, Any], str]] = {}

    @contextlib.asynccontextmanager
    async def _channels(self) -> AsyncIterator[Channels]:
        if self.client is not None:
            yield Channels(self.settings, self.client)
            return
        limits = httpx.Limits(
            max_connections=self.settings.concurrency, max_keepalive_connections=self.settings.concurrency
        )
        async with httpx.AsyncClient(
            timeout=self.settings.send_timeout.total_seconds(), limits=limits
        ) as client:
            yield Channels(self.settings, client)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish the sends under way and give back the rest."""
        log.info(
            "relay started",
            relay=self.name,
            batch=self.settings.batch_size,
            concurrency=self.settings.concurrency,
        )
        async with self._channels() as channels:
            if self._idle(channels):
                await stop.wait()
            else:
                await _Pump(self, channels, stop=stop).run()
        log.info("relay stopped", relay=self.name)

    def _idle(self, channels: Channels) -> bool:
        """With no channel set up, rows stay pending (nothing is lost, nothing goes dead)."""
        if channels.senders:
            return False
        log.warning(
            "no notification channel is set up: notifications wait, pending",
            settings="VISITFLOW_NOTIFY__SMTP_HOST, ..._WEBHOOK_URL, ..._DINGTALK_URL or ..._WECOM_URL",
        )
        return True

    async def drain(self) -> RelayReport:
        """Deliver everything due now, then return what happened (tests, `visits relay --once`)."""
        async with self._channels() as channels:
            if self._idle(channels):
                return RelayReport()
            pump = _Pump(self, channels, stop=None)
            await pump.run()
            return pump.report

    # --- claiming and resolving -----------------------------------------------------------

    async def claim(self, limit: int) -> list[Job]:
        """Claim up to `limit` due rows of both outboxes and resolve their recipients."""
        now = self.clock()
        lease = self.settings.lease
        rows: list[tuple[EventLog[Any, Any, Any, Any], dict[str, Any]]] = []
        # Take turns at going first, so a busy outbox does not starve the other.
        self._first = 1 - self._first
        for log_ in (self.logs[self._first], self.logs[1 - self._first]):
            if len(rows) >= limit:
                break
            claimed = await log_.claim_notifications(
                now=now, limit=limit - len(rows), relay=self.name, lease=lease
            )
            rows += [(log_, r) for r in claimed]
        if not rows:
            return []
        lease_end = time.monotonic() + lease.total_seconds()
        return await self._resolve(rows, now, lease_end)

    async def _resolve(
        self, rows: list[tuple[EventLog[Any, Any, Any, Any], dict[str, Any]]], now: datetime, lease_end: float
    ) -> list[Job]:
        on = now.astimezone(zone(self.timezone)).date()
        known: dict[str, Person | None] = {}
        directors: list[Person] | None = None
        fresh = [(lg, r) for lg, r in rows if r.get("resolution") is None]
        if any(r["recipient_id"] == DIRECTORS for _, r in fresh):
            directors = await self.people.directors()
            known.update({d.id: d for d in directors})
        wanted: set[str] = set()
        for _, r in rows:
            context = r.get("context") or {}
            r["owner_id"] = _owner_id(r)
            wanted |= {x for x in (r["recipient_id"], context.get("manager_id"), r["owner_id"]) if x}
            recorded = r.get("resolution") or {}
            wanted |= set(recorded.get("person_ids", [])) | set(recorded.get("standing_in", {}).values())

        # Rows for the same recipient and manager resolve alike: once per batch.
        def case(r: dict[str, Any]) -> tuple[str, str, str | None]:
            return (r["recipient_id"], r["recipient_role"], (r.get("context") or {}).get("manager_id"))

        cases = {case(r) for _, r in fresh}
        resolved: dict[tuple[str, str, str | None], Resolved] = {}
        for _ in range(6):  # each round follows one more step: a deputy, the director above
            wanted -= known.keys()
            if wanted:
                found = await self.people.get_many(wanted)
                known.update({pid: found.get(pid) for pid in wanted})
            missing: set[str] = set()

            def lookup(person_id: str, missing: set[str] = missing) -> Person | None:
                if person_id not in known:
                    missing.add(person_id)
                return known.get(person_id)

            for recipient_id, role, manager_id in cases:
                resolved[(recipient_id, role, manager_id)] = resolve(
                    Actor(id=recipient_id, role=role),
                    lookup,
                    on,
                    manager_id=manager_id,
                    directors=directors or (),
                )
            if not missing:
                break
            wanted = missing
        recordings = {key: _resolution_record(found, known, on, now) for key, found in resolved.items()}
        jobs = []
        for lg, r in rows:
            recording = recordings[case(r)] if r.get("resolution") is None else dict(r["resolution"])
            standing_in: dict[str, str] = recording.get("standing_in", {})
            delivered = set(r.get("delivered_to") or [])
            targets = [
                Target(pid, known.get(pid), known.get(standing_in[pid]) if pid in standing_in else None)
                for pid in recording.get("person_ids", [])
                if pid not in delivered
            ]
            owner = known.get(r["owner_id"]) if r["owner_id"] else None
            jobs.append(Job(lg, r, lease_end, recording, targets, recording.get("problem"), owner))
        return jobs

    async def renew(self, job: Job) -> bool:
        """Extend the claim on `job`'s row; False when another relay holds it now."""
        kept = await job.log.renew_claims(
            [job.id], now=self.clock(), relay=self.name, lease=self.settings.lease
        )
        job.lease_end = time.monotonic() + self.settings.lease.total_seconds()
        return job.id in kept

    async def release(self, jobs: Iterable[Job]) -> None:
        """Give back claimed rows that were never tried (the relay is stopping)."""
        now = self.clock()
        for log_ in self.logs:
            ids = [j.id for j in jobs if j.log is log_]
            if ids:
                await log_.release_claims(ids, now=now, relay=self.name)

    # --- sending --------------------------------------------------------------------------

    async def deliver(self, job: Job, channels: Channels) -> Done:
        """Send `job` to each of its people not yet reached; the outcomes, not yet recorded."""
        now = self.clock()
        done = Done(job, now)
        if job.problem is not None:
            return done
        timeout = self.settings.send_timeout.total_seconds()
        for target in job.targets:
            person = target.person
            if person is None:
                done.attempts.append(
                    Attempted(
                        target.person_id, "dead", error=f"{target.person_id} is no longer in the directory"
                    )
                )
                continue
            until = person.quiet_until(now, self.timezone)
            if until is not None:
                note = f"quiet hours of {person.id} until {until.isoformat(timespec='minutes')}"
                done.attempts.append(Attempted(person.id, "postponed", error=note, until=until))
                continue
            sender = channels.route(person)
            if isinstance(sender, str):
                done.attempts.append(Attempted(person.id, "dead", error=sender))
                continue
            started = time.perf_counter()
            try:
                message = self.outgoing(job, target, person, now, sender)
                # Beside the channel's own timeouts: no send may outlast the claim.
                async with asyncio.timeout(timeout + 1):
                    await sender.send(message)
                outcome, error = "delivered", None
            except SendFailed as err:
                outcome, error = ("dead" if err.permanent else "retry"), err.reason
            except TimeoutError:
                outcome, error = "retry", f"{sender.name} did not finish within {timeout:g} s"
            except Exception as err:  # a relay outlives one bad message; the row retries and says why
                log.error(
                    "send failed unexpectedly", notification=job.id, person=person.id, error=describe(err)
                )
                outcome, error = "retry", f"{type(err).__name__}: {err}"
            ms = int((time.perf_counter() - started) * 1000)
            done.attempts.append(Attempted(person.id, outcome, str(sender.name), error, ms))
        return done

    def outgoing(self, job: Job, target: Target, person: Person, now: datetime, sender: Sender) -> Outgoing:
        """The message for one person, rendered in the forms `sender` sends (with the webhook's
        JSON body when it goes there)."""
        row, context = job.row, job.row.get("context") or {}
        owner_id = row["owner_id"]
        owner = job.owner
        standing = target.standing_in_for
        facts = NoticeFacts(
            stream=job.stream,  # type: ignore[arg-type]  # "visit" | "plan", the logs' words
            stream_id=row[job.log.tables.key],
            kind=row["kind"],
            level=row["level"],
            concern=row["concern"],
            due_at=row["due_at"],
            message=row["message"],
            timezone=self.timezone,
            at=now,
            customer_name=context.get("customer_name"),
            month=context.get("month"),
            owner_id=owner_id,
            owner_name=owner.display_name if owner else None,
            recipient_id=person.id,
            recipient_role=person.role.value,
            recipient_name=person.display_name,
            standing_in_for=f"{standing.display_name} ({standing.id})" if standing else None,
            standing_in_for_id=standing.id if standing else None,
            key=job.key(person.id),
        )
        notice = render(facts, person.language, sender.formats)
        payload: dict[str, Any] = {}
        if isinstance(sender, WebhookSender):
            payload = {
                "id": job.id,
                "idempotency_key": facts.key,
                "stream": job.stream,
                "stream_id": facts.stream_id,
                "seq": row["seq"],
                "kind": row["kind"],
                "level": row["level"],
                "concern": row["concern"],
                "due_at": row["due_at"].isoformat(),
                "created_at": row["created_at"].isoformat(),
                "recipient": {"id": row["recipient_id"], "role": row["recipient_role"]},
                "person": {"id": person.id, "name": person.display_name, "language": person.language.value},
                "standing_in_for": standing.id if standing else None,
                "customer_name": facts.customer_name,
                "month": facts.month,
                "subject": notice.subject,
                "text": notice.text,
                "message": row["message"],
            }
        return Outgoing(facts.key, job.id, person, notice, payload)

    # --- recording ------------------------------------------------------------------------

    def settle(self, done: Done) -> tuple[DeliveryUpdate, list[AttemptRow], str]:
        """The row's new state after `done`, its history lines, and the state's name."""
        job, now, s = done.job, done.at, self.settings
        attempt = int(job.row["attempts"])
        history = [
            AttemptRow(job.id, attempt, now, a.channel, a.person_id, a.outcome, a.error, a.duration_ms)
            for a in done.attempts
        ]
        resolution = self._json(job.resolution)
        before = [c for c in (job.row.get("channel") or "").split(",") if c]
        channels = ",".join(
            dict.fromkeys(
                [*before, *(a.channel for a in done.attempts if a.outcome == "delivered" and a.channel)]
            )
        )
        by = {
            o: [a for a in done.attempts if a.outcome == o]
            for o in ("delivered", "retry", "dead", "postponed")
        }
        reached = set(job.row.get("delivered_to") or []) | {a.person_id for a in by["delivered"]}

        def update(
            status: str, *, at: datetime = now, error: str | None = None, refund: int = 0
        ) -> DeliveryUpdate:
            delivered_at = now if status == "delivered" else None
            return DeliveryUpdate(
                job.id, status, at, refund, channels or None, error, resolution, delivered_at
            )

        if job.problem is not None:
            history.append(AttemptRow(job.id, attempt, now, None, None, "dead", job.problem, None))
            return update("dead", error=job.problem), history, "dead"
        if set(job.resolution.get("person_ids", [])) <= reached:
            return update("delivered"), history, "delivered"
        errors = "; ".join(f"{a.person_id}: {a.error}" for a in by["retry"] + by["dead"])
        if by["retry"]:
            if job.budget_used >= s.max_attempts:
                return (
                    update("dead", error=f"gave up after {job.budget_used} attempts: {errors}"),
                    history,
                    "dead",
                )
            at = now + backoff(s, job.budget_used, self.rng)
            at = min([at, *(a.until for a in by["postponed"] if a.until)])
            return update("pending", at=at, error=errors), history, "retry"
        if by["postponed"]:
            at = min(a.until for a in by["postponed"] if a.until)
            # Waiting for quiet hours to end is not a failure: it uses none of the retry budget.
            return update("pending", at=at, error=errors or None, refund=1), history, "postponed"
        return update("dead", error=errors or "nobody could be reached"), history, "dead"

    def _json(self, resolution: dict[str, Any]) -> str:
        # Rows resolved alike share one resolution dict (`_resolve`): dump it once per batch.
        key = id(resolution)
        cached = self._dumped.get(key)
        if cached is None or cached[0] is not resolution:
            cached = self._dumped[key] = (resolution, json.dumps(resolution, ensure_ascii=False, default=str))
        return cached[1]

    async def record(self, batch: Sequence[Done]) -> Counter[str]:
        """Write the outcomes of `batch` in one transaction; counts by the state each row is left in."""
        counts: Counter[str] = Counter()
        self._dumped = {}
        settled = [(d, *self.settle(d)) for d in batch]
        async with translated(), self.pool.acquire() as conn, conn.transaction():
            for log_ in self.logs:
                mine = [(d, u, h, state) for d, u, h, state in settled if d.job.log is log_]
                if not mine:
                    continue
                kept = await log_.record_deliveries(
                    conn,
                    [u for _, u, _, _ in mine],
                    [row for _, _, h, _ in mine for row in h],
                    relay=self.name,
                )
                for d, u, _, state in mine:
                    if u.id in kept:
                        counts[state] += 1
                    else:
                        counts["lost"] += 1
                        log.warning(
                            "claim lost before the outcome was recorded", notification=d.job.id, outcome=state
                        )
        for d, _, _, state in settled:
            counts["sends"] += sum(1 for a in d.attempts if a.channel)
            if state in ("dead", "retry"):
                log.warning(
                    "notification not delivered",
                    notification=d.job.id,
                    stream=d.job.stream,
                    state=state,
                    error=next((a.error for a in d.attempts if a.error), d.job.problem),
                )
        return counts


class _Pump:
    """One run of the relay: a feeder that claims and resolves, `concurrency` senders, and a
    recorder that writes outcomes in batches. With `stop` None it drains what is due, then ends."""

    def __init__(self, relay: Relay, channels: Channels, *, stop: asyncio.Event | None) -> None:
        self.relay = relay
        self.channels = channels
        self.stop = stop
        self.jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        self.finished: list[Done] = []
        self.busy = 0
        self.progress = asyncio.Event()
        self.flush = asyncio.Event()
        self.closing = False
        self.report = RelayReport()
        # The next batch is claimed while a whole one is still queued, so senders never wait
        # for a claim (claiming and resolving a batch takes longer than sending a few rows).
        self.low_water = max(relay.settings.concurrency, relay.settings.batch_size)

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less when the relay is told to stop."""
        if self.stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def run(self) -> None:
        settings = self.relay.settings
        senders = [asyncio.create_task(self.send()) for _ in range(settings.concurrency)]
        recorder = asyncio.create_task(self.record())
        try:
            await self.feed()
        finally:
            left: list[Job] = []
            while not self.jobs.empty():
                job = self.jobs.get_nowait()
                if job is not None:
                    left.append(job)
            if left:
                with contextlib.suppress(StoreError):
                    await self.relay.release(left)
            for _ in senders:
                self.jobs.put_nowait(None)
            await asyncio.gather(*senders)
            self.closing = True
            self.flush.set()
            await recorder

    async def feed(self) -> None:
        relay, settings = self.relay, self.relay.settings
        low_water = self.low_water
        while not self.stopping():
            if self.jobs.qsize() > low_water:
                self.progress.clear()
                await self.wait_progress()
                continue
            try:
                jobs = await relay.claim(settings.batch_size)
            except StoreError as err:
                if self.stop is None:
                    raise
                log.warning("relay cannot claim notifications", error=str(err))
                await self.pause(settings.poll_interval.total_seconds())
                continue
            for job in jobs:
                self.jobs.put_nowait(job)
            if jobs:
                continue
            self.progress.clear()
            if self.stop is None:
                # Draining: done once nothing is queued or being sent (those only become due later).
                if self.busy == 0 and self.jobs.empty():
                    return
                await self.wait_progress()
            else:
                await self.pause(settings.poll_interval.total_seconds())

    async def wait_progress(self) -> None:
        if self.stop is None:
            await self.progress.wait()
            return
        waiters = {asyncio.ensure_future(self.progress.wait()), asyncio.ensure_future(self.stop.wait())}
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def send(self) -> None:
        relay = self.relay
        margin = relay.settings.send_timeout.total_seconds() + 5
        while (job := await self.jobs.get()) is not None:
            self.busy += 1
            try:
                needed = margin * max(1, len(job.targets))
                if job.lease_end - time.monotonic() < needed and not await relay.renew(job):
                    log.warning("claim lost before sending", notification=job.id)
                    continue
                # Awaited first: the recorder may swap `finished` for a new list meanwhile.
                done = await relay.deliver(job, self.channels)
                self.finished.append(done)
                if len(self.finished) >= relay.settings.batch_size:
                    self.flush.set()
            except StoreError as err:
                log.warning("relay cannot renew a claim", notification=job.id, error=str(err))
            finally:
                self.busy -= 1
                # The feeder only waits for room in the queue, or (draining) for the last send.
                if self.jobs.qsize() <= self.low_water or self.busy == 0:
                    self.progress.set()

    async def record(self) -> None:
        relay = self.relay
        while True:
            with contextlib.suppress(TimeoutError):
                # Outcomes go out in batches (one transaction each), at least every 0.2 s.
                await asyncio.wait_for(self.flush.wait(), 0.2)
            self.flush.clear()
            closing = self.closing
            if self.finished:
                batch, self.finished = self.finished, []
                try:
                    self.report.add(await relay.record(batch))
                except StoreError as err:
                    if closing:
                        log.error(
                            "relay could not record outcomes; their rows are sent again", error=str(err)
                        )
                        raise
                    log.warning("relay cannot record outcomes yet", error=str(err))
                    self.finished = batch + self.finished
                    await self.pause(relay.settings.poll_interval.total_seconds())
                    continue
            if closing and not self.finished:
                return


def describe(err: BaseException) -> str:
    """An unexpected error and where it was raised, in one line: its frames' files and lines,
    never their local variables (they may hold a robot's URL with its token)."""
    frames = traceback.extract_tb(err.__traceback__)[-4:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(err).__name__}: {err} (at {where or 'unknown'})"


def _owner_id(row: dict[str, Any]) -> str | None:
    """Who owes the thing the notification is about: the recipient of a reminder; for an
    escalation, the one its message names, else the rep or the manager by the concern."""
    if row["kind"] == "reminder":
        return str(row["recipient_id"])
    found = _OWED_BY.search(row["message"] or "")
    if found:
        return found.group(1)
    context = row.get("context") or {}
    concern = row["concern"]
    if concern in _REP_OWES or concern.startswith(ITEM_PREFIX):
        return context.get("rep_id")
    return context.get("manager_id")


def _resolution_record(
    resolved: Resolved, known: dict[str, Person | None], on: date, now: datetime
) -> dict[str, Any]:
    """The resolution as it is recorded on the row: `Resolved`, the date it was resolved for,
    and which of the people told stand in for whom (a deputy for the absent manager)."""
    standing_in: dict[str, str] = {}
    for told in resolved.person_ids:
        for person in known.values():
            if (
                person is not None
                and person.deputy_id == told
                and person.away_on(on)
                and person.id != told
                and (person.id == resolved.recipient.id or resolved.recipient.id == DIRECTORS)
            ):
                standing_in[told] = person.id
                break
    return {
        **resolved.model_dump(mode="json"),
        "on": on.isoformat(),
        "at": now.isoformat(),
        "standing_in": standing_in,
    }


# --- reading and re-driving: `visits notifications` ---------------------------------------


class NotificationNotFound(StoreError):
    """No notification has this id (or several start with it)."""

    non_retryable = True


class NotificationNotRedriven(StoreError):
    """A notification `retry` leaves alone: delivered, or being delivered right now."""

    non_retryable = True


class Notifications:
    """Both outboxes as one list, for people: list, show with the history, re-drive."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.logs = {log_.word: log_ for log_ in (EventLog(VISIT_LOG, pool), EventLog(PLAN_LOG, pool))}

    async def recent(
        self, *, status: str | None = None, stream: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Notifications newest first, of one outbox or both, with one status or any."""
        rows: list[dict[str, Any]] = []
        for word, log_ in self.logs.items():
            if stream in (None, word):
                rows += await log_.notifications(status=status, limit=limit)
        rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return rows[:limit]

    async def find(self, notification_id: str) -> dict[str, Any]:
        """The notification whose id is or starts with `notification_id` (at least 4 characters)."""
        text = notification_id.strip().lower()
        if len(text) < 4 or not re.fullmatch(r"[0-9a-f-]+", text):
            raise NotificationNotFound(
                f"{notification_id!r} is not a notification id (a UUID, or its first characters)."
            )
        found: list[dict[str, Any]] = []
        for log_ in self.logs.values():
            found += await log_.notifications(ids=[text], limit=2)
        if not found:
            raise NotificationNotFound(f"No notification has the id {notification_id}.")
        if len(found) > 1:
            raise NotificationNotFound(
                f"Several notifications have ids starting with {notification_id}; give more of it."
            )
        return found[0]

    async def show(self, notification_id: str) -> dict[str, Any]:
        """The notification, its recorded resolution, and every attempt."""
        row = await self.find(notification_id)
        row["history"] = await self.logs[row["stream"]].delivery_attempts(row["id"])
        return row

    async def retry(
        self, ids: Sequence[str] = (), *, dead: bool = False, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Send again from now: the notifications named (dead or pending), or every dead one."""
        at = now or _utcnow()
        redriven: list[dict[str, Any]] = []
        if dead:
            for word, log_ in self.logs.items():
                redriven += [{"id": i, "stream": word} for i in await log_.redrive(now=at, dead=True)]
            return redriven
        for notification_id in ids:
            row = await self.find(notification_id)
            if row["status"] in ("delivered", "delivering"):
                raise NotificationNotRedriven(
                    f"Notification {row['id']} is {row['status']}; only pending and dead notifications "
                    "are sent again."
                )
            done = await self.logs[row["stream"]].redrive(now=at, ids=[row["id"]])
            redriven += [{"id": i, "stream": row["stream"]} for i in done]
        return redriven
