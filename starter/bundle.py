"""Audit bundles: a visit log exported as JSON Lines with a manifest, checkable offline.

A bundle is a directory of two files:

- ``events.jsonl``: one stored row per line, exactly as the log holds it (the hashed
  fields, ``recorded_at``, ``prev_hash`` and ``hash``), in visit then seq order, each line
  in canonical JSON (`domain.chain.canonical_json`, instants as `instant_text`);
- ``manifest.json``: what was selected, the counts, the time range, each visit's chain
  head (last seq and hash), the SHA-256 of ``events.jsonl``, and ``bundle_hash``: the
  SHA-256 of the manifest's canonical JSON without ``bundle_hash`` itself. It covers the
  events file through ``events_sha256``, so one hash names the whole bundle. Write it
  down (or send it apart from the bundle): a bundle rewritten end to end verifies on its
  own, but no longer has that hash.

Every visit's log starts at its first event, so each chain is checked from its genesis;
a date range selects the visits with an event in the period, each as its log stood at
the period's end. `verify_bundle` needs nothing but the files and this project: no
database, no Temporal.
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
from activities.store import EVENT_COLUMNS, EventStore, recorded_from_row
from domain.chain import canonical_json, instant_text
from domain.state import VisitState, evolve
from domain.verify import ChainReport, verify_chain

BUNDLE_FORMAT = "visitflow-audit-bundle"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
EVENTS_FILE = "events.jsonl"
HASH_ALGORITHM = (
    "sha256(prev_hash + '\\n' + canonical_json(content)); content and canonical JSON as in "
    "visitflow's domain/chain.py; the first event of a visit chains from 64 zeros"
)
_INSTANT_COLUMNS = ("occurred_at", "recorded_at")
_VISITS_PER_READ = 500


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

    def describe(self) -> str:
        parts = []
        if self.visit_ids:
            parts.append("visits " + ", ".join(self.visit_ids))
        if self.id_from or self.id_to:
            parts.append(f"visit ids {self.id_from or '…'} to {self.id_to or '…'}")
        if self.occurred_from or self.occurred_to:
            start = instant_text(self.occurred_from) if self.occurred_from else "the start"
            end = instant_text(self.occurred_to) if self.occurred_to else "now"
            parts.append(f"events from {start} until {end}")
        return "; ".join(parts) or "the whole log"


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
    bundle_hash: str = ""

    def computed_hash(self) -> str:
        body = self.model_dump(mode="json", exclude={"bundle_hash"})
        return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class VisitCheck(BaseModel):
    """The offline verdict on one visit of a bundle."""

    visit_id: str
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
    visits: list[VisitCheck]


def row_line(row: Mapping[str, Any]) -> str:
    """A stored row as one canonical JSON line (no newline)."""
    body = {name: row[name] for name in EVENT_COLUMNS}
    for name in _INSTANT_COLUMNS:
        body[name] = instant_text(body[name])
    body["event_id"] = str(body["event_id"])
    return canonical_json(body)


def _parse_line(text: str) -> dict[str, Any]:
    row = json.loads(text)
    if not isinstance(row, dict) or set(row) != set(EVENT_COLUMNS):
        raise ValueError(f"a row has the fields {', '.join(EVENT_COLUMNS)}")
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
        self.events = (self.partial / EVENTS_FILE).open("wb")
        self.digest = hashlib.sha256()

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            data = (row_line(row) + "\n").encode("utf-8")
            self.digest.update(data)
            self.events.write(data)

    def commit(self, manifest: Manifest) -> None:
        self.events.close()
        (self.partial / MANIFEST_FILE).write_text(
            json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n",
            encoding="utf-8",
        )
        os.replace(self.partial, self.directory)

    def abort(self) -> None:
        self.events.close()
        shutil.rmtree(self.partial, ignore_errors=True)


async def export_bundle(
    store: EventStore, directory: Path, selection: Selection, *, now: datetime | None = None
) -> Manifest:
    """Write the selected part of the log to `directory` (which must not exist yet).

    The bundle is written beside it and renamed into place when complete, so a failed
    export leaves nothing behind. Raises `BundleError` when the directory exists or no
    event matches.
    """
    ids = await store.select_visits(
        visit_ids=selection.visit_ids,
        id_from=selection.id_from,
        id_to=selection.id_to,
        occurred_from=selection.occurred_from,
        occurred_to=selection.occurred_to,
    )
    if not ids:
        raise BundleError(f"No logged event matches {selection.describe()}; nothing was written.")
    writer = _Writer(directory)
    try:
        heads: list[VisitHead] = []
        for start in range(0, len(ids), _VISITS_PER_READ):
            batch = ids[start : start + _VISITS_PER_READ]
            # Rows first, then heads: the engine moves a head in the transaction that appends,
            # so a head read afterwards is never behind the rows read (unless rows were
            # written outside the engine, which is what the check looks for).
            rows = await store.raw_rows_of(batch, before=selection.occurred_to)
            anchors = await store.heads(batch)
            for visit_id, group in groupby(rows, key=lambda r: r["visit_id"]):
                visit_rows = list(group)
                writer.write_rows(visit_rows)
                heads.append(_head(visit_id, visit_rows, anchors.get(visit_id)))
        manifest = _manifest(selection, heads, writer.digest.hexdigest(), now or datetime.now(UTC))
        writer.commit(manifest)
    except BaseException:
        writer.abort()
        raise
    return manifest


def _head(visit_id: str, rows: list[dict[str, Any]], anchor: tuple[int, str] | None) -> VisitHead:
    last = rows[-1]
    # The read model's head anchors the tail only when the whole log up to it was selected.
    check_anchor = anchor if anchor is not None and anchor[0] <= last["seq"] else None
    report = verify_chain(rows, anchor=check_anchor, visit_id=visit_id)
    return VisitHead(
        visit_id=visit_id,
        events=len(rows),
        last_seq=last["seq"],
        head_hash=last["hash"],
        first_occurred_at=instant_text(rows[0]["occurred_at"]),
        last_occurred_at=instant_text(last["occurred_at"]),
        log_last_seq=anchor[0] if anchor is not None else None,
        chain_ok_at_export=report.ok,
    )


def _manifest(selection: Selection, heads: list[VisitHead], events_sha256: str, now: datetime) -> Manifest:
    manifest = Manifest(
        exported_at=instant_text(now),
        selection=selection,
        events_sha256=events_sha256,
        visit_count=len(heads),
        event_count=sum(h.events for h in heads),
        first_occurred_at=min((h.first_occurred_at for h in heads), default=None),
        last_occurred_at=max((h.last_occurred_at for h in heads), default=None),
        visits=heads,
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
    if manifest.format != BUNDLE_FORMAT or manifest.format_version != FORMAT_VERSION:
        raise BundleError(
            f"{directory} is a {manifest.format} version {manifest.format_version} bundle; this "
            f"visitflow reads {BUNDLE_FORMAT} version {FORMAT_VERSION}."
        )
    computed = manifest.computed_hash()
    if computed != manifest.bundle_hash:
        problems.append("The manifest was changed after export: its bundle_hash does not match its content.")
    if expect_hash is not None and expect_hash.strip().lower() != manifest.bundle_hash:
        problems.append(
            f"This is not the bundle expected: its hash is {manifest.bundle_hash}, not {expect_hash.strip()}."
        )

    digest = hashlib.sha256()
    checks: list[VisitCheck] = []
    events = 0
    heads = {h.visit_id: h for h in manifest.visits}
    try:
        lines = _lines(directory / manifest.events_file, digest, problems)
        for visit_id, group in groupby(lines, key=lambda r: r["visit_id"]):
            rows = list(group)
            events += len(rows)
            checks.append(_check_visit(visit_id, rows, heads.get(visit_id)))
    except FileNotFoundError:
        raise BundleError(f"The bundle {directory} has no {manifest.events_file}.") from None
    if digest.hexdigest() != manifest.events_sha256:
        problems.append(f"{manifest.events_file} was changed after export: its SHA-256 does not match.")
    problems += _manifest_problems(manifest, checks, events)
    for check in checks:
        if not check.chain.ok and check.chain.problem:
            problems.append(check.chain.problem)
        if check.fold_problem:
            problems.append(check.fold_problem)
    return BundleReport(
        ok=not problems,
        bundle_hash=manifest.bundle_hash,
        problems=problems,
        visit_count=len(checks),
        event_count=events,
        visits=checks,
    )


def _lines(path: Path, digest: Any, problems: list[str]) -> Iterator[dict[str, Any]]:
    with path.open("rb") as source:
        for number, data in enumerate(source, start=1):
            digest.update(data)
            try:
                yield _parse_line(data.decode("utf-8"))
            except (ValueError, TypeError, KeyError) as err:
                problems.append(f"Line {number} of {path.name} is not a logged event: {err}.")


def _check_visit(visit_id: str, rows: list[dict[str, Any]], head: VisitHead | None) -> VisitCheck:
    anchor = (head.last_seq, head.head_hash) if head is not None else None
    chain = verify_chain(rows, anchor=anchor, visit_id=visit_id)
    export_head = head.log_last_seq if head is not None else None
    if chain.ok and export_head is not None and 0 < export_head < chain.head_seq:
        # The log went on after the read model's head at export: rows appended outside the
        # engine. The manifest keeps that head's seq only; the intact chain vouches for its hash.
        chain = verify_chain(rows, anchor=(export_head, rows[export_head - 1]["hash"]), visit_id=visit_id)
    fold_problem = None
    state: VisitState | None = None
    if chain.ok:
        try:
            for row in rows:
                state = evolve(state, recorded_from_row(row))
        except (UnreadableEvent, ValueError) as err:
            fold_problem = f"Visit {visit_id} does not replay: {err}"
    return VisitCheck(
        visit_id=visit_id,
        ok=chain.ok and fold_problem is None,
        chain=chain,
        fold_problem=fold_problem,
        status=state.status.value if state is not None else None,
    )


def _manifest_problems(manifest: Manifest, checks: list[VisitCheck], events: int) -> list[str]:
    problems = []
    listed = [h.visit_id for h in manifest.visits]
    found = [c.visit_id for c in checks]
    if found != sorted(set(found)):
        problems.append("The events are not in visit order: rows were moved within the bundle.")
    for missing in sorted(set(listed) - set(found)):
        problems.append(f"Visit {missing} is in the manifest but none of its events is in the bundle.")
    for extra in sorted(set(found) - set(listed)):
        problems.append(f"Visit {extra} has events in the bundle but is not in the manifest.")
    if (manifest.visit_count, manifest.event_count) != (len(listed), sum(h.events for h in manifest.visits)):
        problems.append("The manifest's counts do not add up to its list of visits.")
    if events != manifest.event_count:
        problems.append(f"The bundle holds {events} events; its manifest says {manifest.event_count}.")
    return problems
