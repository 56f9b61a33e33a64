"""Where a visit stands decides what may happen next: commands in the wrong state are refused."""

from collections.abc import Callable
from datetime import datetime

import pytest

from domain.commands import Command
from domain.decide import decide
from domain.errors import RuleViolation
from domain.events import ReportReturned
from domain.policy import Policy
from tests.domain.support import (
    APPROVED_AT,
    REVIEWED_AT,
    SUBMITTED_AT,
    Visit,
    accept_report,
    approve_plan,
    approved,
    at,
    cancel,
    check_in,
    checked_in,
    closed,
    complete_item,
    escalate,
    first,
    following_up,
    promised,
    reject_plan,
    remind,
    report_returned,
    reported,
    reschedule,
    return_plan,
    return_report,
    returned,
    revise_plan,
    submit_plan,
    submit_report,
    submitted,
    waive_report,
)

LATER = at("2026-11-26 10:00")
DAY_AFTER = at("2026-11-18 10:00")  # after approval, before the visit
VISIT_DAY = at("2026-11-23 12:00")

# (given visit, command, when, rule, a phrase the refusal must contain)
IN_WRONG_STATE = [
    (approved, revise_plan, DAY_AFTER, "state.revise_plan", "it is approved and has not been checked in"),
    (checked_in, revise_plan, LATER, "state.revise_plan", "it is waiting for the report"),
    (returned, approve_plan, DAY_AFTER, "state.approve_plan", "the rep has not resubmitted it"),
    (approved, approve_plan, DAY_AFTER, "state.approve_plan", "it is approved and has not been checked in"),
    (approved, reject_plan, DAY_AFTER, "state.reject_plan", "Cannot reject the plan on visit visit-1"),
    (returned, return_plan, DAY_AFTER, "state.return_plan", "its plan was returned for changes"),
    (approved, return_plan, DAY_AFTER, "state.return_plan", "it is approved"),
    (checked_in, reschedule, LATER, "state.reschedule", "Cannot reschedule the visit on visit visit-1"),
    (checked_in, cancel, LATER, "state.cancel", "Cannot cancel the visit"),
    (following_up, cancel, LATER, "state.cancel", "its promised items are being followed up"),
    (submitted, check_in, VISIT_DAY, "state.check_in", "only approved visits are executed, and its plan"),
    (returned, check_in, VISIT_DAY, "state.check_in", "only approved visits are executed"),
    (checked_in, check_in, LATER, "state.check_in", "it is waiting for the report"),
    (approved, submit_report, VISIT_DAY, "state.submit_report", "has not been checked in"),
    (reported, submit_report, LATER, "state.submit_report", "its report is waiting for review"),
    (checked_in, accept_report, LATER, "state.accept_report", "it is waiting for the report"),
    (following_up, accept_report, LATER, "state.accept_report", "being followed up"),
    (report_returned, accept_report, LATER, "state.accept_report", "its report was returned for revision"),
    (checked_in, return_report, LATER, "state.return_report", "it is waiting for the report"),
    (report_returned, return_report, LATER, "state.return_report", "returned for revision"),
    (reported, waive_report, LATER, "state.waive_report", "its report is waiting for review"),
    (approved, waive_report, DAY_AFTER, "state.waive_report", "has not been checked in"),
    (following_up, waive_report, LATER, "state.waive_report", "being followed up"),
]
WRONG_STATE = [pytest.param(*row, id=f"{row[3]}:{row[0].__name__}") for row in IN_WRONG_STATE]


@pytest.mark.parametrize(("given", "command", "when", "rule", "phrase"), WRONG_STATE)
def test_command_in_the_wrong_state_is_refused(
    given: Callable[[], Visit],
    command: Callable[[], Command],
    when: datetime,
    rule: str,
    phrase: str,
):
    visit = given()

    error = visit.refuse(command(), when, rule)

    assert phrase in error.message


def test_completing_an_item_before_any_report_names_the_unknown_item():
    visit = checked_in()

    error = visit.refuse(complete_item("quote"), LATER, "item.unknown")

    assert "Visit visit-1 has no promised item 'quote'" in error.message


EVERY_COMMAND = [
    pytest.param(revise_plan, id="revise"),
    pytest.param(approve_plan, id="approve"),
    pytest.param(reject_plan, id="reject"),
    pytest.param(return_plan, id="return-plan"),
    pytest.param(reschedule, id="reschedule"),
    pytest.param(cancel, id="cancel"),
    pytest.param(check_in, id="check-in"),
    pytest.param(submit_report, id="submit-report"),
    pytest.param(accept_report, id="accept"),
    pytest.param(return_report, id="return-report"),
    pytest.param(waive_report, id="waive"),
    pytest.param(complete_item, id="complete-item"),
    pytest.param(lambda: remind("report"), id="remind"),
    pytest.param(lambda: escalate("report"), id="escalate"),
]


@pytest.mark.parametrize("command", EVERY_COMMAND)
def test_closed_visit_records_nothing_more(command: Callable[[], Command]):
    visit = closed()

    error = visit.refuse(command(), LATER, "state.closed")

    assert error.message == "Visit visit-1 is closed (completed); nothing more can be recorded on it."


def test_closed_message_names_the_outcome():
    visit = submitted()
    visit.apply(reject_plan(), APPROVED_AT)

    error = visit.refuse(revise_plan(), APPROVED_AT, "state.closed")

    assert "is closed (rejected)" in error.message


def test_waived_visit_names_its_outcome_in_words():
    visit = checked_in()
    visit.apply(waive_report(), LATER)

    error = visit.refuse(submit_report(), LATER, "state.closed")

    assert "is closed (report waived)" in error.message


@pytest.mark.parametrize("command", EVERY_COMMAND)
def test_command_on_a_visit_without_a_plan_is_refused(command: Callable[[], Command]):
    visit = Visit()

    error = visit.refuse(command(), LATER, "visit.unknown")

    assert "submit its plan first" in error.message


def test_a_second_plan_for_the_same_visit_is_refused():
    visit = submitted()

    error = visit.refuse(submit_plan(), SUBMITTED_AT, "visit.exists")

    assert "Visit visit-1 already exists" in error.message


def test_a_visit_keeps_the_policy_it_was_started_with():
    # A later command is decided under the recorded policy, whatever policy is passed in:
    # a change of settings never moves the deadlines of visits already running.
    visit = reported()

    events = decide(visit.state, return_report(), REVIEWED_AT, Policy(report_deadline="PT1H"))

    assert first(events, ReportReturned).report_due_at == at("2026-11-26 15:00")


def test_decide_does_not_change_the_state_it_is_given():
    visit = reported([promised("quote")])
    before = visit.s.model_copy(deep=True)

    decide(visit.state, accept_report(), REVIEWED_AT, Policy())
    with pytest.raises(RuleViolation):
        decide(visit.state, waive_report(), REVIEWED_AT, Policy())

    assert visit.s == before
