"""Audit bundles: the visits' and the monthly plans' logs exported as JSON Lines, checkable offline.

A bundle is a directory of up to three files:

- ``events.jsonl``: the visits' rows, one stored row per line, exactly as the log holds it
  (the hashed fields, ``recorded_at``, ``prev_hash`` and ``hash``), in visit then seq
  order, each line in canonical JSON (`domain.chain.canonical_json`, instants as
  `instant_text`);
- ``plan_events.jsonl`` (version 2, when plans were selected): the monthly plans' rows
  (`plan_events`, the stream named ``plan_id``), in plan then seq order, written alike;
- ``manifest.json``: what was selected, the counts, the time range, each visit's and
  plan's chain head (last seq and hash), the SHA-256 of each events file, and
  ``bundle_hash``: the SHA-256 of the manifest's canonical JSON without ``bundle_hash``
  itself. It covers the events files through their hashes, so one hash names the whole
  bundle. Write it down (or send it apart from the bundle): a bundle rewritten end to end
  verifies on its own, but no longer has that hash.

Every stream's log starts at its first event, so each chain is checked from its genesis;
a date range selects the streams with an event in the period, each as its log stood at
the period's end. `verify_bundle` needs nothing but the files and this project: no
database, no Temporal. Version 1 bundles (visits only) still verify.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from activities.errors import UnreadableEvent
from activities.event_log import EventLog, LogTables
from activities.plan_store import PLAN_LOG, PlanStore
from activities.store import VISIT_LOG, EventStore
from domain.chain import canonical_json, instant_text
from domain.verify import ChainReport, verify_chain

BUNDLE_FORMAT = "visitflow-audit-bundle"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_FILE = "manifest.json"
EVENTS_FILE = "events.jsonl"
PLAN_EVENTS_FILE = "plan_events.jsonl"
_VERSION_2 = {"plan_events_file", "plan_events_sha256", "plan_count", "plan_event_count", "plans"}
"""Manifest fields version 2 added: left out of a version 1 manifest's hash, as it was written."""
HASH_ALGORITHM = (
    "sha256(prev_hash + '\\n' + canonical_json(content)); content and canonical JSON as in "
    "visitflow's domain/chain.py; the first event of a visit chains from 64 zeros"
)
_INSTANT_COLUMNS = ("occurred_at", "recorded_at")
_VISITS_PER_READ = 500

Tables = LogTables[Any, Any, Any, Any]


class BundleError(Exception):
    """A bundle that cannot be written or read at all (the message says why)."""


class Selection(BaseModel):
    """Which part of the log a bundle holds; every filter given must match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    visit_ids: list[str] = []
    id_from: str | None = None
    id_to: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    plan_ids: list[str] = []

    @property
    def visits(self) -> bool:
        """Whether visits are selected: unless only plans were named."""
        return bool(self.visit_ids or self.id_from or self.id_to or not self.plan_ids)

    @property
    def plans(self) -> bool:
        """Whether plans are selected: those named, or all (in the time range) when no visit was named."""
        return bool(self.plan_ids or not (self.visit_ids or self.id_from or self.id_to))

    def describe(self) -> str:
        parts = []
        if self.visit_ids:
            parts.append("visits " + ", ".join(self.visit_ids))
        if self.plan_ids:
            parts.append("plans " + ", ".join(self.plan_ids))
        if self.id_from or self.id_to:
            parts.append(f"visit ids {self.id_from or '…'} to {self.id_to or '…'}")
        if self.occurred_from or self.occurred_to:
            start = instant_text(self.occurred_from) if self.occurred_from else "the start"
            end = instant_text(self.occurred_to) if self.occurred_to else "now"
            parts.append(f"events from {start} until {end}")
        return "; ".join(parts) or "the whole log (visits and monthly plans)"


class VisitHead(BaseModel):
    """One visit in a bundle: how many events, where its chain ends, and the log's head then."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    visit_id: str
    events: int
    last_seq: int
    head_hash: str
    first_occurred_at: str
    last_occurred_at: str
    log_last_seq: int | None
    """The visit's head in the read model at export (None: no read-model row); a bundle
    whose chain goes on past it holds rows appended outside the engine."""
    chain_ok_at_export: bool


class PlanHead(BaseModel):
    """One monthly plan in a bundle, described as `VisitHead` describes a visit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plan_id: str
    events: int
    last_seq: int
    head_hash: str
    first_occurred_at: str
    last_occurred_at: str
    log_last_seq: int | None
    chain_ok_at_export: bool


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = BUNDLE_FORMAT
    format_version: int = FORMAT_VERSION
    exported_at: str
    selection: Selection
    hash_algorithm: str = HASH_ALGORITHM
    events_file: str = EVENTS_FILE
    events_sha256: str
    visit_count: int
    event_count: int
    first_occurred_at: str | None
    last_occurred_at: str | None
    visits: list[VisitHead]
    plan_events_file: str | None = None
    plan_events_sha256: str | None = None
    plan_count: int = 0
    plan_event_count: int = 0
    plans: list[PlanHead] = []
    bundle_hash: str = ""

    def computed_hash(self) -> str:
        body = self.model_dump(mode="json", exclude={"bundle_hash"})
        if self.format_version == 1:
            for name in _VERSION_2:
                body.pop(name)
            body["selection"].pop("plan_ids")
        return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class StreamCheck(BaseModel):
    """The offline verdict on one stream (a visit, or a plan with `stream` "plan") of a bundle."""

    stream: str = "visit"
    stream_id: str
    ok: bool
    chain: ChainReport
    fold_problem: str | None = None
    status: str | None = None


class BundleReport(BaseModel):
    """The outcome of `verify_bundle`: ok only when every check passed."""

    ok: bool
    bundle_hash: str
    problems: list[str]
    visit_count: int
    event_count: int
    visits: list[StreamCheck]
    plan_count: int = 0
    plan_event_count: int = 0
    plans: list[StreamCheck] = []


def row_line(row: Mapping[str, Any], tables: Tables = VISIT_LOG) -> str:
    """A stored row as one canonical JSON line (no newline)."""
    body = {name: row[name] for name in tables.columns}
    for name in _INSTANT_COLUMNS:
        body[name] = instant_text(body[name])
    body["event_id"] = str(body["event_id"])
    return canonical_json(body)


def _parse_line(text: str, tables: Tables) -> dict[str, Any]:
    row = json.loads(text)
    if not isinstance(row, dict) or set(row) != set(tables.columns):
        raise ValueError(f"a row has the fields {', '.join(tables.columns)}")
    for name in _INSTANT_COLUMNS:
        row[name] = datetime.fromisoformat(row[name])
    return row


# --- export -------------------------------------------------------------------------------


class _Writer:
    """Writes a bundle beside its final directory and renames it into place when complete."""

    def __init__(self, directory: Path) -> None:
        if directory.exists():
            raise BundleError(f"{directory} already exists; choose a new directory for the bundle.")
        self.directory = directory
        self.partial = directory.with_name(f".{directory.name}.partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        self.files: dict[str, tuple[Any, Any]] = {}  # file name -> (open file, its digest)

    def write_rows(self, name: str, tables: Tables, rows: list[dict[str, Any]]) -> None:
        if name not in self.files:
            self.files[name] = ((self.partial / name).open("wb"), hashlib.sha256())
        out, digest = self.files[name]
        for row in rows:
            data = (row_line(row, tables) + "\n").encode("utf-8")
            digest.update(data)
            out.write(data)

    def digest(self, name: str) -> str:
        if name not in self.files:
            # The visits' file is always there, even empty: version 1 readers expect it.
            self.write_rows(name, VISIT_LOG, [])
        return str(self.files[name][1].hexdigest())

    def _close(self) -> None:
        for out, _ in self.files.values():
            out.close()

    def commit(self, manifest: Manifest) -> None:
        self._close()
        (self.partial / MANIFEST_FILE).write_text(
            json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )
        os.replace(self.partial, self.directory)

    def abort(self) -> None:
        self._close()
        shutil.rmtree(self.partial, ignore_errors=True)


async def export_bundle(
    store: EventStore,
    directory: Path,
    selection: Selection,
    *,
    now: datetime | None = None,
    plans: PlanStore | None = None,
) -> Manifest:
    """Write the selected part of the logs to `directory` (which must not exist yet).

    The bundle is written beside it and renamed into place when complete, so a failed
    export leaves nothing behind. Raises `BundleError` when the directory exists or no
    event matches.
    """
    plan_log = (plans or PlanStore(store.pool)).log
    visit_ids = await _select(store.log, selection, selection.visit_ids) if selection.visits else []
    plan_ids = await _select(plan_log, selection, selection.plan_ids) if selection.plans else []
    if not visit_ids and not plan_ids:
        raise BundleError(f"No logged event matches {selection.describe()}; nothing was written.")
    writer = _Writer(directory)
    try:
        visit_heads = await _export(store.log, visit_ids, selection, writer, EVENTS_FILE)
        plan_heads = await _export(plan_log, plan_ids, selection, writer, PLAN_EVENTS_FILE)
        manifest = _manifest(selection, visit_heads, plan_heads, writer, now or datetime.now(UTC))
        writer.commit(manifest)
    except BaseException:
        writer.abort()
        raise
    return manifest


async def _select(log: EventLog[Any, Any, Any, Any], selection: Selection, ids: list[str]) -> list[str]:
    by_range = log.word == VISIT_LOG.word  # the id range names visits
    return await log.select(
        ids=ids,
        id_from=selection.id_from if by_range else None,
        id_to=selection.id_to if by_range else None,
        occurred_from=selection.occurred_from,
        occurred_to=selection.occurred_to,
    )


async def _export(
    log: EventLog[Any, Any, Any, Any], ids: list[str], selection: Selection, writer: _Writer, name: str
) -> list[dict[str, Any]]:
    """Write the streams' rows to `name` in the bundle; their heads, as manifest entries."""
    heads: list[dict[str, Any]] = []
    key = log.tables.key
    for start in range(0, len(ids), _VISITS_PER_READ):
        batch = ids[start : start + _VISITS_PER_READ]
        # Rows first, then heads: the engine moves a head in the transaction that appends,
        # so a head read afterwards is never behind the rows read (unless rows were
        # written outside the engine, which is what the check looks for).
        rows = await log.raw_rows_of(batch, before=selection.occurred_to)
        anchors = await log.heads(batch)
        for stream_id, group in groupby(rows, key=lambda r: r[key]):
            stream_rows = list(group)
            writer.write_rows(name, log.tables, stream_rows)
            heads.append(_head(log.tables, stream_id, stream_rows, anchors.get(stream_id)))
    return heads


def _head(
    tables: Tables, stream_id: str, rows: list[dict[str, Any]], anchor: tuple[int, str] | None
) -> dict[str, Any]:
    last = rows[-1]
    # The read model's head anchors the tail only when the whole log up to it was selected.
    check_anchor = anchor if anchor is not None and anchor[0] <= last["seq"] else None
    report = verify_chain(rows, anchor=check_anchor, visit_id=stream_id, stream_field=tables.key)
    return {
        tables.key: stream_id,
        "events": len(rows),
        "last_seq": last["seq"],
        "head_hash": last["hash"],
        "first_occurred_at": instant_text(rows[0]["occurred_at"]),
        "last_occurred_at": instant_text(last["occurred_at"]),
        "log_last_seq": anchor[0] if anchor is not None else None,
        "chain_ok_at_export": report.ok,
    }


def _manifest(
    selection: Selection,
    visit_heads: list[dict[str, Any]],
    plan_heads: list[dict[str, Any]],
    writer: _Writer,
    now: datetime,
) -> Manifest:
    heads = [*visit_heads, *plan_heads]
    manifest = Manifest(
        exported_at=instant_text(now),
        selection=selection,
        events_sha256=writer.digest(EVENTS_FILE),
        visit_count=len(visit_heads),
        event_count=sum(h["events"] for h in visit_heads),
        first_occurred_at=min((h["first_occurred_at"] for h in heads), default=None),
        last_occurred_at=max((h["last_occurred_at"] for h in heads), default=None),
        visits=[VisitHead.model_validate(h) for h in visit_heads],
        plan_events_file=PLAN_EVENTS_FILE if plan_heads else None,
        plan_events_sha256=writer.digest(PLAN_EVENTS_FILE) if plan_heads else None,
        plan_count=len(plan_heads),
        plan_event_count=sum(h["events"] for h in plan_heads),
        plans=[PlanHead.model_validate(h) for h in plan_heads],
    )
    return manifest.model_copy(update={"bundle_hash": manifest.computed_hash()})


# --- offline verification -----------------------------------------------------------------


def read_manifest(directory: Path) -> Manifest:
    """The bundle's manifest, or `BundleError` saying why it cannot be read."""
    path = directory / MANIFEST_FILE
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"{directory} is not an audit bundle: it has no {MANIFEST_FILE}.") from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise BundleError(f"The manifest of {directory} is not readable: {where}: {first['msg']}.") from None


def verify_bundle(directory: Path, *, expect_hash: str | None = None) -> BundleReport:
    """Check a bundle with nothing but its files: every chain (against the manifest's head and
    the read model's head at export), every fold, the manifest.

    `expect_hash` is the bundle hash noted at export; without it, a bundle rewritten end
    to end (events, heads and hashes recomputed) cannot be told from the original.
    """
    manifest = read_manifest(directory)
    problems: list[str] = []
    if manifest.format != BUNDLE_FORMAT or manifest.format_version not in READABLE_VERSIONS:
        raise BundleError(
            f"{directory} is a {manifest.format} version {manifest.format_version} bundle; this "
            f"visitflow reads {BUNDLE_FORMAT} versions {', '.join(map(str, READABLE_VERSIONS))}."
        )
    computed = manifest.computed_hash()
    if computed != manifest.bundle_hash:
        problems.append("The manifest was changed after export: its bundle_hash does not match its content.")
    if expect_hash is not None and expect_hash.strip().lower() != manifest.bundle_hash:
        problems.append(
            f"This is not the bundle expected: its hash is {manifest.bundle_hash}, not {expect_hash.strip()}."
        )
    visits, visit_events = _verify_file(
        directory, manifest.events_file, manifest.events_sha256, VISIT_LOG, manifest.visits, problems
    )
    problems += _manifest_problems(
        VISIT_LOG, manifest.visits, visits, (manifest.visit_count, manifest.event_count), visit_events
    )
    plans: list[StreamCheck] = []
    plan_events = 0
    if manifest.plan_events_file is not None:
        plans, plan_events = _verify_file(
            directory,
            manifest.plan_events_file,
            manifest.plan_events_sha256 or "",
            PLAN_LOG,
            manifest.plans,
            problems,
        )
    problems += _manifest_problems(
        PLAN_LOG, manifest.plans, plans, (manifest.plan_count, manifest.plan_event_count), plan_events
    )
    for check in [*visits, *plans]:
        if not check.chain.ok and check.chain.problem:
            problems.append(check.chain.problem)
        if check.fold_problem:
            problems.append(check.fold_problem)
    return BundleReport(
        ok=not problems,
        bundle_hash=manifest.bundle_hash,
        problems=problems,
        visit_count=len(visits),
        event_count=visit_events,
        visits=visits,
        plan_count=len(plans),
        plan_event_count=plan_events,
        plans=plans,
    )


def _verify_file(
    directory: Path,
    name: str,
    sha256: str,
    tables: Tables,
    heads: list[VisitHead] | list[PlanHead],
    problems: list[str],
) -> tuple[list[StreamCheck], int]:
    """Check every stream of one events file; its checks and how many rows it held."""
    digest = hashlib.sha256()
    by_id = {getattr(h, tables.key): h for h in heads}
    checks: list[StreamCheck] = []
    events = 0
    try:
        lines = _lines(directory / name, tables, digest, problems)
        for stream_id, group in groupby(lines, key=lambda r: r[tables.key]):
            rows = list(group)
            events += len(rows)
            checks.append(_check_stream(tables, stream_id, rows, by_id.get(stream_id)))
    except FileNotFoundError:
        raise BundleError(f"The bundle {directory} has no {name}.") from None
    if digest.hexdigest() != sha256:
        problems.append(f"{name} was changed after export: its SHA-256 does not match.")
    return checks, events


def _lines(path: Path, tables: Tables, digest: Any, problems: list[str]) -> Iterator[dict[str, Any]]:
    with path.open("rb") as source:
        for number, data in enumerate(source, start=1):
            digest.update(data)
            try:
                yield _parse_line(data.decode("utf-8"), tables)
            except (ValueError, TypeError, KeyError) as err:
                problems.append(f"Line {number} of {path.name} is not a logged event: {err}.")


def _check_stream(
    tables: Tables, stream_id: str, rows: list[dict[str, Any]], head: VisitHead | PlanHead | None
) -> StreamCheck:
    key = tables.key
    anchor = (head.last_seq, head.head_hash) if head is not None else None
    chain = verify_chain(rows, anchor=anchor, visit_id=stream_id, stream_field=key)
    export_head = head.log_last_seq if head is not None else None
    if chain.ok and export_head is not None and 0 < export_head < chain.head_seq:
        # The log went on after the read model's head at export: rows appended outside the
        # engine. The manifest keeps that head's seq only; the intact chain vouches for its hash.
        export_anchor = (export_head, rows[export_head - 1]["hash"])
        chain = verify_chain(rows, anchor=export_anchor, visit_id=stream_id, stream_field=key)
    fold_problem = None
    state: Any = None
    if chain.ok:
        try:
            for row in rows:
                state = tables.stream.evolve(state, tables.recorded_from_row(row))
        except (UnreadableEvent, ValueError) as err:
            fold_problem = f"{tables.word.capitalize()} {stream_id} does not replay: {err}"
    return StreamCheck(
        stream_id=stream_id,
        stream=tables.word,
        ok=chain.ok and fold_problem is None,
        chain=chain,
        fold_problem=fold_problem,
        status=state.status.value if state is not None else None,
    )


def _manifest_problems(
    tables: Tables,
    heads: list[VisitHead] | list[PlanHead],
    checks: list[StreamCheck],
    counts: tuple[int, int],
    events: int,
) -> list[str]:
    word, plural = tables.word.capitalize(), f"{tables.word}s"
    problems = []
    listed = [getattr(h, tables.key) for h in heads]
    found = [c.stream_id for c in checks]
    if found != sorted(set(found)):
        problems.append(f"The events are not in {tables.word} order: rows were moved within the bundle.")
    for missing in sorted(set(listed) - set(found)):
        problems.append(f"{word} {missing} is in the manifest but none of its events is in the bundle.")
    for extra in sorted(set(found) - set(listed)):
        problems.append(f"{word} {extra} has events in the bundle but is not in the manifest.")
    if counts != (len(listed), sum(h.events for h in heads)):
        problems.append(f"The manifest's counts do not add up to its list of {plural}.")
    if events != counts[1]:
        problems.append(f"The bundle holds {events} {tables.word} events; its manifest says {counts[1]}.")
    return problems
