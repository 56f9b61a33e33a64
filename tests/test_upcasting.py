"""Events stored by an earlier model still verify, load and replay with today's model.

`tests/fixtures/bundle-v1` was exported while `ReminderSent` and `Escalated` were at schema
version 1 (recipient_id and recipient_role); today they are at version 2 (one `recipient`
actor). Hashes are verified on the rows as stored; readers see the current shape.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from activities.plan_store import plan_event_from_row
from activities.store import EventStore, domain_event_from_row, recorded_from_row
from domain.actors import Actor, Role
from domain.alarms import escalation_at, reminder_at
from domain.deadlines import concern
from domain.events import Escalated, PlanSubmitted, ReminderSent
from domain.policy import Policy
from domain.state import VisitState, VisitStatus, evolve
from domain.upcasting import upcast
from starter.audit import Auditor
from starter.bundle import EVENTS_FILE, read_manifest, verify_bundle

FIXTURE = Path(__file__).parent / "fixtures" / "bundle-v1"
FULL, MISSED = "v-2026-11-0001", "v-2026-11-0002"


def stored_rows() -> list[dict]:
    return [json.loads(line) for line in (FIXTURE / EVENTS_FILE).read_text(encoding="utf-8").splitlines()]


def test_the_fixture_holds_version_1_events():
    versions = {(r["type"], r["schema_version"]) for r in stored_rows()}
    assert ("Escalated", 1) in versions and ("ReminderSent", 1) in versions
    assert Escalated.model_fields["schema_version"].default == 3
    assert ReminderSent.model_fields["schema_version"].default == 3


def test_a_version_1_escalation_reads_as_the_current_event():
    row = next(r for r in stored_rows() if r["type"] == "Escalated" and r["payload"]["level"] == 2)
    assert {"recipient_id", "recipient_role"} <= set(row["payload"])
    event = domain_event_from_row(row["type"], row["schema_version"], row["payload"])
    assert isinstance(event, Escalated)
    assert (event.schema_version, event.recipient, event.level, event.repeat) == (
        3,
        Actor(id="dir-zhao", role=Role.director),
        2,
        0,
    )
    assert row["payload"]["recipient_id"] == "dir-zhao"  # the stored row itself is untouched


def test_upcasting_leaves_current_versions_and_unknown_types_alone():
    payload = {"concern": "report", "recipient": {"id": "rep-1", "role": "rep"}, "repeat": 0}
    assert upcast("ReminderSent", 3, payload) == (3, payload)
    assert upcast("PlanApproved", 1, {"comment": ""}) == (1, {"comment": ""})


def test_reminders_and_escalations_recorded_before_repeats_read_as_the_first_of_their_kind():
    body = {"concern": "report", "recipient": {"id": "rep-1", "role": "rep"}}
    assert upcast("ReminderSent", 2, body) == (3, {**body, "repeat": 0})
    assert upcast("Escalated", 2, body) == (3, {**body, "repeat": 0})
    plan = {"recipient": {"id": "rep-1", "role": "rep"}, "due_at": "2026-11-30T16:00:00Z", "message": "m"}
    version, lifted = upcast("MonthPlanReminderSent", 1, plan)
    assert version == 2 and lifted == {**plan, "repeat": 0}
    event = plan_event_from_row("MonthPlanReminderSent", 1, plan)
    assert (event.concern, event.repeat) == ("month_plan", 0)  # version 1 chased only the missing plan


def test_a_whole_hours_policy_folds_into_the_deadlines_its_log_recorded():
    # Every stored policy is in whole hours (report_deadline_hours: 48, after_hours: 24):
    # read as durations, each reminder and escalation falls where the engine fired it then.
    rows = stored_rows()
    opening = next(r for r in rows if r["type"] == "PlanSubmitted")
    assert opening["payload"]["policy"]["report_deadline_hours"] == 48
    fired = 0
    for visit_id in (FULL, MISSED):
        state: VisitState | None = None
        for recorded in [recorded_from_row(r) for r in rows if r["visit_id"] == visit_id]:
            e = recorded.event
            if isinstance(e, PlanSubmitted):
                assert e.policy == Policy()
                assert e.policy.report_deadline == timedelta(hours=48)
            if isinstance(e, ReminderSent | Escalated):
                assert state is not None
                c = concern(state, e.concern)
                assert c is not None and c.due_at == e.due_at
                due = (
                    reminder_at(c, state.policy)
                    if isinstance(e, ReminderSent)
                    else escalation_at(c, state.policy, e.level)
                )
                assert due == recorded.occurred_at
                fired += 1
            state = evolve(state, recorded)
    assert fired == 4


def test_the_old_bundle_still_verifies_offline_and_replays():
    report = verify_bundle(FIXTURE, expect_hash=read_manifest(FIXTURE).bundle_hash)
    assert report.ok, report.problems
    assert {v.stream_id: v.status for v in report.visits} == {FULL: "closed", MISSED: "approved"}


@pytest.mark.store
async def test_old_events_load_into_a_current_log_and_replay_to_the_same_states(own_pool):
    # Row by row through the log's own insert checks (next seq, prev_hash), as stored then.
    async with own_pool.acquire() as conn:
        for row in stored_rows():
            await conn.execute(
                "INSERT INTO visit_events (visit_id, seq, event_id, type, schema_version, occurred_at,"
                " recorded_at, actor_id, actor_role, command_id, payload, prev_hash, hash)"
                " VALUES ($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz,"
                " $8, $9, $10, $11, $12, $13)",
                *(row[c] for c in ("visit_id", "seq", "event_id", "type", "schema_version", "occurred_at")),
                *(row[c] for c in ("recorded_at", "actor_id", "actor_role", "command_id", "payload")),
                row["prev_hash"],
                row["hash"],
            )
    store = EventStore(own_pool)
    assert await store.rebuild_read_model() == 2

    missed = await Auditor(store).audit(MISSED)
    assert missed.ok, missed.chain.problem or missed.problem
    assert missed.state is not None and missed.state.status is VisitStatus.approved
    assert missed.summary is not None and missed.summary.escalation_level == 2
    whats = [s.entry.what for s in missed.steps]
    assert "Escalated to manager mgr-li (level 1): check-in overdue" in whats
    assert "Escalated to director dir-zhao (level 2): check-in overdue" in whats

    full = await Auditor(store).audit(FULL)
    assert full.ok and full.state is not None and full.state.status is VisitStatus.closed
    events = await store.events(FULL)
    reminder = next(e.event for e in events if isinstance(e.event, ReminderSent))
    assert reminder.recipient == Actor(id="rep-wang", role=Role.rep)
