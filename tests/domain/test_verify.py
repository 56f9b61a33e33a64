"""Chain verification: every kind of tampering with the stored rows is caught and located."""

from datetime import timedelta
from typing import Any

import pytest

from domain.chain import link_hash, row_content
from domain.events import GENESIS_HASH, RecordedEvent
from domain.state import evolve, fold
from domain.verify import ChainProblem, ChainReport, ChainVerifier, verify_chain
from domain.visit import VISITS
from tests.domain.support import ENGINE, REVIEWED_AT, VISIT_ID, closed, following_up

HASHED = (
    "visit_id",
    "seq",
    "event_id",
    "type",
    "schema_version",
    "occurred_at",
    "actor_id",
    "actor_role",
    "command_id",
    "payload",
)


def as_row(recorded: RecordedEvent) -> dict[str, Any]:
    """The `visit_events` row of an event, as `raw_rows` returns it."""
    return {
        "visit_id": recorded.visit_id,
        "seq": recorded.seq,
        "event_id": recorded.event_id,
        "type": recorded.type,
        "schema_version": recorded.event.schema_version,
        "occurred_at": recorded.occurred_at,
        "actor_id": recorded.actor.id,
        "actor_role": recorded.actor.role.value,
        "command_id": recorded.command_id,
        "payload": recorded.payload(),
        "prev_hash": recorded.prev_hash,
        "hash": recorded.hash,
    }


def rehash(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its hash recomputed over its (possibly forged) content, as a forger would."""
    content = row_content(**{k: row[k] for k in HASHED})
    return {**row, "hash": link_hash(row["prev_hash"], content)}


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    visit = following_up()  # submitted, approved, checked in, reported, accepted
    assert len(visit.log) >= 5
    return [as_row(r) for r in visit.log]


def failed(report: ChainReport, seq: int, kind: ChainProblem) -> None:
    assert not report.ok
    assert (report.first_bad_seq, report.kind) == (seq, kind), report.problem
    assert report.problem and f"{seq}" in report.problem


def test_intact_chain_is_ok(rows):
    report = verify_chain(rows)

    assert report.ok and report.kind is None and report.problem is None
    assert (report.stream, report.stream_id) == ("visit", VISIT_ID)
    assert report.events_checked == len(rows)
    assert (report.head_seq, report.head_hash) == (rows[-1]["seq"], rows[-1]["hash"])


def test_intact_chain_agrees_with_its_anchor(rows):
    assert verify_chain(rows, anchor=(len(rows), rows[-1]["hash"])).ok


def test_chained_rows_after_the_anchor_were_appended_outside_the_engine(rows):
    # The engine moves the read model's head in the transaction that appends, so a log
    # that goes on past it had rows written some other way, however well they chain.
    report = verify_chain(rows, anchor=(2, rows[1]["hash"]))

    failed(report, 3, ChainProblem.tail_mismatch)
    assert f"event 3 to {len(rows)} was appended outside the engine" in (report.problem or "")
    assert "recorded head (event 2)" in (report.problem or "")
    assert (report.head_seq, report.head_hash) == (2, rows[1]["hash"])


def test_one_chained_row_after_the_anchor_is_named_alone(rows):
    report = verify_chain(rows, anchor=(len(rows) - 1, rows[-2]["hash"]))

    failed(report, len(rows), ChainProblem.tail_mismatch)
    assert f"event {len(rows)} was appended outside the engine" in (report.problem or "")


def test_a_longer_log_rewritten_at_the_anchor_says_rewritten(rows):
    report = verify_chain(rows, anchor=(2, "f" * 64))
    failed(report, 2, ChainProblem.tail_mismatch)
    assert "rewritten" in (report.problem or "")


def test_the_hashes_are_those_the_workflow_computed(rows):
    visit = following_up()
    for recorded in visit.log:
        assert recorded.hash == link_hash(recorded.prev_hash, recorded.content())


def test_empty_log_is_ok_unless_an_anchor_says_otherwise():
    report = verify_chain([], visit_id=VISIT_ID)
    assert report.ok and report.head_seq == 0 and report.head_hash == GENESIS_HASH
    failed(verify_chain([], visit_id=VISIT_ID, anchor=(3, "x" * 64)), 1, ChainProblem.tail_mismatch)


def test_changed_payload_field(rows):
    rows[2]["payload"] = {**rows[2]["payload"], "report_due_at": "2026-12-31T00:00:00Z"}
    failed(verify_chain(rows), 3, ChainProblem.content_changed)


def test_changed_occurred_at(rows):
    rows[1]["occurred_at"] = rows[1]["occurred_at"] - timedelta(days=1)
    report = verify_chain(rows)
    failed(report, 2, ChainProblem.content_changed)
    assert report.head_seq == 1 and report.head_hash == rows[0]["hash"]
    assert report.events_checked == 2


def test_changed_actor(rows):
    rows[1]["actor_id"] = "mgr-2"
    failed(verify_chain(rows), 2, ChainProblem.content_changed)


def test_changed_first_row_prev_hash(rows):
    rows[0]["prev_hash"] = "f" * 64
    failed(verify_chain(rows), 1, ChainProblem.link_broken)


def test_deleted_middle_row(rows):
    del rows[2]
    failed(verify_chain(rows), 3, ChainProblem.missing)


def test_deleted_first_row(rows):
    del rows[0]
    failed(verify_chain(rows), 1, ChainProblem.missing)


def test_deleted_middle_row_with_the_rest_renumbered(rows):
    del rows[2]
    for row in rows[2:]:
        row["seq"] -= 1
    failed(verify_chain(rows), 3, ChainProblem.link_broken)


def test_deleted_newest_row_is_caught_only_with_an_anchor(rows):
    anchor = (rows[-1]["seq"], rows[-1]["hash"])
    last = rows.pop()["seq"]

    assert verify_chain(rows).ok
    report = verify_chain(rows, anchor=anchor)
    failed(report, last, ChainProblem.tail_mismatch)
    assert "deleted" in (report.problem or "")


def test_rewritten_tail_is_caught_with_an_anchor(rows):
    anchor = (rows[-1]["seq"], rows[-1]["hash"])
    rows[-1]["payload"] = {**rows[-1]["payload"], "comment": "rewritten"}
    rows[-1] = rehash(rows[-1])

    assert verify_chain(rows).ok
    failed(verify_chain(rows, anchor=anchor), anchor[0], ChainProblem.tail_mismatch)


def test_inserted_forged_row_with_a_repeated_seq(rows):
    forged = rehash({**rows[2], "event_id": "forged", "prev_hash": rows[1]["hash"]})
    rows.insert(2, forged)
    failed(verify_chain(rows), 3, ChainProblem.inserted_or_reordered)


def test_inserted_forged_row_with_the_rest_renumbered(rows):
    forged = rehash({**rows[2], "event_id": "forged", "payload": {**rows[2]["payload"]}})
    rows.insert(2, forged)
    for row in rows[3:]:
        row["seq"] += 1
    # The forged row chains properly from event 2; the next real row still links to event 2.
    failed(verify_chain(rows), 3, ChainProblem.inserted_or_reordered)


def test_inserted_row_of_another_visit(rows):
    rows.insert(2, rehash({**rows[2], "visit_id": "visit-2", "prev_hash": rows[1]["hash"]}))
    failed(verify_chain(rows), 3, ChainProblem.inserted_or_reordered)


def test_swapped_rows(rows):
    rows[2], rows[3] = rows[3], rows[2]
    failed(verify_chain(rows), 3, ChainProblem.inserted_or_reordered)


def test_swapped_seq_numbers(rows):
    rows[2]["seq"], rows[3]["seq"] = rows[3]["seq"], rows[2]["seq"]
    rows[2], rows[3] = rows[3], rows[2]
    # ORDER BY seq now reads the old event 4 as event 3.
    failed(verify_chain(rows), 3, ChainProblem.link_broken)


def test_rows_out_of_order(rows):
    rows.append(rows.pop(1))
    failed(verify_chain(rows), 2, ChainProblem.inserted_or_reordered)


def test_forged_hash_breaks_the_link_at_the_next_row(rows):
    rows[2]["payload"] = {**rows[2]["payload"], "report_due_at": "2026-12-31T00:00:00Z"}
    rows[2] = rehash(rows[2])
    report = verify_chain(rows)
    failed(report, 4, ChainProblem.link_broken)
    assert report.head_seq == 3


def test_first_problem_is_reported(rows):
    rows[1]["actor_id"] = "mgr-2"
    del rows[3]
    failed(verify_chain(rows), 2, ChainProblem.content_changed)


# --- the streaming verifier -------------------------------------------------------------


def streamed(rows: list[dict[str, Any]]) -> ChainReport:
    verifier = ChainVerifier()
    for row in rows:
        verifier.add(row)
    return verifier.finish()


def test_streaming_verifier_says_row_by_row_whether_the_chain_still_holds(rows):
    rows[2]["actor_id"] = "mgr-2"
    verifier = ChainVerifier()

    assert [verifier.add(row) for row in rows] == [True, True] + [False] * (len(rows) - 2)
    assert not verifier.intact and verifier.head_seq == 2
    failed(verifier.finish(), 3, ChainProblem.content_changed)


def test_streaming_verifier_tells_a_skipped_seq_that_turns_up_later_from_a_deleted_one(rows):
    late = rows.pop(1)
    failed(streamed(rows), 2, ChainProblem.missing)

    rows.append(late)
    failed(streamed(rows), 2, ChainProblem.inserted_or_reordered)


def test_a_copy_of_an_earlier_row_slipped_in_is_located_at_the_copy(rows):
    copy = {**rows[1], "event_id": "copied", "seq": 4}
    rows.insert(3, copy)
    for row in rows[4:]:
        row["seq"] += 1
    report = verify_chain(rows)
    failed(report, 4, ChainProblem.inserted_or_reordered)
    assert "copy of event 2" in (report.problem or "")


# --- the fold after the end -------------------------------------------------------------


def test_an_event_after_the_visit_closed_chains_but_does_not_fold():
    visit = closed()
    state = visit.s
    assert state.closed
    # A forger (or a write outside the engine) appends a well-chained event after the end.
    (late,) = VISITS.seal(
        [visit.log[-2].event],  # the report's acceptance, once more
        stream_id=VISIT_ID,
        last_seq=state.last_seq,
        head_hash=state.head_hash,
        actor=ENGINE,
        command_id="after-the-end",
        occurred_at=REVIEWED_AT + timedelta(days=1),
        event_ids=["00000000-0000-4000-8000-000000000001"],
    )
    log = [*visit.log, late]

    assert verify_chain([as_row(r) for r in log]).ok
    with pytest.raises(ValueError, match=f"event {late.seq} .*after the visit was closed"):
        evolve(state, late)
    with pytest.raises(ValueError):
        fold(log)
