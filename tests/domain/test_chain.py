"""The hash chain: every row hashes its predecessor's hash and its own canonical content."""

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.actors import Actor, Role
from domain.chain import (
    canonical_json,
    instant_text,
    link_hash,
    row_content,
)
from domain.events import (
    GENESIS_HASH,
    PlanApproved,
    PlanRejected,
    RecordedEvent,
    VisitClosed,
    VisitOutcome,
)
from domain.visit import VISITS
from tests.domain.support import MANAGER, SUBMITTED_AT, following_up

OCCURRED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

CONTENT = row_content(
    visit_id="visit-1",
    seq=3,
    event_id="e-3",
    type="PlanApproved",
    schema_version=1,
    occurred_at=OCCURRED,
    actor_id="mgr-1",
    actor_role="manager",
    command_id="c-3",
    payload={"comment": "好的"},
)


def seal(events, *, last_seq=0, head_hash=GENESIS_HASH, ids=None, actor=MANAGER) -> list[RecordedEvent]:
    return VISITS.seal(
        events,
        stream_id="visit-1",
        last_seq=last_seq,
        head_hash=head_hash,
        actor=actor,
        command_id="c-1",
        occurred_at=OCCURRED,
        event_ids=ids or [f"e-{n}" for n in range(len(events))],
    )


def test_first_event_chains_from_the_genesis_hash():
    (first,) = seal([PlanApproved()])

    assert first.seq == 1
    assert first.prev_hash == GENESIS_HASH == "0" * 64
    assert first.hash == link_hash(GENESIS_HASH, first.content())


def test_empty_head_hash_means_genesis():
    assert seal([PlanApproved()], head_hash="")[0].hash == seal([PlanApproved()])[0].hash


def test_envelope_numbers_events_after_the_last_seq_and_chains_them_from_the_head():
    head = "ab" * 32
    rows = seal(
        [PlanRejected(reason="no"), VisitClosed(outcome=VisitOutcome.rejected)], last_seq=4, head_hash=head
    )

    assert [r.seq for r in rows] == [5, 6]
    assert rows[0].prev_hash == head
    assert rows[1].prev_hash == rows[0].hash
    assert rows[1].hash == link_hash(rows[0].hash, rows[1].content())
    assert {r.command_id for r in rows} == {"c-1"}
    assert all(r.actor == MANAGER and r.occurred_at == OCCURRED for r in rows)


def test_seal_needs_one_id_per_event():
    with pytest.raises(ValueError, match="one event id and one actor are needed per event"):
        seal([PlanApproved(), PlanApproved()], ids=["only-one"])


def test_envelope_is_deterministic_given_ids_and_time():
    assert seal([PlanApproved(comment="ok")]) == seal([PlanApproved(comment="ok")])


def test_link_hash_is_sha256_of_prev_hash_newline_and_canonical_json():
    expected = hashlib.sha256((GENESIS_HASH + "\n" + canonical_json(CONTENT)).encode("utf-8")).hexdigest()

    assert link_hash(GENESIS_HASH, CONTENT) == expected
    assert link_hash(GENESIS_HASH, CONTENT) == link_hash(GENESIS_HASH, dict(CONTENT))
    assert len(expected) == 64


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("visit_id", "visit-2"),
        ("seq", 4),
        ("event_id", "e-4"),
        ("type", "PlanRejected"),
        ("schema_version", 2),
        ("occurred_at", instant_text(OCCURRED + timedelta(microseconds=1))),
        ("actor_id", "mgr-2"),
        ("actor_role", "director"),
        ("command_id", "c-4"),
        ("payload", {"comment": "好"}),
    ],
)
def test_changing_any_hashed_field_changes_the_hash(field: str, value: object):
    changed = {**CONTENT, field: value}

    assert link_hash(GENESIS_HASH, changed) != link_hash(GENESIS_HASH, CONTENT)


def test_changing_the_previous_hash_changes_the_hash():
    assert link_hash("1" * 64, CONTENT) != link_hash(GENESIS_HASH, CONTENT)


def test_hashed_content_has_exactly_the_documented_keys():
    (row,) = seal([PlanApproved(comment="ok")])

    assert set(row.content()) == {
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
    }
    assert row.content()["payload"] == {"comment": "ok", "approved_by": None}


def test_canonical_json_is_independent_of_key_order():
    assert canonical_json({"b": 1, "a": {"y": 2, "x": 3}}) == canonical_json({"a": {"x": 3, "y": 2}, "b": 1})
    assert canonical_json({"b": 1, "a": {"y": 2, "x": 3}}) == '{"a":{"x":3,"y":2},"b":1}'


def test_canonical_json_keeps_chinese_text_as_utf8():
    assert canonical_json({"note": "拜访"}) == '{"note":"拜访"}'


def test_instants_hash_as_utc_with_microseconds_whatever_their_offset():
    shanghai = timezone(timedelta(hours=8))

    assert instant_text(datetime(2026, 11, 23, 17, 0, tzinfo=shanghai)) == "2026-11-23T09:00:00.000000Z"
    assert instant_text(OCCURRED) == instant_text(OCCURRED.astimezone(shanghai))


def test_an_event_hashes_the_same_whatever_offset_its_time_was_given_in():
    shanghai = timezone(timedelta(hours=8))
    in_utc = seal([PlanApproved()])[0]
    in_shanghai = VISITS.seal(
        [PlanApproved()],
        stream_id="visit-1",
        last_seq=0,
        head_hash=GENESIS_HASH,
        actor=MANAGER,
        command_id="c-1",
        occurred_at=OCCURRED.astimezone(shanghai),
        event_ids=["e-0"],
    )[0]

    assert in_shanghai.hash == in_utc.hash


def test_a_different_actor_gives_a_different_hash():
    director = Actor(id="mgr-1", role=Role.director)

    assert seal([PlanApproved()], actor=director)[0].hash != seal([PlanApproved()])[0].hash


def test_a_visits_whole_log_forms_one_chain_and_the_state_holds_its_head():
    visit = following_up()
    log = visit.log

    prev = GENESIS_HASH
    for n, row in enumerate(log, start=1):
        assert row.seq == n
        assert row.prev_hash == prev
        assert row.hash == link_hash(prev, row.content())
        prev = row.hash
    assert visit.s.head_hash == prev
    assert visit.s.last_seq == len(log)


def test_tampering_with_a_recorded_payload_breaks_the_chain():
    visit = following_up()
    row = visit.log[1]
    forged = row.model_copy(update={"event": PlanApproved(comment="approved by someone else")})

    assert link_hash(forged.prev_hash, forged.content()) != forged.hash


def test_stored_row_round_trips_through_json_with_the_same_hash():
    visit = following_up()

    for row in visit.log:
        again = RecordedEvent.model_validate_json(row.model_dump_json())
        assert again == row
        assert link_hash(again.prev_hash, again.content()) == row.hash


def test_submission_time_is_recorded_in_utc():
    visit = following_up()

    assert visit.log[0].occurred_at == SUBMITTED_AT
    assert visit.log[0].occurred_at.tzinfo is UTC
