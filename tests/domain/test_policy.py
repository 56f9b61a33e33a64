"""Policy figures: the defaults of DOMAIN.md, and settings that cannot work are refused."""

from datetime import date

import pytest
from pydantic import ValidationError

from domain.actors import Role
from domain.policy import DeadlineMode, EscalationStep, Policy
from domain.summary import summarize
from tests.domain.support import REPORT_DUE, VISIT_START, checked_in, escalate, following_up, submitted


def test_defaults_are_the_documented_ones():
    policy = Policy()

    assert policy.timezone == "Asia/Shanghai"
    assert policy.report_deadline_mode is DeadlineMode.calendar_hours
    assert policy.report_deadline_hours == 48
    assert policy.report_deadline_working_days == 2
    assert policy.reminder_before_hours == 24
    assert policy.plan_lead_working_days == 1
    assert policy.check_in_grace_hours == 2
    assert policy.weekend == [5, 6]
    assert policy.escalation_ladder == [
        EscalationStep(role=Role.manager, after_hours=0),
        EscalationStep(role=Role.director, after_hours=24),
    ]


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "../etc/passwd", "/etc/localtime"])
def test_unknown_time_zone_is_refused(name: str):
    with pytest.raises(ValidationError, match="unknown time zone"):
        Policy(timezone=name)


def test_escalation_ladder_out_of_order_is_refused():
    with pytest.raises(ValidationError, match="escalation steps must be listed in order of time"):
        Policy(
            escalation_ladder=[
                EscalationStep(role=Role.director, after_hours=24),
                EscalationStep(role=Role.manager, after_hours=0),
            ]
        )


def test_empty_escalation_ladder_is_refused():
    with pytest.raises(ValidationError, match="escalation_ladder"):
        Policy(escalation_ladder=[])


@pytest.mark.parametrize("role", [Role.rep, Role.auditor, Role.system])
def test_escalation_to_anyone_but_a_manager_or_director_is_refused(role: Role):
    with pytest.raises(ValidationError, match="escalations go to a manager or a director"):
        EscalationStep(role=role, after_hours=0)


def test_escalation_step_to_a_rep_is_refused_inside_a_policy_from_json():
    with pytest.raises(ValidationError, match="escalations go to a manager or a director"):
        Policy.model_validate({"escalation_ladder": [{"role": "rep", "after_hours": 0}]})


def test_negative_escalation_delay_is_refused():
    with pytest.raises(ValidationError, match="after_hours"):
        EscalationStep(role=Role.manager, after_hours=-1)


def test_weekend_day_out_of_range_is_refused():
    with pytest.raises(ValidationError, match="weekend days are numbered 0"):
        Policy(weekend=[5, 7])


def test_weekend_days_are_sorted_and_deduplicated():
    assert Policy(weekend=[6, 5, 6]).weekend == [5, 6]


@pytest.mark.parametrize(
    "figures",
    [
        {"report_deadline_hours": 0},
        {"report_deadline_working_days": 0},
        {"reminder_before_hours": -1},
        {"plan_lead_working_days": -1},
        {"report_deadline_mode": "fortnights"},
        {"unknown_setting": 1},
    ],
    ids=["zero-hours", "zero-working-days", "negative-reminder", "negative-lead", "unknown-mode", "extra"],
)
def test_impossible_figures_are_refused(figures: dict[str, object]):
    with pytest.raises(ValidationError):
        Policy.model_validate(figures)


def test_policy_round_trips_through_json_unchanged():
    policy = Policy(
        report_deadline_mode=DeadlineMode.working_days,
        holidays=[date(2026, 10, 1)],
        makeup_workdays=[date(2026, 10, 10)],
    )

    assert Policy.model_validate_json(policy.model_dump_json()) == policy


# --- the read model derived from state ---------------------------------------------------


def test_summary_shows_the_next_deadline_and_open_items():
    summary = summarize(following_up().s)

    assert summary.status.value == "following_up"
    assert summary.customer_name == "Hangzhou Trading Co."
    assert summary.open_items == 1
    assert summary.next_due_concern == "item:quote"
    assert summary.escalated == []


def test_summary_of_an_unapproved_plan_is_due_at_the_visit_time():
    summary = summarize(submitted().s)

    assert (summary.next_due_concern, summary.next_due_at) == ("plan_approval", VISIT_START)


def test_summary_lists_escalated_concerns_and_their_level():
    visit = checked_in()
    visit.apply(escalate("report", 1), REPORT_DUE)

    summary = summarize(visit.s)

    assert summary.escalated == ["report"]
    assert summary.escalation_level == 1
    assert summary.report_due_at == REPORT_DUE
