"""Chain verification: is a visit's stored log complete and untampered, and where does it break?

`verify_chain` reads the rows exactly as stored (the `visit_events` columns, in seq order,
never upcast) and recomputes every hash with `domain.chain`. It stops at the first row that
is wrong and names it:

- ``missing``: a seq is skipped (a row was deleted);
- ``inserted_or_reordered``: a seq repeats or goes backwards, a row belongs to another
  visit, or a row links to an earlier row than its predecessor (rows were slipped in);
- ``link_broken``: a row's `prev_hash` is not its predecessor's hash (the predecessor was
  changed and re-hashed, or the row was renumbered into a gap);
- ``content_changed``: a row's hash does not match its own content;
- ``tail_mismatch``: the log is intact on its own but disagrees with an anchor, the last
  seq and head hash known from elsewhere (the read model's `visits.last_seq`/`head_hash`
  or the workflow's state): the newest events were deleted, or the tail was rewritten.

Without an anchor, deleting the newest rows cannot be seen: a shorter chain is still a
valid chain. Pure: no I/O.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from domain.chain import HASHED_FIELDS, link_hash, row_content
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
    """The outcome of verifying one visit's log.

    `head_seq`/`head_hash` are those of the last row verified intact (the whole log when
    `ok`); `events_checked` counts the rows examined, the first bad one included.
    """

    visit_id: str
    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    kind: ChainProblem | None = None


def _content(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = {name: row[name] for name in HASHED_FIELDS}
    # The log stores event ids as uuid; the chain hashes their canonical text.
    fields["event_id"] = str(fields["event_id"])
    return row_content(**fields)


def verify_chain(
    rows: Iterable[Mapping[str, Any]],
    *,
    anchor: tuple[int, str] | None = None,
    visit_id: str | None = None,
) -> ChainReport:
    """Verify one visit's stored rows, in the order read (ORDER BY seq).

    `anchor` is the expected (last seq, head hash) of the visit; `visit_id` names the visit
    when there may be no rows at all (otherwise the first row's visit is used).
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    head_seq = 0
    checked = 0
    seen: dict[str, int] = {GENESIS_HASH: 0}  # hash -> seq of the intact rows so far
    name = visit_id

    def bad(seq: int, kind: ChainProblem, problem: str) -> ChainReport:
        return ChainReport(
            visit_id=name or "",
            ok=False,
            events_checked=checked,
            head_seq=head_seq,
            head_hash=prev_hash,
            first_bad_seq=seq,
            problem=problem,
            kind=kind,
        )

    rows = list(rows)
    for index, row in enumerate(rows):
        checked += 1
        seq = int(row["seq"])
        if name is None:
            name = row["visit_id"]
        where = f"Visit {name}, event {seq}"
        if row["visit_id"] != name:
            return bad(
                seq,
                ChainProblem.inserted_or_reordered,
                f"{where} belongs to visit {row['visit_id']}: a row of another visit was inserted.",
            )
        if seq < expected_seq:
            what = "repeats" if seq == expected_seq - 1 else f"comes after event {expected_seq - 1}"
            return bad(
                seq,
                ChainProblem.inserted_or_reordered,
                f"{where} {what}: rows were inserted or reordered.",
            )
        if seq > expected_seq:
            if any(int(later["seq"]) == expected_seq for later in rows[index + 1 :]):
                return bad(
                    expected_seq,
                    ChainProblem.inserted_or_reordered,
                    f"Visit {name}: event {expected_seq} comes after event {seq}: rows are out of order.",
                )
            gap = str(expected_seq) if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
            return bad(
                expected_seq,
                ChainProblem.missing,
                f"Visit {name}: event {gap} is missing (the log jumps from {expected_seq - 1} to "
                f"{seq}): rows were deleted.",
            )
        stored_prev = str(row["prev_hash"])
        if stored_prev != prev_hash:
            earlier = seen.get(stored_prev)
            if earlier is not None and earlier < seq - 1:
                first = earlier + 1
                return bad(
                    first,
                    ChainProblem.inserted_or_reordered,
                    f"{where} links to event {earlier}, so event {first}"
                    f"{'' if first == seq - 1 else f' to {seq - 1}'} was inserted after the fact.",
                )
            return bad(
                seq,
                ChainProblem.link_broken,
                f"{where} does not link to event {seq - 1}: its prev_hash is not the hash of "
                f"event {seq - 1}, so event {seq - 1} was changed and re-hashed, or rows were "
                "renumbered.",
            )
        computed = link_hash(prev_hash, _content(row))
        if computed != row["hash"]:
            return bad(
                seq,
                ChainProblem.content_changed,
                f"{where} ({row['type']}) was changed: its content no longer matches its hash.",
            )
        prev_hash = computed
        head_seq = seq
        seen[computed] = seq
        expected_seq = seq + 1

    if anchor is not None:
        anchor_seq, anchor_hash = anchor
        if head_seq < anchor_seq:
            first = head_seq + 1
            gap = str(first) if first == anchor_seq else f"{first} to {anchor_seq}"
            return bad(
                first,
                ChainProblem.tail_mismatch,
                f"Visit {name}: the log ends at event {head_seq} but the visit's head is event "
                f"{anchor_seq}: event {gap} was deleted.",
            )
        at_anchor = next((h for h, s in seen.items() if s == anchor_seq), None)
        if at_anchor != anchor_hash:
            return bad(
                anchor_seq,
                ChainProblem.tail_mismatch,
                f"Visit {name}: event {anchor_seq} does not have the visit's recorded head hash: "
                f"the log was rewritten at or before event {anchor_seq}.",
            )

    return ChainReport(
        visit_id=name or "",
        ok=True,
        events_checked=checked,
        head_seq=head_seq,
        head_hash=prev_hash,
    )
