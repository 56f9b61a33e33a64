"""Chain verification: is a visit's stored log complete and untampered, and where does it break?

`verify_chain` (or `ChainVerifier`, row by row) reads the rows exactly as stored (the
`visit_events` columns, in seq order, never upcast) and recomputes every hash with
`domain.chain`. It stops at the first row that is wrong and names it:

- ``missing``: a seq is skipped (a row was deleted);
- ``inserted_or_reordered``: a seq repeats or goes backwards, a row belongs to another
  visit, a row carries an earlier row's hash (a copy), or a row links to an earlier row
  than its predecessor (rows were slipped in);
- ``link_broken``: a row's `prev_hash` is not its predecessor's hash (the predecessor was
  changed and re-hashed, or the row was renumbered into a gap);
- ``content_changed``: a row's hash does not match its own content;
- ``tail_mismatch``: the log is intact on its own but disagrees with an anchor, the last
  seq and head hash known from elsewhere (the read model's `visits.last_seq`/`head_hash`
  or the workflow's state): the newest events were deleted, the tail was rewritten, or
  the log goes on after the anchor (rows appended outside the engine, which moves the
  anchor in the transaction that appends).

Without an anchor, deleting the newest rows or appending well-chained ones cannot be seen:
a shorter or longer chain is still a valid chain. Pure: no I/O.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from domain.chain import HASHED_FIELDS, link_hash, stream_content
from domain.events import GENESIS_HASH
from domain.models import Frozen


class ChainProblem(StrEnum):
    """What is wrong at the first bad row."""

    content_changed = "content_changed"
    link_broken = "link_broken"
    missing = "missing"
    inserted_or_reordered = "inserted_or_reordered"
    tail_mismatch = "tail_mismatch"


class ChainReport(Frozen):
    """The outcome of verifying one stream's log (`stream` "visit" or "plan", `stream_id` its id).

    `head_seq`/`head_hash` are those of the last row verified intact (the whole log when
    `ok`; the anchor when the log goes on after it); `events_checked` counts the rows
    examined, the first bad one included.
    """

    stream_id: str
    stream: str = "visit"
    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    kind: ChainProblem | None = None


def stored_content(row: Mapping[str, Any], stream_field: str = "visit_id") -> dict[str, Any]:
    """The hashed content of a row as stored, its stream named by `stream_field`."""
    fields = {name: row[name] for name in HASHED_FIELDS[1:]}
    # The log stores event ids as uuid; the chain hashes their canonical text.
    fields["event_id"] = str(fields["event_id"])
    return stream_content(stream_field, row[stream_field], **fields)


class ChainVerifier:
    """Verifies one visit's stored rows as they arrive, in the order read; the streaming form
    of `verify_chain`, with the same findings and sentences.

    `add` each row, then `finish` with the anchor. Once a row is bad the rest are only
    looked at to tell a deleted row from a misplaced one (a skipped seq that turns up later).
    """

    __slots__ = (
        "_bad",
        "_checked",
        "_expected",
        "_field",
        "_gap",
        "_head_seq",
        "_name",
        "_prev",
        "_seen",
        "_stream",
        "_word",
    )

    def __init__(self, stream_id: str | None = None, *, stream_field: str = "visit_id") -> None:
        self._name = stream_id
        self._field = stream_field
        self._stream = stream_field.removesuffix("_id")  # "visit", "plan": in every sentence
        self._word = self._stream.capitalize()
        self._expected = 1
        self._prev = GENESIS_HASH
        self._head_seq = 0
        self._checked = 0
        self._seen: dict[str, int] = {GENESIS_HASH: 0}  # hash -> seq of the intact rows so far
        self._bad: ChainReport | None = None
        # A skipped seq: (the seq, the report if it never turns up, the report if it does).
        self._gap: tuple[int, ChainReport, ChainReport] | None = None

    @property
    def head_seq(self) -> int:
        """The seq of the last row verified intact (0 before any)."""
        return self._head_seq

    @property
    def intact(self) -> bool:
        """True while every row added so far is intact."""
        return self._bad is None and self._gap is None

    def _report(self, seq: int, kind: ChainProblem, problem: str) -> ChainReport:
        return ChainReport(
            stream_id=self._name or "",
            stream=self._stream,
            ok=False,
            events_checked=self._checked,
            head_seq=self._head_seq,
            head_hash=self._prev,
            first_bad_seq=seq,
            problem=problem,
            kind=kind,
        )

    def add(self, row: Mapping[str, Any]) -> bool:
        """Check the next row; True when it is intact and so is every row before it."""
        if self._bad is not None:
            return False
        seq = int(row["seq"])
        if self._gap is not None:
            missing, _, misplaced = self._gap
            if seq == missing:
                self._bad = misplaced
            return False
        self._checked += 1
        expected = self._expected
        if self._name is None:
            self._name = row[self._field]
        name, word, stream = self._name, self._word, self._stream
        if row[self._field] != name:
            self._bad = self._report(
                seq,
                ChainProblem.inserted_or_reordered,
                f"{word} {name}, event {seq} belongs to {stream} {row[self._field]}: a row of another "
                f"{stream} was inserted.",
            )
            return False
        if seq < expected:
            what = "repeats" if seq == expected - 1 else f"comes after event {expected - 1}"
            self._bad = self._report(
                seq,
                ChainProblem.inserted_or_reordered,
                f"{word} {name}, event {seq} {what}: rows were inserted or reordered.",
            )
            return False
        if seq > expected:
            gap = str(expected) if seq == expected + 1 else f"{expected} to {seq - 1}"
            deleted = self._report(
                expected,
                ChainProblem.missing,
                f"{word} {name}: event {gap} is missing (the log jumps from {expected - 1} to "
                f"{seq}): rows were deleted.",
            )
            misplaced = self._report(
                expected,
                ChainProblem.inserted_or_reordered,
                f"{word} {name}: event {expected} comes after event {seq}: rows are out of order.",
            )
            self._gap = (expected, deleted, misplaced)
            return False
        stored_prev = str(row["prev_hash"])
        if stored_prev != self._prev:
            copied = self._seen.get(str(row["hash"]))
            earlier = self._seen.get(stored_prev)
            if copied is not None:
                # It carries an earlier row's link as its own: a copy slipped in here.
                self._bad = self._report(
                    seq,
                    ChainProblem.inserted_or_reordered,
                    f"{word} {name}, event {seq} carries the hash of event {copied}: a copy of "
                    f"event {copied} was inserted.",
                )
            elif earlier is not None and earlier < seq - 1:
                first = earlier + 1
                self._bad = self._report(
                    first,
                    ChainProblem.inserted_or_reordered,
                    f"{word} {name}, event {seq} links to event {earlier}, so event {first}"
                    f"{'' if first == seq - 1 else f' to {seq - 1}'} was inserted after the fact.",
                )
            else:
                self._bad = self._report(
                    seq,
                    ChainProblem.link_broken,
                    f"{word} {name}, event {seq} does not link to event {seq - 1}: its prev_hash is "
                    f"not the hash of event {seq - 1}, so event {seq - 1} was changed and re-hashed, "
                    "or rows were renumbered.",
                )
            return False
        computed = link_hash(self._prev, stored_content(row, self._field))
        if computed != row["hash"]:
            self._bad = self._report(
                seq,
                ChainProblem.content_changed,
                f"{word} {name}, event {seq} ({row['type']}) was changed: its content no longer "
                "matches its hash.",
            )
            return False
        self._prev = computed
        self._head_seq = seq
        self._seen[computed] = seq
        self._expected = seq + 1
        return True

    def finish(self, anchor: tuple[int, str] | None = None) -> ChainReport:
        """The report on every row added, checked against `anchor` (last seq, head hash) if given."""
        if self._bad is not None:
            return self._bad
        if self._gap is not None:
            return self._gap[1]
        name, word, stream = self._name, self._word, self._stream
        if anchor is not None:
            anchor_seq, anchor_hash = anchor
            head_seq = self._head_seq
            if head_seq < anchor_seq:
                first = head_seq + 1
                gap = str(first) if first == anchor_seq else f"{first} to {anchor_seq}"
                return self._report(
                    first,
                    ChainProblem.tail_mismatch,
                    f"{word} {name}: the log ends at event {head_seq} but the {stream}'s head is event "
                    f"{anchor_seq}: event {gap} was deleted.",
                )
            at_anchor = next((h for h, s in self._seen.items() if s == anchor_seq), None)
            if at_anchor != anchor_hash:
                return self._report(
                    anchor_seq,
                    ChainProblem.tail_mismatch,
                    f"{word} {name}: event {anchor_seq} does not have the {stream}'s recorded head hash: "
                    f"the log was rewritten at or before event {anchor_seq}.",
                )
            if head_seq > anchor_seq:
                # The engine moves the head in the transaction that appends: rows past it,
                # however well chained, were written some other way.
                first = anchor_seq + 1
                extra = str(first) if first == head_seq else f"{first} to {head_seq}"
                return ChainReport(
                    stream_id=name or "",
                    stream=stream,
                    ok=False,
                    events_checked=self._checked,
                    head_seq=anchor_seq,
                    head_hash=anchor_hash,
                    first_bad_seq=first,
                    problem=f"{word} {name}: the log goes on after the {stream}'s recorded head (event "
                    f"{anchor_seq}): event {extra} was appended outside the engine.",
                    kind=ChainProblem.tail_mismatch,
                )
        return ChainReport(
            stream_id=name or "",
            stream=stream,
            ok=True,
            events_checked=self._checked,
            head_seq=self._head_seq,
            head_hash=self._prev,
        )


def verify_chain(
    rows: Iterable[Mapping[str, Any]],
    *,
    anchor: tuple[int, str] | None = None,
    visit_id: str | None = None,
    stream_field: str = "visit_id",
) -> ChainReport:
    """Verify one stream's stored rows, in the order read (ORDER BY seq).

    `anchor` is the expected (last seq, head hash) of the stream; `visit_id` names it when
    there may be no rows at all (otherwise the first row's id is used); `stream_field` is
    the log's id column (`plan_id` for a monthly plan's log).
    """
    verifier = ChainVerifier(visit_id, stream_field=stream_field)
    for row in rows:
        verifier.add(row)
    return verifier.finish(anchor)
