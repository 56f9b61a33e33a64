"""Who may do what: every command refused to the wrong actor names the rule and says why."""

from collections.abc import Callable
from datetime import datetime

import pytest

from domain.actors import Actor, Role
from domain.commands import Command
from domain.decide import decide
from domain.errors import RuleViolation
from domain.policy import Policy
from tests.domain.support import (
    APPROVED_AT,
    AUDITOR,
    CHECKED_IN_AT,
    DIRECTOR,
    ENGINE,
    MANAGER,
    OTHER_DIRECTOR,
    OTHER_MANAGER,
    OTHER_REP,
    REP,
    REPORTED_AT,
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
    complete_item,
    escalate,
    following_up,
    promised,
    reject_plan,
    remind,
    reported,
    reschedule,
    return_plan,
    return_report,
    revise_plan,
    submit_plan,
    submit_report,
    submitted,
    waive_report,
)

# (given visit, command made for an actor, when) for every command on an existing visit.
Case = tuple[Callable[[], Visit], Callable[[Actor], Command], datetime]

REVISE: Case = (submitted, lambda a: revise_plan(a), APPROVED_AT)
APPROVE: Case = (submitted, approve_plan, APPROVED_AT)
REJECT: Case = (submitted, reject_plan, APPROVED_AT)
RETURN_PLAN: Case = (submitted, return_plan, APPROVED_AT)
RESCHEDULE: Case = (approved, lambda a: reschedule(a), at("2026-11-18 10:00"))
CANCEL: Case = (approved, cancel, at("2026-11-18 10:00"))
CHECK_IN: Case = (approved, lambda a: check_in(a), CHECKED_IN_AT)
SUBMIT_REPORT: Case = (checked_in, lambda a: submit_report(a), REPORTED_AT)
ACCEPT: Case = (reported, accept_report, REVIEWED_AT)
RETURN_REPORT: Case = (reported, return_report, REVIEWED_AT)
WAIVE: Case = (checked_in, waive_report, at("2026-11-26 10:00"))
COMPLETE: Case = (following_up, lambda a: complete_item("quote", a), at("2026-11-26 10:00"))
REMIND: Case = (checked_in, lambda a: remind("report", a), at("2026-11-24 10:00"))
ESCALATE: Case = (checked_in, lambda a: escalate("report", 1, a), at("2026-11-25 10:00"))

# (case, actor, rule, a phrase the refusal must contain)
REFUSED_TO = [
    # Only the visit's own rep revises, checks in and reports.
    (REVISE, MANAGER, "role.revise_plan", "Only the visit's rep (rep-1) may revise the plan"),
    (REVISE, DIRECTOR, "role.revise_plan", "dir-1 acts as director"),
    (REVISE, OTHER_REP, "role.revise_plan", "rep-2 acts as rep"),
    (CHECK_IN, MANAGER, "role.check_in", "Only the visit's rep (rep-1) may check in"),
    (CHECK_IN, DIRECTOR, "role.check_in", "dir-1 acts as director"),
    (CHECK_IN, OTHER_REP, "role.check_in", "rep-2 acts as rep"),
    (SUBMIT_REPORT, MANAGER, "role.submit_report", "may submit the report; mgr-1 acts as manager"),
    (SUBMIT_REPORT, OTHER_REP, "role.submit_report", "rep-2 acts as rep"),
    # Only the visit's manager or its director decides on plans and reports.
    (APPROVE, REP, "role.approve_plan", "Only the visit's manager (mgr-1) or its director (dir-1)"),
    (APPROVE, OTHER_MANAGER, "role.approve_plan", "mgr-2 acts as manager"),
    (APPROVE, OTHER_DIRECTOR, "role.approve_plan", "dir-2 acts as director"),
    (APPROVE, OTHER_REP, "role.approve_plan", "may approve the plan; rep-2 acts as rep"),
    (REJECT, REP, "role.reject_plan", "may reject the plan"),
    (REJECT, OTHER_MANAGER, "role.reject_plan", "mgr-2 acts as manager"),
    (RETURN_PLAN, REP, "role.return_plan", "may return the plan"),
    (RETURN_PLAN, OTHER_DIRECTOR, "role.return_plan", "dir-2 acts as director"),
    (ACCEPT, REP, "role.accept_report", "may accept the report"),
    (ACCEPT, OTHER_MANAGER, "role.accept_report", "mgr-2 acts as manager"),
    (RETURN_REPORT, REP, "role.return_report", "may return the report"),
    (RETURN_REPORT, OTHER_MANAGER, "role.return_report", "mgr-2 acts as manager"),
    (WAIVE, REP, "role.waive_report", "may waive the report"),
    (WAIVE, OTHER_DIRECTOR, "role.waive_report", "dir-2 acts as director"),
    # The rep or an approver may move or cancel the visit; nobody else.
    (RESCHEDULE, OTHER_REP, "role.reschedule", "may reschedule the visit; rep-2 acts as rep"),
    (RESCHEDULE, OTHER_MANAGER, "role.reschedule", "mgr-2 acts as manager"),
    (CANCEL, OTHER_REP, "role.cancel", "may cancel the visit; rep-2 acts as rep"),
    (CANCEL, OTHER_DIRECTOR, "role.cancel", "dir-2 acts as director"),
    # A promised item is completed by the rep or its owner.
    (COMPLETE, MANAGER, "role.complete_item", "or the item's owner (rep-1)"),
    (COMPLETE, OTHER_REP, "role.complete_item", "rep-2 acts as rep"),
    # Timers belong to the engine.
    (REMIND, REP, "role.timer", "engine's timers only"),
    (REMIND, MANAGER, "role.timer", "engine's timers only"),
    (ESCALATE, MANAGER, "role.timer", "engine's timers only"),
    (ESCALATE, DIRECTOR, "role.timer", "engine's timers only"),
]
REFUSED = [pytest.param(*row, id=f"{row[2]}:{row[1].id}") for row in REFUSED_TO]


@pytest.mark.parametrize(("case", "actor", "rule", "phrase"), REFUSED)
def test_command_by_the_wrong_actor_is_refused(case: Case, actor: Actor, rule: str, phrase: str):
    given, command, when = case
    visit = given()

    error = visit.refuse(command(actor), when, rule)

    assert phrase in error.message


ALL_CASES = [
    pytest.param(REVISE, id="revise"),
    pytest.param(APPROVE, id="approve"),
    pytest.param(REJECT, id="reject"),
    pytest.param(RETURN_PLAN, id="return-plan"),
    pytest.param(RESCHEDULE, id="reschedule"),
    pytest.param(CANCEL, id="cancel"),
    pytest.param(CHECK_IN, id="check-in"),
    pytest.param(SUBMIT_REPORT, id="submit-report"),
    pytest.param(ACCEPT, id="accept"),
    pytest.param(RETURN_REPORT, id="return-report"),
    pytest.param(WAIVE, id="waive"),
    pytest.param(COMPLETE, id="complete-item"),
    pytest.param(REMIND, id="remind"),
    pytest.param(ESCALATE, id="escalate"),
]


@pytest.mark.parametrize("case", ALL_CASES)
def test_auditor_never_changes_a_visit(case: Case):
    given, command, when = case
    visit = given()

    error = visit.refuse(command(AUDITOR), when, "role.auditor")

    assert "Auditors read visits" in error.message


def test_auditor_cannot_submit_a_plan():
    error = Visit().refuse(submit_plan(AUDITOR), SUBMITTED_AT, "role.auditor")

    assert "never change" in error.message


NON_TIMER_CASES = [p for p in ALL_CASES if p.id not in ("remind", "escalate")]


@pytest.mark.parametrize("case", NON_TIMER_CASES)
def test_engine_only_issues_reminders_and_escalations(case: Case):
    given, command, when = case
    visit = given()

    error = visit.refuse(command(ENGINE), when, "role.system")

    assert "only issues reminders and escalations" in error.message


def test_engine_cannot_submit_a_plan():
    error = Visit().refuse(submit_plan(ENGINE), SUBMITTED_AT, "role.submit_plan")

    assert "visitflow acts as system" in error.message


@pytest.mark.parametrize(
    "actor",
    [pytest.param(OTHER_REP, id="another-rep"), pytest.param(OTHER_MANAGER, id="another-manager")],
)
def test_only_the_rep_its_manager_or_a_director_may_submit_a_plan(actor: Actor):
    error = Visit().refuse(submit_plan(actor), SUBMITTED_AT, "role.submit_plan")

    assert "Only the visit's rep (rep-1), its manager or a director may submit" in error.message


def test_the_visits_manager_may_submit_the_plan():
    visit = Visit()

    visit.apply(submit_plan(MANAGER), SUBMITTED_AT)

    assert visit.s.manager_id == "mgr-1"


def test_a_rep_cannot_be_their_own_approving_manager():
    error = Visit().refuse(submit_plan(manager_id=REP.id), SUBMITTED_AT, "plan.own_manager")

    assert "cannot be the manager who approves their own plan" in error.message


@pytest.mark.parametrize(
    "approver",
    [
        pytest.param(REP, id="the-rep"),
        pytest.param(OTHER_MANAGER, id="another-manager"),
        pytest.param(OTHER_DIRECTOR, id="another-director"),
        pytest.param(Actor(id="mgr-1", role=Role.rep), id="manager-id-as-rep"),
    ],
)
def test_pre_approval_must_come_from_the_visits_manager_or_director(approver: Actor):
    error = Visit().refuse(submit_plan(approved_by=approver), SUBMITTED_AT, "role.approve_plan")

    assert "can only be approved by the visit's manager (mgr-1)" in error.message


def test_any_director_may_decide_when_the_visit_names_none():
    visit = submitted(director_id=None)

    visit.apply(approve_plan(OTHER_DIRECTOR), APPROVED_AT)

    assert visit.s.approved_by == OTHER_DIRECTOR


def test_refusal_message_names_a_director_when_the_visit_has_none():
    visit = submitted(director_id=None)

    error = visit.refuse(approve_plan(OTHER_MANAGER), APPROVED_AT, "role.approve_plan")

    assert "Only the visit's manager (mgr-1) or a director may approve the plan" in error.message


def test_rep_id_acting_in_another_role_is_not_the_rep():
    visit = approved()
    impostor = Actor(id=REP.id, role=Role.manager)

    visit.refuse(check_in(impostor), CHECKED_IN_AT, "role.check_in")


def test_item_owner_acting_as_auditor_cannot_complete_it():
    visit = reported([promised("install", owner_id="audit-1")])

    visit.refuse(complete_item("install", AUDITOR), at("2026-11-26 10:00"), "role.auditor")


def test_rule_violation_reads_as_its_message():
    visit = submitted()

    with pytest.raises(RuleViolation) as caught:
        decide(visit.state, approve_plan(REP), APPROVED_AT, Policy())

    assert str(caught.value) == caught.value.message
    assert caught.value.message.endswith("rep-1 acts as rep.")
