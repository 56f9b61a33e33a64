"""The auditor's replay of one visit from the PostgreSQL log: every tampering caught and located,
the state at any past moment, readable reasons. A real PostgreSQL, a database per test."""

import pytest

from activities.store import EventStore
from domain.actors import Role
from domain.verify import ChainProblem
from starter.audit import Auditor, VisitNotLogged
from tests import tamper
from tests.stories import at, story

pytestmark = pytest.mark.store


async def test_an_intact_visit_replays_to_the_workflow_state_with_who_what_when_and_why(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    audit = await Auditor(store).audit(driver.visit_id)

    assert audit.ok and audit.chain.ok and audit.anchored and audit.readable
    assert audit.chain.events_checked == driver.state.last_seq == 11
    assert audit.state == driver.state  # the same fold the workflow ran
    entries = [s.entry for s in audit.steps]
    assert [e.type for e in entries] == [
        "PlanSubmitted", "PlanApproved", "VisitCheckedIn", "ReminderSent", "Escalated",
        "ReportSubmitted", "ReportReturned", "ReportSubmitted", "ReportAccepted",
        "PromisedItemCompleted", "VisitClosed",
    ]  # fmt: skip
    approved = entries[1]
    assert (approved.actor_id, approved.actor_role, approved.why) == (
        "mgr-li",
        Role.manager,
        "Bring the price list",
    )
    assert entries[4].actor_role is Role.system and "Escalated to manager mgr-li" in entries[4].what
    assert entries[6].why == "Add the competitor's prices"
    assert "late" in entries[5].what
    assert [str(e.status) for e in entries][-3:] == ["following_up", "following_up", "closed"]
    assert audit.steps[5].state.report_late is True  # the whole state after each step


@pytest.mark.parametrize(
    ("moment", "status", "last_seq"),
    [
        ("2026-11-16 09:59", None, 0),
        ("2026-11-16 10:00", "awaiting_approval", 1),
        ("2026-11-24 12:00", "awaiting_report", 4),
        ("2026-11-25 16:00", "report_submitted", 6),
        ("2026-11-26 10:30", "report_submitted", 8),
        ("2026-12-01 00:00", "closed", 11),
    ],
)
async def test_the_visit_as_it_stood_at_a_past_moment(own_pool, moment, status, last_seq):
    store = EventStore(own_pool)
    driver = await story(store)
    audit = await Auditor(store).audit(driver.visit_id, as_of=at(moment))
    assert audit.chain.ok  # the whole log is verified, whatever the moment shown
    if status is None:
        assert audit.state is None and audit.steps == []
        return
    assert audit.state is not None
    assert (str(audit.state.status), audit.state.last_seq, len(audit.steps)) == (status, last_seq, last_seq)


async def test_changed_content_is_caught_at_its_event(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.change_payload(own_pool, driver.visit_id, 6, late=False)
    audit = await Auditor(store).audit(driver.visit_id)
    assert not audit.ok
    assert (audit.chain.kind, audit.chain.first_bad_seq) == (ChainProblem.content_changed, 6)
    assert "event 6 (ReportSubmitted) was changed" in (audit.chain.problem or "")


async def test_a_changed_actor_is_caught_too(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    async with tamper.past_the_triggers(own_pool) as conn:
        await conn.execute(
            "UPDATE visit_events SET actor_id = 'dir-zhao', actor_role = 'director'"
            " WHERE visit_id = $1 AND seq = 2",
            driver.visit_id,
        )
    audit = await Auditor(store).audit(driver.visit_id)
    assert (audit.chain.kind, audit.chain.first_bad_seq) == (ChainProblem.content_changed, 2)


async def test_a_deleted_event_is_caught_where_the_gap_is(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.delete(own_pool, driver.visit_id, 5)  # the escalation disappears
    audit = await Auditor(store).audit(driver.visit_id)
    assert (audit.chain.kind, audit.chain.first_bad_seq) == (ChainProblem.missing, 5)


async def test_deleting_the_newest_events_is_caught_by_the_anchor(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.delete(own_pool, driver.visit_id, 10, 11)
    audit = await Auditor(store).audit(driver.visit_id)
    assert (audit.chain.kind, audit.chain.first_bad_seq) == (ChainProblem.tail_mismatch, 10)
    assert "event 10 to 11 was deleted" in (audit.chain.problem or "")


async def test_an_event_appended_after_the_recorded_head_is_caught(own_pool):
    # Written past the append path: it chains, but the read model's head never moved.
    store = EventStore(own_pool)
    driver = await story(store)
    seq = await tamper.append_chained(own_pool, driver.visit_id, "ReportAccepted", 1, {"comment": "again"})
    audit = await Auditor(store).audit(driver.visit_id)
    assert not audit.ok
    assert (audit.chain.kind, audit.chain.first_bad_seq) == (ChainProblem.tail_mismatch, seq)
    assert "event 12 was appended outside the engine" in (audit.chain.problem or "")


async def test_an_event_after_the_visit_closed_does_not_replay(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    seq = await tamper.append_chained(
        own_pool, driver.visit_id, "ReportAccepted", 1, {"comment": "again"}, move_head=True
    )
    audit = await Auditor(store).audit(driver.visit_id)
    assert audit.chain.ok  # the head was moved onto it: only the fold can tell
    assert not audit.readable and not audit.ok
    assert f"Event {seq} of visit {driver.visit_id} does not follow" in (audit.problem or "")
    assert "closed" in (audit.problem or "")
    assert len(audit.steps) == seq - 1 and audit.state is not None and audit.state.closed


async def test_an_inserted_event_is_caught(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.insert_copy(own_pool, driver.visit_id, 2, at_seq=4)  # a second approval
    audit = await Auditor(store).audit(driver.visit_id)
    assert not audit.ok
    assert audit.chain.first_bad_seq == 4
    assert audit.chain.kind in (ChainProblem.inserted_or_reordered, ChainProblem.link_broken)


async def test_reordered_events_are_caught(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.swap(own_pool, driver.visit_id, 6, 7)  # the return before the report
    audit = await Auditor(store).audit(driver.visit_id)
    assert not audit.ok and audit.chain.first_bad_seq == 6


async def test_a_visit_whose_events_were_all_deleted_is_reported_not_unknown(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.delete(own_pool, driver.visit_id, *range(1, 12))
    audit = await Auditor(store).audit(driver.visit_id)
    assert (audit.chain.kind, audit.chain.first_bad_seq) == (ChainProblem.tail_mismatch, 1)
    assert audit.state is None


async def test_an_unknown_visit_is_refused_in_a_sentence(own_pool):
    with pytest.raises(VisitNotLogged, match="The log holds no events of visit v-nowhere"):
        await Auditor(EventStore(own_pool)).audit("v-nowhere")


async def test_an_unreadable_event_stops_the_replay_and_says_which(own_pool):
    store = EventStore(own_pool)
    driver = await story(store)
    await tamper.change_payload(own_pool, driver.visit_id, 3, report_due_at="next week")
    audit = await Auditor(store).audit(driver.visit_id)
    assert not audit.readable and not audit.ok
    assert "Event 3 of visit" in (audit.problem or "")
    assert len(audit.steps) == 2 and audit.state is not None and str(audit.state.status) == "approved"


async def test_each_step_keeps_the_state_it_had_while_later_steps_move_on(own_pool):
    # The fold copies only what an event changes; no later event may reach back into an
    # earlier step's state (the auditor's step-by-step view depends on it).
    store = EventStore(own_pool)
    driver = await story(store)
    audit = await Auditor(store).audit(driver.visit_id)
    states = [s.state for s in audit.steps]
    assert states[3].reminded == ["report"] and states[3].escalation_levels == {}
    assert states[4].escalation_levels == {"report": 1}
    assert states[5].items["samples"].status == "open"
    assert states[9].items["samples"].status == "completed"
    assert states[2].reminded == [] and states[2].items == {}
