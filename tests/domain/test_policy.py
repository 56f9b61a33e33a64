"""Policy figures: the defaults of DOMAIN.md, and settings that cannot work are refused."""

import json
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from domain.actors import Role
from domain.calendar import report_deadline
from domain.policy import DeadlineMode, EscalationStep, Policy, duration_text, parse_duration
from domain.summary import summarize
from settings import Settings
from tests.domain.support import REPORT_DUE, VISIT_START, checked_in, escalate, following_up, submitted


def test_defaults_are_the_documented_ones():
    policy = Policy()

    assert policy.timezone == "Asia/Shanghai"
    assert policy.report_deadline_mode is DeadlineMode.calendar_hours
    assert policy.report_deadline == timedelta(hours=48)
    assert policy.report_deadline_working_days == 2
    assert policy.reminder_before == timedelta(hours=24)
    assert policy.plan_lead_working_days == 1
    assert policy.check_in_grace == timedelta(hours=2)
    assert policy.weekend == [5, 6]
    assert policy.escalation_ladder == [
        EscalationStep(role=Role.manager, after=timedelta(0)),
        EscalationStep(role=Role.director, after=timedelta(hours=24)),
    ]


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "../etc/passwd", "/etc/localtime"])
def test_unknown_time_zone_is_refused(name: str):
    with pytest.raises(ValidationError, match="unknown time zone"):
        Policy(timezone=name)


def test_escalation_ladder_out_of_order_is_refused():
    with pytest.raises(ValidationError, match="escalation steps must be listed in order of time"):
        Policy(
            escalation_ladder=[
                EscalationStep(role=Role.director, after=timedelta(hours=24)),
                EscalationStep(role=Role.manager, after=timedelta(0)),
            ]
        )


def test_empty_escalation_ladder_is_refused():
    with pytest.raises(ValidationError, match="escalation_ladder"):
        Policy(escalation_ladder=[])


@pytest.mark.parametrize("role", [Role.rep, Role.auditor, Role.system])
def test_escalation_to_anyone_but_a_manager_or_director_is_refused(role: Role):
    with pytest.raises(ValidationError, match="escalations go to a manager or a director"):
        EscalationStep(role=role, after=timedelta(0))


def test_escalation_step_to_a_rep_is_refused_inside_a_policy_from_json():
    with pytest.raises(ValidationError, match="escalations go to a manager or a director"):
        Policy.model_validate({"escalation_ladder": [{"role": "rep", "after": "PT0S"}]})


def test_negative_escalation_delay_is_refused():
    with pytest.raises(ValidationError, match=r"after\n.*a duration cannot be negative"):
        EscalationStep(role=Role.manager, after=timedelta(hours=-1))


def test_weekend_day_out_of_range_is_refused():
    with pytest.raises(ValidationError, match="weekend days are numbered 0"):
        Policy(weekend=[5, 7])


def test_weekend_days_are_sorted_and_deduplicated():
    assert Policy(weekend=[6, 5, 6]).weekend == [5, 6]


@pytest.mark.parametrize(
    "figures",
    [
        {"report_deadline": "PT0S"},
        {"report_deadline_working_days": 0},
        {"reminder_before": "-PT1H"},
        {"plan_lead_working_days": -1},
        {"report_deadline_mode": "fortnights"},
        {"unknown_setting": 1},
    ],
    ids=["zero-deadline", "zero-working-days", "negative-reminder", "negative-lead", "unknown-mode", "extra"],
)
def test_impossible_figures_are_refused(figures: dict[str, object]):
    with pytest.raises(ValidationError):
        Policy.model_validate(figures)


def test_policy_round_trips_through_json_unchanged():
    policy = Policy(
        report_deadline_mode=DeadlineMode.working_days,
        report_deadline=timedelta(hours=1, minutes=30),
        holidays=[date(2026, 10, 1)],
        makeup_workdays=[date(2026, 10, 10)],
    )

    assert Policy.model_validate_json(policy.model_dump_json()) == policy


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("PT10M", timedelta(minutes=10)),
        ("PT48H", timedelta(hours=48)),
        ("P2D", timedelta(days=2)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("PT30S", timedelta(seconds=30)),
        ("P1DT2H", timedelta(hours=26)),
        ("PT0S", timedelta(0)),
        ("10m", timedelta(minutes=10)),
        ("48h", timedelta(hours=48)),
        ("2d", timedelta(days=2)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_a_duration_is_read_from_iso_8601_or_a_number_and_a_unit(text: str, duration: timedelta):
    assert parse_duration(text) == duration
    assert Policy(check_in_grace=text).check_in_grace == duration


def test_a_duration_is_taken_as_a_timedelta_from_python():
    assert Policy(report_deadline=timedelta(minutes=3)).report_deadline == timedelta(minutes=3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3600, "a duration is written in ISO 8601"),
        (1.5, "a duration is written in ISO 8601"),
        ("3600", "a duration is written in ISO 8601"),
        ("10 m", "a duration is written in ISO 8601"),
        ("10M", "a duration is written in ISO 8601"),
        ("1.5h", "a duration is written in ISO 8601"),
        ("pt10m", "a duration is written in ISO 8601"),
        ("P", "a duration is written in ISO 8601"),
        ("PT", "a duration is written in ISO 8601"),
        ("P1DT", "a duration is written in ISO 8601"),
        ("P1M", "a duration is written in ISO 8601"),
        ("P1W", "a duration is written in ISO 8601"),
        ("PT1M30", "a duration is written in ISO 8601"),
        ("PT0.5S", "a duration is written in ISO 8601"),
        ("", "a duration is written in ISO 8601"),
        (None, "a duration is written in ISO 8601"),
        ("-PT1H", "a duration cannot be negative"),
        ("-10m", "a duration cannot be negative"),
        (timedelta(minutes=-1), "a duration cannot be negative"),
        (timedelta(seconds=1, microseconds=500), "a duration is a whole number of seconds"),
        ("PT99999999999999999999H", "a duration this long cannot be a policy figure"),
    ],
)
def test_a_duration_in_any_other_form_is_refused_with_how_to_write_one(value: Any, message: str):
    with pytest.raises(ValidationError, match=message):
        Policy(reminder_before=value)


@pytest.mark.parametrize(
    ("figures", "message"),
    [
        ({"report_deadline": "PT0S"}, r"report_deadline\n.*must be at least PT1S"),
        ({"report_deadline": "P61D"}, r"report_deadline\n.*must be at most PT1440H \(60 days\)"),
        ({"reminder_before": "P31D"}, r"reminder_before\n.*must be at most PT720H"),
        ({"check_in_grace": "P31D"}, r"check_in_grace\n.*must be at most PT720H"),
        ({"escalation_ladder": [{"role": "manager", "after": "P366D"}]}, "must be at most PT8760H"),
    ],
)
def test_a_duration_outside_its_bounds_is_refused(figures: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        Policy.model_validate(figures)


def test_zero_durations_are_allowed_where_zero_means_none_or_at_once():
    policy = Policy(reminder_before="PT0S", check_in_grace="0m")

    assert (policy.reminder_before, policy.check_in_grace) == (timedelta(0), timedelta(0))


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=48), "PT48H"),
        (timedelta(days=2), "PT48H"),
        (timedelta(minutes=10), "PT10M"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(seconds=30), "PT30S"),
        (timedelta(hours=1, seconds=5), "PT1H5S"),
        (timedelta(0), "PT0S"),
        (timedelta(days=365), "PT8760H"),
    ],
)
def test_a_duration_is_written_as_one_canonical_iso_8601_text(duration: timedelta, text: str):
    assert duration_text(duration) == text
    assert parse_duration(text) == duration


def test_every_spelling_of_a_policy_records_the_same_json():
    # The policy is hashed inside the first event of every visit: one figure, one text.
    spellings = [
        {"report_deadline": "P2D", "reminder_before": "1440m", "check_in_grace": "PT120M"},
        {"report_deadline": "48h", "reminder_before": "PT24H", "check_in_grace": "7200s"},
        {"report_deadline": timedelta(days=2), "reminder_before": "1d", "check_in_grace": "2h"},
        {"report_deadline_hours": 48, "reminder_before_hours": 24, "check_in_grace_hours": 2},
    ]

    texts = {Policy.model_validate(figures).model_dump_json() for figures in spellings}

    assert texts == {Policy().model_dump_json()}
    recorded = json.loads(Policy().model_dump_json())
    assert (recorded["report_deadline"], recorded["reminder_before"], recorded["check_in_grace"]) == (
        "PT48H",
        "PT24H",
        "PT2H",
    )
    assert recorded["escalation_ladder"] == [
        {"role": "manager", "after": "PT0S"},
        {"role": "director", "after": "PT24H"},
    ]


def test_a_recorded_policy_reads_back_to_the_same_figures():
    policy = Policy.model_validate(
        {
            "report_deadline": "PT3M",
            "reminder_before": "PT1M",
            "check_in_grace": "PT1H30M",
            "escalation_ladder": [
                {"role": "manager", "after": "PT0S"},
                {"role": "director", "after": "PT2M"},
            ],
        }
    )

    again = Policy.model_validate(json.loads(policy.model_dump_json()))

    assert again == policy
    assert again.model_dump_json() == policy.model_dump_json()


# --- policies recorded in whole hours ------------------------------------------------------

OLD_SHAPE = {
    "timezone": "Asia/Shanghai",
    "report_deadline_mode": "calendar_hours",
    "report_deadline_hours": 24,
    "report_deadline_working_days": 2,
    "reminder_before_hours": 6,
    "escalation_ladder": [{"role": "manager", "after_hours": 0}, {"role": "director", "after_hours": 12}],
    "check_in_grace_hours": 1,
    "plan_lead_working_days": 1,
    "weekend": [5, 6],
    "holidays": [],
    "makeup_workdays": [],
}
"""A policy as every event recorded before durations holds it."""


def test_a_policy_recorded_in_whole_hours_loads_to_the_same_durations():
    policy = Policy.model_validate(OLD_SHAPE)

    assert policy.report_deadline == timedelta(hours=24)
    assert policy.reminder_before == timedelta(hours=6)
    assert policy.check_in_grace == timedelta(hours=1)
    assert [step.after for step in policy.escalation_ladder] == [timedelta(0), timedelta(hours=12)]
    assert Policy.model_validate_json(json.dumps(OLD_SHAPE)) == policy


def test_a_policy_recorded_in_whole_hours_folds_into_the_same_deadline():
    ended = VISIT_START + timedelta(hours=1)

    assert report_deadline(ended, Policy.model_validate(OLD_SHAPE)) == ended + timedelta(hours=24)


def test_reading_an_old_policy_leaves_the_stored_payload_as_it_was():
    stored = json.loads(json.dumps(OLD_SHAPE))

    Policy.model_validate(stored)

    assert stored == OLD_SHAPE


def test_the_old_and_the_new_name_of_a_duration_must_agree():
    with pytest.raises(ValidationError, match="report_deadline_hours and report_deadline disagree"):
        Policy.model_validate({"report_deadline_hours": 48, "report_deadline": "PT10M"})
    with pytest.raises(ValidationError, match="after_hours and after disagree"):
        EscalationStep.model_validate({"role": "manager", "after_hours": 1, "after": "PT2H"})

    same = Policy.model_validate({"report_deadline_hours": 48, "report_deadline": "P2D"})
    assert same.report_deadline == timedelta(hours=48)


@pytest.mark.parametrize("hours", [-1, "1.5", 1.5, True, "PT1H"])
def test_an_old_whole_hours_figure_that_is_not_whole_hours_is_refused(hours: Any):
    with pytest.raises(ValidationError):
        Policy.model_validate({"check_in_grace_hours": hours})


# --- settings -----------------------------------------------------------------------------


def test_a_duration_is_set_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VISITFLOW_POLICY__REPORT_DEADLINE", "PT10M")
    monkeypatch.setenv("VISITFLOW_POLICY__REMINDER_BEFORE", "2m")
    monkeypatch.setenv(
        "VISITFLOW_POLICY__ESCALATION_LADDER",
        '[{"role":"manager","after":"PT0S"},{"role":"director","after":"PT2M"}]',
    )

    policy = Settings().policy

    assert policy.report_deadline == timedelta(minutes=10)
    assert policy.reminder_before == timedelta(minutes=2)
    assert [step.after for step in policy.escalation_ladder] == [timedelta(0), timedelta(minutes=2)]


def test_the_old_whole_hours_environment_variables_are_still_read(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VISITFLOW_POLICY__REPORT_DEADLINE_HOURS", "24")
    monkeypatch.setenv("VISITFLOW_POLICY__CHECK_IN_GRACE_HOURS", "0")
    monkeypatch.setenv(
        "VISITFLOW_POLICY__ESCALATION_LADDER",
        '[{"role":"manager","after_hours":0},{"role":"director","after_hours":24}]',
    )

    policy = Settings().policy

    assert policy.report_deadline == timedelta(hours=24)
    assert policy.check_in_grace == timedelta(0)
    assert policy.escalation_ladder == Policy().escalation_ladder


def test_a_duration_in_the_environment_that_cannot_be_read_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VISITFLOW_POLICY__REPORT_DEADLINE", "ten minutes")

    with pytest.raises(ValidationError, match="a duration is written in ISO 8601"):
        Settings()


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
