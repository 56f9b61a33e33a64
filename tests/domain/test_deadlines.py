"""Open concerns, the next alarm, and the reminders and escalations the engine's timers issue."""

from datetime import datetime, timedelta

import pytest

from domain.actors import Actor, Role
from domain.alarms import Alarm, AlarmKind
from domain.deadlines import (
    CHECK_IN,
    PLAN_APPROVAL,
    REPORT,
    next_alarm,
    open_concerns,
)
from domain.events import Escalated, ReminderSent
from domain.policy import EscalationStep, Policy
from domain.state import VisitStatus
from tests.domain.support import (
    ITEM_DUE,
    REPORT_DUE,
    REPORTED_AT,
    REVIEWED_AT,
    SUBMITTED_AT,
    VISIT_END,
    VISIT_START,
    Visit,
    approve_plan,
    approved,
    at,
    cancel,
    check_in,
    checked_in,
    closed,
    escalate,
    first,
    following_up,
    promised,
    remind,
    reported,
    reschedule,
    return_plan,
    return_report,
    returned,
    revise_plan,
    submit_report,
    submitted,
    types,
)

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def fire(visit: Visit, now: datetime) -> Alarm:
    """Apply the next alarm as the engine's timer would, at its own time; return it."""
    alarm = next_alarm(visit.s, now)
    assert alarm is not None
    command = (
        remind(alarm.concern) if alarm.kind is AlarmKind.remind else escalate(alarm.concern, alarm.level)
    )
    visit.apply(command, max(now, alarm.at))
    return alarm


# --- open concerns -----------------------------------------------------------------------


def test_unapproved_plan_is_owed_by_the_manager_by_the_visit_time():
    (concern,) = open_concerns(submitted().s)

    assert concern.key == PLAN_APPROVAL
    assert concern.due_at == VISIT_START
    assert concern.owner_id == "mgr-1"
    assert concern.remind is False


def test_returned_plan_is_still_an_open_approval():
    (concern,) = open_concerns(returned().s)

    assert concern.key == PLAN_APPROVAL


def test_approved_visit_owes_a_check_in_by_its_scheduled_end_plus_grace():
    (concern,) = open_concerns(approved().s)

    assert concern.key == CHECK_IN
    assert concern.due_at == at("2026-11-23 12:00")  # 09:00 + 60 min + 2 h grace
    assert concern.owner_id == "rep-1"


def test_check_in_grace_is_a_setting():
    (concern,) = open_concerns(approved(Policy(check_in_grace=timedelta(0))).s)

    assert concern.due_at == at("2026-11-23 10:00")


def test_checked_in_visit_owes_its_report():
    (concern,) = open_concerns(checked_in().s)

    assert (concern.key, concern.due_at, concern.owner_id, concern.remind) == (
        REPORT,
        REPORT_DUE,
        "rep-1",
        True,
    )
    assert concern.what == "report on the visit at Hangzhou Trading Co."


def test_each_open_promised_item_is_a_concern_owed_by_its_owner():
    visit = reported([promised("quote"), promised("install", at("2026-12-03 12:00"), owner_id="eng-7")])

    concerns = {c.key: c for c in open_concerns(visit.s)}

    assert set(concerns) == {"item:quote", "item:install"}
    assert concerns["item:install"].owner_id == "eng-7"
    assert concerns["item:install"].due_at == at("2026-12-03 12:00")
    assert "promised item 'quote' (send quote quote)" == concerns["item:quote"].what


def test_closed_visit_owes_nothing():
    assert open_concerns(closed().s) == []
    assert next_alarm(closed().s, REVIEWED_AT) is None


# --- the next alarm ----------------------------------------------------------------------


def test_report_reminder_comes_24_hours_before_the_deadline():
    alarm = next_alarm(checked_in().s, at("2026-11-23 12:00"))

    assert alarm == Alarm(at("2026-11-24 10:00"), AlarmKind.remind, REPORT)


def test_report_escalates_to_the_manager_at_the_deadline():
    visit = checked_in()
    fire(visit, at("2026-11-24 10:00"))

    alarm = next_alarm(visit.s, at("2026-11-24 10:00"))

    assert alarm == Alarm(REPORT_DUE, AlarmKind.escalate, REPORT, 1)


def test_report_escalates_to_the_director_a_day_after_the_deadline():
    visit = checked_in()
    fire(visit, at("2026-11-24 10:00"))
    fire(visit, REPORT_DUE)

    alarm = next_alarm(visit.s, REPORT_DUE)

    assert alarm == Alarm(REPORT_DUE + 24 * HOUR, AlarmKind.escalate, REPORT, 2)


def test_no_alarm_after_the_top_of_the_ladder():
    visit = checked_in()
    for _ in range(3):
        fire(visit, at("2026-11-24 10:00"))

    assert visit.s.escalation_levels == {REPORT: 2}
    assert next_alarm(visit.s, at("2026-11-30 10:00")) is None
    assert visit.s.status is VisitStatus.awaiting_report  # never closed silently


def test_reminder_whose_deadline_passed_is_skipped_for_the_escalation():
    # The engine was down across the deadline: it escalates rather than remind late.
    alarm = next_alarm(checked_in().s, at("2026-11-25 11:00"))

    assert alarm == Alarm(REPORT_DUE, AlarmKind.escalate, REPORT, 1)


def test_overdue_reminder_before_the_deadline_is_still_due_now():
    alarm = next_alarm(checked_in().s, at("2026-11-24 20:00"))

    assert alarm == Alarm(at("2026-11-24 10:00"), AlarmKind.remind, REPORT)


def test_no_reminder_when_the_policy_sets_none():
    alarm = next_alarm(checked_in(Policy(reminder_before=timedelta(0))).s, at("2026-11-23 12:00"))

    assert alarm == Alarm(REPORT_DUE, AlarmKind.escalate, REPORT, 1)


def test_escalation_ladder_is_a_setting():
    policy = Policy(
        escalation_ladder=[
            EscalationStep(role=Role.manager, after=4 * HOUR),
            EscalationStep(role=Role.manager, after=8 * HOUR),
            EscalationStep(role=Role.director, after=48 * HOUR),
        ]
    )
    visit = checked_in(policy)
    fire(visit, at("2026-11-24 10:00"))

    levels = [fire(visit, at("2026-11-24 10:00")) for _ in range(3)]

    assert [(a.at, a.level) for a in levels] == [
        (REPORT_DUE + 4 * HOUR, 1),
        (REPORT_DUE + 8 * HOUR, 2),
        (REPORT_DUE + 48 * HOUR, 3),
    ]
    assert next_alarm(visit.s, at("2026-12-01 10:00")) is None


def test_a_report_deadline_of_minutes_is_reminded_and_escalated_within_minutes():
    # The README's recipe for watching a report go overdue under `visits dev`.
    policy = Policy.model_validate(
        {
            "report_deadline": "PT3M",
            "reminder_before": "PT1M",
            "escalation_ladder": [
                {"role": "manager", "after": "PT0S"},
                {"role": "director", "after": "PT2M"},
            ],
        }
    )
    visit = approved(policy)
    visit.apply(check_in(), VISIT_END)

    assert visit.s.report_due_at == VISIT_END + 3 * MINUTE
    alarms = [fire(visit, VISIT_END) for _ in range(3)]
    assert [(a.kind, a.at) for a in alarms] == [
        (AlarmKind.remind, VISIT_END + 2 * MINUTE),
        (AlarmKind.escalate, VISIT_END + 3 * MINUTE),
        (AlarmKind.escalate, VISIT_END + 5 * MINUTE),
    ]
    assert next_alarm(visit.s, VISIT_END) is None


def test_a_check_in_grace_of_minutes_is_counted_in_minutes():
    (concern,) = open_concerns(approved(Policy(check_in_grace="10m")).s)

    assert concern.due_at == VISIT_END + 10 * MINUTE


def test_unapproved_plan_escalates_at_the_visit_time_without_a_reminder():
    alarm = next_alarm(submitted().s, SUBMITTED_AT)

    assert alarm == Alarm(VISIT_START, AlarmKind.escalate, PLAN_APPROVAL, 1)


def test_missing_check_in_escalates_at_the_scheduled_end_plus_grace():
    alarm = next_alarm(approved().s, at("2026-11-23 09:00"))

    assert alarm == Alarm(at("2026-11-23 12:00"), AlarmKind.escalate, CHECK_IN, 1)


def test_promised_item_is_reminded_then_escalated():
    visit = following_up()

    assert next_alarm(visit.s, REVIEWED_AT) == Alarm(ITEM_DUE - 24 * HOUR, AlarmKind.remind, "item:quote")
    fire(visit, REVIEWED_AT)
    assert next_alarm(visit.s, REVIEWED_AT) == Alarm(ITEM_DUE, AlarmKind.escalate, "item:quote", 1)


def test_earliest_of_several_concerns_comes_first():
    # The report is still waiting for review; "call" is due a day after it was promised, so
    # its reminder time (24 h before) has already come and is the earliest alarm.
    visit = reported([promised("call", at("2026-11-24 12:00")), promised("quote")])

    assert next_alarm(visit.s, REPORTED_AT) == Alarm(at("2026-11-23 12:00"), AlarmKind.remind, "item:call")
    fire(visit, REPORTED_AT)
    assert next_alarm(visit.s, REPORTED_AT) == Alarm(
        at("2026-11-24 12:00"), AlarmKind.escalate, "item:call", 1
    )


def test_escalation_comes_before_a_reminder_due_at_the_same_instant():
    # "call" is due when "quote" is reminded: the escalation is listed first.
    visit = reported([promised("call", at("2026-11-29 18:00")), promised("quote")])
    fire(visit, REPORTED_AT)  # reminder for call at 11-28 18:00

    alarm = next_alarm(visit.s, at("2026-11-29 18:00"))

    assert alarm == Alarm(at("2026-11-29 18:00"), AlarmKind.escalate, "item:call", 1)


def test_returned_report_restarts_its_reminder_and_escalations():
    visit = checked_in()
    fire(visit, at("2026-11-24 10:00"))  # reminded
    fire(visit, REPORT_DUE)  # escalated to the manager
    visit.apply(submit_report(), at("2026-11-25 12:00"))
    returned_at = at("2026-11-25 15:00")
    visit.apply(return_report(), returned_at)

    assert REPORT not in visit.s.reminded
    assert REPORT not in visit.s.escalation_levels
    assert next_alarm(visit.s, returned_at) == Alarm(at("2026-11-26 15:00"), AlarmKind.remind, REPORT)
    fire(visit, returned_at)
    assert next_alarm(visit.s, returned_at) == Alarm(at("2026-11-27 15:00"), AlarmKind.escalate, REPORT, 1)


def test_rescheduling_restarts_the_approval_escalations():
    visit = submitted()
    fire(visit, VISIT_START)  # the visit time passed unapproved: escalated to the manager
    visit.apply(reschedule(start=at("2026-11-26 09:00")), at("2026-11-23 10:00"))

    alarm = next_alarm(visit.s, at("2026-11-23 10:00"))

    assert alarm == Alarm(at("2026-11-26 09:00"), AlarmKind.escalate, PLAN_APPROVAL, 1)


def test_revising_a_returned_plan_restarts_the_approval_escalations():
    # The plan was returned, the visit time passed unrevised and was escalated; the rep then
    # revises it for a new time. The new visit time is a new deadline: its ladder starts over.
    visit = returned()
    fire(visit, VISIT_START)
    visit.apply(revise_plan(start=at("2026-11-26 09:00")), at("2026-11-23 10:00"))

    alarm = next_alarm(visit.s, at("2026-11-23 10:00"))

    assert alarm == Alarm(at("2026-11-26 09:00"), AlarmKind.escalate, PLAN_APPROVAL, 1)


def test_revised_plan_after_the_whole_ladder_is_escalated_again_when_unapproved():
    # Without a fresh ladder the revised plan would have no alarm at all and could sit
    # unapproved past its new visit time unseen.
    visit = returned()
    fire(visit, VISIT_START)
    fire(visit, VISIT_START)
    assert next_alarm(visit.s, at("2026-11-24 10:00")) is None
    visit.apply(revise_plan(start=at("2026-11-27 09:00")), at("2026-11-24 10:00"))

    alarm = next_alarm(visit.s, at("2026-11-24 10:00"))

    assert alarm == Alarm(at("2026-11-27 09:00"), AlarmKind.escalate, PLAN_APPROVAL, 1)


def test_alarm_command_ids_differ_per_deadline():
    first = Alarm(REPORT_DUE, AlarmKind.remind, REPORT)
    again = Alarm(at("2026-11-26 15:00"), AlarmKind.remind, REPORT)

    assert first.command_id != again.command_id
    assert first.command_id == f"timer:remind:report:0@{REPORT_DUE.isoformat()}"


def test_cancelled_visit_has_no_alarm():
    visit = approved()
    visit.apply(cancel(), at("2026-11-20 10:00"))

    assert next_alarm(visit.s, at("2026-11-20 10:00")) is None


def test_report_submitted_stops_the_report_alarms():
    visit = reported()

    assert next_alarm(visit.s, REPORTED_AT) is None


# --- reminders and escalations as commands ----------------------------------------------


def test_reminder_goes_to_the_rep_with_the_deadline():
    visit = checked_in()

    recorded = visit.apply(remind(REPORT), at("2026-11-24 10:00"))

    event = recorded[0].event
    assert event == ReminderSent(
        concern=REPORT,
        recipient=Actor(id="rep-1", role=Role.rep),
        due_at=REPORT_DUE,
        message="Reminder: the report on the visit at Hangzhou Trading Co. is due by 2026-11-25 10:00 CST.",
    )
    assert visit.s.reminded == [REPORT]


def test_first_escalation_goes_to_the_manager():
    visit = checked_in()

    recorded = visit.apply(escalate(REPORT, 1), at("2026-11-25 10:30"))

    event = recorded[0].event
    assert isinstance(event, Escalated)
    assert (event.recipient.id, event.recipient.role, event.level) == ("mgr-1", Role.manager, 1)
    assert event.due_at == REPORT_DUE
    assert event.scheduled_for == REPORT_DUE
    assert event.message == (
        "Overdue: the report on the visit at Hangzhou Trading Co. (owed by rep-1) was due by "
        "2026-11-25 10:00 CST and is still missing."
    )
    assert visit.s.escalation_levels == {REPORT: 1}


def test_second_escalation_goes_to_the_visits_director():
    visit = checked_in()
    visit.apply(escalate(REPORT, 1), REPORT_DUE)

    recorded = visit.apply(escalate(REPORT, 2), at("2026-11-26 10:00"))

    event = recorded[0].event
    assert isinstance(event, Escalated)
    assert (event.recipient.id, event.recipient.role) == ("dir-1", Role.director)
    assert event.scheduled_for == at("2026-11-26 10:00")


def test_second_escalation_goes_to_the_directors_group_when_no_director_is_named():
    visit = checked_in(director_id=None)
    visit.apply(escalate(REPORT, 1), REPORT_DUE)

    recorded = visit.apply(escalate(REPORT, 2), at("2026-11-26 10:00"))

    assert first(recorded, Escalated).recipient.id == "directors"


def test_unapproved_plan_escalates_to_the_manager_at_the_visit_time():
    visit = submitted()

    recorded = visit.apply(escalate(PLAN_APPROVAL, 1), VISIT_START)

    assert first(recorded, Escalated).recipient.id == "mgr-1"
    assert "approval of the plan for the visit at Hangzhou Trading Co." in first(recorded, Escalated).message


def test_missing_check_in_escalates_to_the_manager():
    visit = approved()

    recorded = visit.apply(escalate(CHECK_IN, 1), at("2026-11-23 12:00"))

    assert types(recorded) == ["Escalated"]
    assert "check-in of the visit" in first(recorded, Escalated).message


def test_overdue_promised_item_escalates_to_the_manager():
    visit = following_up()

    recorded = visit.apply(escalate("item:quote", 1), ITEM_DUE)

    event = recorded[0].event
    assert isinstance(event, Escalated)
    assert event.recipient.id == "mgr-1"
    assert "promised item 'quote'" in event.message
    assert visit.s.status is VisitStatus.following_up


def test_escalations_do_not_change_the_visits_status():
    visit = checked_in()
    visit.apply(escalate(REPORT, 1), REPORT_DUE)
    visit.apply(escalate(REPORT, 2), REPORT_DUE + 24 * HOUR)

    visit.apply(submit_report(), at("2026-11-27 10:00"))

    assert visit.s.report_late is True
    assert visit.s.status is VisitStatus.report_submitted


# --- timer refusals ----------------------------------------------------------------------


def test_reminder_before_its_time_is_refused():
    error = checked_in().refuse(remind(REPORT), at("2026-11-24 09:59"), "timer.remind")

    assert "The reminder for 'report' is not due now" in error.message


def test_reminder_after_the_deadline_is_refused():
    checked_in().refuse(remind(REPORT), REPORT_DUE, "timer.remind")


def test_second_reminder_for_the_same_deadline_is_refused():
    visit = checked_in()
    visit.apply(remind(REPORT), at("2026-11-24 10:00"))

    error = visit.refuse(remind(REPORT), at("2026-11-24 11:00"), "timer.remind")

    assert "No reminder is pending for 'report'" in error.message


@pytest.mark.parametrize(
    ("given", "concern"),
    [(submitted, PLAN_APPROVAL), (approved, CHECK_IN), (checked_in, "item:quote"), (reported, REPORT)],
    ids=["plan-approval", "check-in", "unknown-item", "report-already-in"],
)
def test_reminder_for_a_concern_without_one_is_refused(given, concern: str):
    given().refuse(remind(concern), at("2026-11-23 09:00"), "timer.remind")


def test_escalation_not_yet_due_is_refused():
    error = checked_in().refuse(escalate(REPORT, 1), at("2026-11-25 09:59"), "timer.escalate")

    assert "Escalation of 'report' is not due yet" in error.message


def test_second_escalation_before_its_time_is_refused():
    visit = checked_in()
    visit.apply(escalate(REPORT, 1), REPORT_DUE)

    visit.refuse(escalate(REPORT, 2), REPORT_DUE + 23 * HOUR, "timer.escalate")


def test_escalation_skipping_a_level_is_refused():
    error = checked_in().refuse(escalate(REPORT, 2), at("2026-11-27 10:00"), "timer.escalate")

    assert "Escalation level 2 of 'report' is not the next one" in error.message


def test_repeated_escalation_level_is_refused():
    visit = checked_in()
    visit.apply(escalate(REPORT, 1), REPORT_DUE)

    visit.refuse(escalate(REPORT, 1), at("2026-11-27 10:00"), "timer.escalate")


def test_escalation_beyond_the_ladder_is_refused():
    visit = checked_in()
    visit.apply(escalate(REPORT, 1), REPORT_DUE)
    visit.apply(escalate(REPORT, 2), REPORT_DUE + 24 * HOUR)

    error = visit.refuse(escalate(REPORT, 3), at("2026-12-01 10:00"), "timer.escalate")

    assert "not the next one" in error.message


def test_escalation_of_a_resolved_concern_is_refused():
    error = reported().refuse(escalate(REPORT, 1), at("2026-11-26 10:00"), "timer.escalate")

    assert "Nothing is overdue for 'report'" in error.message


def test_approval_escalation_after_approval_is_refused():
    visit = submitted()
    visit.apply(approve_plan(), at("2026-11-20 10:00"))

    visit.refuse(escalate(PLAN_APPROVAL, 1), VISIT_START, "timer.escalate")


def test_returned_plan_keeps_its_approval_concern_open():
    visit = submitted()
    visit.apply(return_plan(), at("2026-11-17 10:00"))

    assert types(visit.apply(escalate(PLAN_APPROVAL, 1), VISIT_START)) == ["Escalated"]


def test_returned_report_with_old_deadline_cannot_be_escalated_early():
    visit = reported()
    visit.apply(return_report(), REVIEWED_AT)

    visit.refuse(escalate(REPORT, 1), REPORT_DUE, "timer.escalate")


def test_redated_promise_in_a_revised_report_restarts_its_escalation_ladder():
    visit = reported([promised("quote", due_at=at("2026-11-24 12:00"))])
    visit.apply(escalate("item:quote", 1), at("2026-11-24 12:00"))
    assert visit.s.escalation_levels["item:quote"] == 1
    visit.apply(return_report(), REVIEWED_AT)
    later = at("2026-12-04 18:00")
    visit.apply(submit_report(items=[promised("quote", due_at=later)]), at("2026-11-25 09:00"))
    assert "item:quote" not in visit.s.escalation_levels
    alarm = next_alarm(visit.s, at("2026-11-25 09:00"))
    assert alarm is not None and alarm.concern == "item:quote"
    assert alarm.kind == "remind" and alarm.at == later - timedelta(hours=24)
