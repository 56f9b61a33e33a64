"""Whole-log verification: every stream's chain verified and its events folded, in one pass.

`verify_log` reads one entire log (`visit_events` with the `visits` read model, or with
`tables=PLAN_LOG` the monthly plans' `plan_events` with `month_plans`) at one instant (a
REPEATABLE READ snapshot) and, for every stream (every visit, every plan):

- verifies its hash chain on the rows exactly as stored (`domain.verify.ChainVerifier`,
  the streaming form of `verify_chain`), anchored on the read model's last seq and head
  hash, so a deleted or rewritten tail shows, and so do rows appended past the head (the
  engine moves it in the transaction that appends);
- folds its events into the stream's state with the workflow's own functions (each row
  read by the log's `recorded_from_row`, upcast, then the stream's `evolve`): a row that
  cannot be read or does not follow from those before (an event after `VisitClosed`, or
  after a plan is complete, included) is a problem of that stream, located by its seq.

What it proves: each chain is whole from event 1 to its anchor and ends there, no stored
row differs from what was hashed when it was appended, and the log still folds into valid
states.
What it cannot: the anchor lives in the same database, so someone who can rewrite the
log and the read model together (re-hashing the rows after a change) is not caught
here; that takes a second, independent record: Temporal's history, compared by
`visits audit ID --check-history`, or an exported head. A stream with events but no
read-model row is listed as unanchored: its tail cannot be checked.

Large logs are split into ranges of stream ids checked by worker processes, each on a
connection of its own that imports the same snapshot; the product ships this path. The
snapshot stays open for the whole run, so VACUUM keeps the rows it could still see.
"""

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing import get_context
from typing import Any

import asyncpg
from pydantic import BaseModel, computed_field

from activities.db import Connection
from activities.errors import UnreadableEvent, translated
from activities.event_log import LogTables
from activities.log_stream import IdRange, anchors, connect, expected_events, id_ranges, snapshot, stream_logs
from activities.plan_store import PLAN_LOG
from activities.store import VISIT_LOG
from domain.verify import ChainProblem, ChainVerifier

Tables = LogTables[Any, Any, Any, Any]

Progress = Callable[[int, int], None]
"""Called as progress(events_done, events_total) while the check runs."""

EVENTS_PER_RANGE = 20_000
"""About how many events one range (one unit of work and of progress) holds."""

PARALLEL_MIN_EVENTS = 100_000
"""Below this many events, starting worker processes costs more than it saves."""

_PROGRESS_STEP = 5_000


class FoldProblem(StrEnum):
    """What is wrong with a row whose chain is intact but whose event cannot be folded."""

    unreadable = "unreadable"


class BadStream(BaseModel):
    """A stream (a visit, a plan) whose log is not intact or does not fold, at its first bad event.

    `kind` is a `ChainProblem` or `FoldProblem.unreadable`; `head_seq` is the last event
    verified intact; `events_checked` the rows read up to the bad one.
    """

    stream: str = "visit"
    stream_id: str
    first_bad_seq: int
    kind: ChainProblem | FoldProblem
    problem: str
    events_checked: int
    head_seq: int


class LogCheckReport(BaseModel):
    """The outcome of `verify_log` over one log (`stream`: "visit" or "plan").

    `streams` counts every stream in the log or the read model; each is `intact` or in
    `bad`. `without_events` lists the read model's streams that have no event at all (also
    in `bad`: their whole log was deleted); `without_anchor` the streams with events but no
    read-model row (counted intact when their chain is, but their tails are unchecked).
    `expected_events` is the read model's sum of last seqs, the total progress runs to.
    """

    stream: str = "visit"
    streams: int
    events: int
    intact: int
    bad: list[BadStream]
    without_events: list[str]
    without_anchor: list[str]
    expected_events: int
    elapsed_seconds: float
    workers: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def events_per_second(self) -> float:
        return self.events / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when every stream is intact and anchored."""
        return not self.bad and not self.without_anchor


LOGS: dict[str, Tables] = {VISIT_LOG.word: VISIT_LOG, PLAN_LOG.word: PLAN_LOG}
"""Every log the check covers, by its stream's word (worker processes are told the word)."""


def check_stream(
    stream_id: str,
    rows: Iterable[Mapping[str, Any]],
    anchor: tuple[int, str] | None,
    tables: Tables = VISIT_LOG,
) -> BadStream | None:
    """Verify one stream's stored rows (in seq order) against its anchor and fold its events.

    Returns the first problem (the lowest seq; a chain problem before a fold problem at
    the same seq), or None when the log is intact and folds.
    """
    verifier = ChainVerifier(stream_id, stream_field=tables.key)
    state: Any = None
    unreadable: BadStream | None = None
    for row in rows:
        # Only rows whose chain is intact are folded: after a break, folding says nothing.
        if verifier.add(row) and unreadable is None:
            problem = _fold_one(tables, stream_id, row, state)
            if isinstance(problem, str):
                unreadable = _unreadable(tables, stream_id, int(row["seq"]), problem)
            else:
                state = problem
    chain = verifier.finish(anchor)
    if not chain.ok and chain.first_bad_seq is not None and chain.kind is not None:
        if unreadable is None or chain.first_bad_seq <= unreadable.first_bad_seq:
            return BadStream(
                stream=tables.word,
                stream_id=stream_id,
                first_bad_seq=chain.first_bad_seq,
                kind=chain.kind,
                problem=chain.problem or "",
                events_checked=chain.events_checked,
                head_seq=chain.head_seq,
            )
    return unreadable


def _fold_one(tables: Tables, stream_id: str, row: Mapping[str, Any], state: Any) -> Any:
    """The state after the row's event, or the sentence saying why it cannot be had."""
    where = f"Event {row['seq']} of {tables.word} {stream_id} ({row['type']})"
    try:
        recorded = tables.recorded_from_row(row)
    except UnreadableEvent as exc:
        return exc.message
    except (ValueError, TypeError, KeyError) as exc:
        # A payload of the wrong shape (not an object) or an upcaster that cannot read it.
        return f"{where} cannot be read as a current event: {exc}."
    try:
        return tables.stream.evolve(state, recorded)
    except ValueError as exc:
        return f"{where} does not follow from those before: {exc}."


def _unreadable(tables: Tables, stream_id: str, seq: int, problem: str) -> BadStream:
    return BadStream(
        stream=tables.word,
        stream_id=stream_id,
        first_bad_seq=seq,
        kind=FoldProblem.unreadable,
        problem=problem,
        events_checked=seq,
        head_seq=seq - 1,
    )


@dataclass
class _RangeResult:
    """What one range of visit ids held: picklable, to come back from a worker process."""

    events: int = 0
    streams: int = 0
    intact: int = 0
    bad: list[BadStream] = field(default_factory=list)
    without_events: list[str] = field(default_factory=list)
    without_anchor: list[str] = field(default_factory=list)

    def add(self, tables: Tables, stream_id: str, rows: list[Any], anchor: tuple[int, str] | None) -> None:
        self.streams += 1
        self.events += len(rows)
        if anchor is None:
            self.without_anchor.append(stream_id)
        elif not rows:
            self.without_events.append(stream_id)
        finding = check_stream(stream_id, rows, anchor, tables)
        if finding is None:
            self.intact += 1
        else:
            self.bad.append(finding)


async def _check_range(
    conn: Connection, ids: IdRange, tables: Tables, tick: Callable[[int], None] | None = None
) -> _RangeResult:
    """Check every stream of the range; run inside `snapshot`."""
    result = _RangeResult()
    heads = await anchors(conn, ids, tables=tables)
    async for stream_id, rows in stream_logs(conn, ids, tables=tables):
        result.add(tables, stream_id, rows, heads.pop(stream_id, None))
        if tick is not None:
            tick(len(rows))
    # Left over: streams the read model knows but the log has no row of.
    for stream_id in sorted(heads):
        result.add(tables, stream_id, [], heads[stream_id])
    return result


def _check_range_in_worker(
    dsn: str, shared: str, after: str | None, upto: str | None, log: str
) -> _RangeResult:
    """A worker process's unit of work: one range, on its own connection, in the shared snapshot."""

    async def run() -> _RangeResult:
        async with translated():
            conn = await connect(dsn)
            try:
                async with snapshot(conn, shared=shared):
                    return await _check_range(conn, IdRange(after, upto), LOGS[log])
            finally:
                await conn.close()

    return asyncio.run(run())


def default_workers(expected: int) -> int:
    """Worker processes for a log of `expected` events: none when small, else one per core."""
    if expected < PARALLEL_MIN_EVENTS:
        return 0
    return max(1, min(os.cpu_count() or 1, 8))


class _Tally:
    """Events done so far, reported to `progress` in steps rather than per visit."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        self._reported = 0

    def add(self, events: int) -> None:
        self.done += events
        if self.progress is not None and self.done - self._reported >= _PROGRESS_STEP:
            self._reported = self.done
            self.progress(self.done, max(self.total, self.done))

    def finish(self) -> None:
        if self.progress is not None:
            # The total becomes what was actually read, so the bar ends full either way.
            self.progress(self.done, self.done)


async def verify_log(
    pool: asyncpg.Pool,
    *,
    progress: Progress | None = None,
    database_url: str | None = None,
    workers: int | None = None,
    events_per_range: int = EVENTS_PER_RANGE,
    tables: Tables = VISIT_LOG,
) -> LogCheckReport:
    """Verify and fold every stream's log of one log (the visits' unless `tables` names
    another: `PLAN_LOG`); see the module docstring for what that proves.

    `progress(done, total)` is called as events are checked: first with 0, last with
    done == total. The total is read up front from the read model (the sum of the visits'
    last seqs, one pass over `visits`, not over the log); the last call replaces it with
    the events actually read, which differ when rows were deleted or inserted.

    With `database_url` (the pool's database), `workers` processes (default:
    `default_workers`) check ranges of visits in parallel; the program must then guard
    its entry point (``if __name__ == "__main__"``), as multiprocessing's spawn requires.
    Without it, or with `workers=0`, this process checks the ranges one after another.
    Raises `StoreError` (`activities.errors`) when PostgreSQL fails.
    """
    if workers and database_url is None:
        raise ValueError("worker processes need the database_url to connect with")
    started = time.perf_counter()
    async with translated(), pool.acquire() as conn:
        async with snapshot(conn, share=database_url is not None and workers != 0) as shared:
            total = await expected_events(conn, tables=tables)
            count = workers if workers is not None else default_workers(total)
            tally = _Tally(progress, total)
            if progress is not None:
                progress(0, total)
            ranges = await id_ranges(conn, events_per_range=events_per_range, tables=tables)
            if count and database_url is not None and shared is not None:
                results = await _in_workers(database_url, shared, ranges, count, tally, tables.word)
            else:
                count = 0
                results = [await _check_range(conn, ids, tables, tally.add) for ids in ranges]
            tally.finish()
    return LogCheckReport(
        stream=tables.word,
        streams=sum(r.streams for r in results),
        events=sum(r.events for r in results),
        intact=sum(r.intact for r in results),
        bad=[b for r in results for b in r.bad],
        without_events=[v for r in results for v in r.without_events],
        without_anchor=[v for r in results for v in r.without_anchor],
        expected_events=total,
        elapsed_seconds=time.perf_counter() - started,
        workers=count,
    )


async def _in_workers(
    dsn: str, shared: str, ranges: list[IdRange], count: int, tally: _Tally, log: str
) -> list[_RangeResult]:
    loop = asyncio.get_running_loop()
    # spawn, not fork: this process runs an event loop and holds connections a fork would copy.
    executor = ProcessPoolExecutor(max_workers=min(count, len(ranges)), mp_context=get_context("spawn"))
    futures = [
        loop.run_in_executor(executor, _check_range_in_worker, dsn, shared, ids.after, ids.upto, log)
        for ids in ranges
    ]
    try:
        for done in asyncio.as_completed(futures):
            tally.add((await done).events)
        return [f.result() for f in futures]
    finally:
        for f in futures:
            f.cancel()
        # Collect the others' failures too, so none is left unretrieved.
        await asyncio.gather(*futures, return_exceptions=True)
        executor.shutdown(wait=True, cancel_futures=True)
