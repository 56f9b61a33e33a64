"""Deputies (代理): a manager away names a deputy, who acts with their authority meanwhile.

The rules take the deputy's word that they stand in (`on_behalf_of`) only for the stream's
own manager and only from a manager; whether the directory names them deputy that day is
checked by the workflow before deciding (tests/test_deputies.py). The log records the act
as the deputy's, preceded by `DeputyActed` naming the absent manager.
"""

from domain.actors import Actor, Role
from domain.events import DeputyActed, PlanApproved
from tests.domain.support import (
    APPROVED_AT,
    MANAGER,
    REP,
    SUBMITTED_AT,
    Visit,
    approve_plan,
    checked_in,
    submit_plan,
    submitted,
    types,
    waive_report,
)

DEPUTY = Actor(id="mgr-deputy", role=Role.manager)


def test_a_deputy_approves_for_the_absent_manager_and_the_log_says_so():
    visit = submitted()
    command = approve_plan(DEPUTY).model_copy(update={"on_behalf_of": MANAGER.id})
    recorded = visit.apply(command, APPROVED_AT)
    assert types(recorded) == ["DeputyActed", "PlanApproved"]
    assert all(r.actor == DEPUTY for r in recorded)
    assert recorded[0].event == DeputyActed(for_id=MANAGER.id)
    assert isinstance(recorded[1].event, PlanApproved)
    assert visit.s.approved_by == DEPUTY


def test_without_standing_in_another_manager_is_refused_as_before():
    submitted().refuse(approve_plan(DEPUTY), APPROVED_AT, "role.approve_plan")


def test_a_deputy_stands_in_only_for_the_streams_own_manager_and_only_as_a_manager():
    visit = submitted()
    for_another = approve_plan(DEPUTY).model_copy(update={"on_behalf_of": "mgr-elsewhere"})
    assert (
        "stands in for the absent manager of this stream (mgr-1)"
        in visit.refuse(for_another, APPROVED_AT, "role.deputy").message
    )
    a_rep = approve_plan(REP).model_copy(update={"on_behalf_of": MANAGER.id})
    visit.refuse(a_rep, APPROVED_AT, "role.deputy")


def test_a_deputy_waives_a_missing_report_for_the_absent_manager():
    visit = checked_in()
    command = waive_report(DEPUTY).model_copy(update={"on_behalf_of": MANAGER.id})
    later = visit.s.report_due_at
    assert later is not None
    assert types(visit.apply(command, later)) == ["DeputyActed", "ReportWaived", "VisitClosed"]


def test_nobody_opens_a_visit_as_a_deputy():
    command = submit_plan(REP).model_copy(update={"on_behalf_of": MANAGER.id})
    Visit().refuse(command, SUBMITTED_AT, "role.deputy")
