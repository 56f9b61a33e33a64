"""The monthly plan's rules: who submits, approves and returns; the deadline's chase; the visits it opens.

Each test reads: given a plan in a named state, when a command at a time, then these events
(or this refusal). The default story is rep-1's plan for December 2026, opened on
2026-11-02 and due by the end of 2026-11-30 (Shanghai), i.e. 2026-12-01 00:00.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pytest

from domain.actors import SYSTEM, Actor, Role
from domain.alarms import AlarmKind
from domain.chain import HASHED_FIELDS, link_hash
from domain.commands import Escalate, Remind
from domain.customers import CustomerRecord
from domain.decide import decide as decide_visit
from domain.errors import RuleViolation
from domain.events import GENESIS_HASH, PlanApproved, PlanSubmitted
from domain.models import Customer, CustomerTier
from domain.month_plan import (
    PLAN_CONCERN,
    PLANS,
    ApproveMonthPlan,
    MonthPlanApproved,
    MonthPlanEscalated,
    MonthPlanOpened,
    MonthPlanReminderSent,
    MonthPlanState,
    MonthPlanStatus,
    MonthPlanSubmitted,
    OpenMonthPlan,
    PlanEvent,
    PlannedVisitNotStarted,
    PlannedVisitStarted,
    PlanSettings,
    RecordedPlanEvent,
    RecordVisitNotStarted,
    RecordVisitStarted,
    ReturnMonthPlan,
    SubmissionReview,
    SubmitMonthPlan,
    decide,
    evolve,
    fold,
    next_alarm,
    plan_due_at,
    plan_id_of,
    review_submission,
    summarize_plan,
    validate,
    visit_command_id,
    visit_opening,
)
from domain.plan_checks import Finding, Rule
from domain.planning import MonthPlanVisits, PlannedVisit, PlanRules, Severity
from domain.policy import EscalationStep, Policy
from tests.domain.support import AUDITOR, DIRECTOR, MANAGER, OTHER_DIRECTOR, OTHER_MANAGER, OTHER_REP, REP, at

MONTH = "2026-12"
OPENED_AT = at("2026-11-02 09:00")
DUE = at("2026-12-01 00:00")
SUBMITTED_AT = at("2026-11-20 10:00")
APPROVED_AT = at("2026-11-23 15:00")

ACME = Customer(id="C-17", name="Acme Trading", tier=CustomerTier.core)
XIHU = Customer(id="C-21", name="杭州西湖贸易有限公司", tier=CustomerTier.potential)


def cid() -> str:
    return str(uuid.uuid4())


def planned(visit_id: str, customer: Customer = ACME, when: str = "2026-12-07 10:00") -> PlannedVisit:
    return PlannedVisit(
        visit_id=visit_id, customer_id=customer.id, scheduled_start=at(when), purpose="Monthly review"
    )


VISITS = [
    planned("V-1", ACME, "2026-12-07 10:00"),
    planned("V-2", XIHU, "2026-12-09 14:00"),
    planned("V-3", ACME, "2026-12-21 10:00"),
]


def open_plan(actor: Actor = REP, **changes: object) -> OpenMonthPlan:
    fields: dict[str, object] = {
        "command_id": cid(),
        "actor": actor,
        "rep_id": REP.id,
        "manager_id": MANAGER.id,
        "director_id": DIRECTOR.id,
        "month": MONTH,
    }
    fields.update(changes)
    return OpenMonthPlan.model_validate(fields)


def submit(visits: list[PlannedVisit] | None = None, actor: Actor = REP) -> SubmitMonthPlan:
    return SubmitMonthPlan(command_id=cid(), actor=actor, visits=VISITS if visits is None else visits)


def approve(visit_ids: list[str] | None = None, actor: Actor = MANAGER) -> ApproveMonthPlan:
    return ApproveMonthPlan(command_id=cid(), actor=actor, visit_ids=visit_ids, comment="Go ahead")


def return_plan(actor: Actor = MANAGER) -> ReturnMonthPlan:
    return ReturnMonthPlan(command_id=cid(), actor=actor, reason="Visit Xihu twice")


REVIEW = SubmissionReview(customers=[ACME, XIHU])


def warning(message: str = "Acme is to be visited every 14 days") -> Finding:
    return Finding(rule=Rule.cadence, severity=Severity.warn, customer_id=ACME.id, message=message)


def blocker(visit_id: str = "V-1") -> Finding:
    return Finding(
        rule=Rule.lead_time,
        severity=Severity.block,
        customer_id=ACME.id,
        visit_id=visit_id,
        message=f"Visit {visit_id} must be planned at least 1 working day ahead",
    )


@dataclass
class MonthPlan:
    """One plan's state and log, moved forward command by command as the workflow does."""

    settings: PlanSettings = field(default_factory=lambda: PlanSettings(policy=Policy(), rules=PlanRules()))
    state: MonthPlanState | None = None
    log: list[RecordedPlanEvent] = field(default_factory=list)

    def decide(self, command, now: datetime, review: SubmissionReview | None = REVIEW) -> list[PlanEvent]:
        return decide(self.state, command, now, settings=self.settings, review=review)

    def apply(self, command, now: datetime, review: SubmissionReview = REVIEW) -> list[RecordedPlanEvent]:
        events = self.decide(command, now, review)
        recorded = PLANS.seal(
            events,
            stream_id=self.state.plan_id if self.state else plan_id_of(REP.id, MONTH),
            last_seq=self.state.last_seq if self.state else 0,
            head_hash=self.state.head_hash if self.state else "",
            actor=command.actor,
            command_id=command.command_id,
            occurred_at=now,
            event_ids=[cid() for _ in events],
        )
        self.state = fold(recorded, self.state)
        self.log.extend(recorded)
        return recorded

    def refuse(self, command, now: datetime, rule: str, review: SubmissionReview = REVIEW) -> RuleViolation:
        with pytest.raises(RuleViolation) as caught:
            self.decide(command, now, review)
        assert caught.value.rule == rule, caught.value.message
        return caught.value

    def fire(self, now: datetime) -> PlanEvent:
        """Apply the next alarm at its own instant (or `now`, if later), as the engine's timer does."""
        alarm = next_alarm(self.s, now)
        assert alarm is not None
        (recorded,) = self.apply(alarm.command(), max(now, alarm.at))
        return recorded.event

    @property
    def s(self) -> MonthPlanState:
        assert self.state is not None
        return self.state


def opened(**settings: object) -> MonthPlan:
    plan = MonthPlan(
        settings=PlanSettings(
            policy=settings.get("policy", Policy()),  # type: ignore[arg-type]
            rules=settings.get("rules", PlanRules()),  # type: ignore[arg-type]
        )
    )
    plan.apply(open_plan(), OPENED_AT)
    return plan


def submitted() -> MonthPlan:
    plan = opened()
    plan.apply(submit(), SUBMITTED_AT)
    return plan


def approved(visit_ids: list[str] | None = None, actor: Actor = MANAGER) -> MonthPlan:
    plan = submitted()
    plan.apply(approve(visit_ids, actor), APPROVED_AT)
    return plan


# --- opening ------------------------------------------------------------------------------------


def test_opening_records_the_due_time_at_the_end_of_the_month_before_in_the_company_zone():
    plan = opened()
    (event,) = [r.event for r in plan.log]
    assert isinstance(event, MonthPlanOpened)
    assert event.plan_id == "rep-1-2026-12" == plan.s.plan_id
    assert event.due_at == DUE  # the end of 2026-11-30 in Shanghai: 2026-11-30 16:00 UTC
    assert event.policy == Policy() and event.rules == PlanRules()
    assert plan.s.status is MonthPlanStatus.awaiting_plan


def test_a_submit_by_day_setting_moves_the_deadline_to_the_end_of_that_day():
    assert plan_due_at(MONTH, PlanRules(submit_by_day=25), Policy()) == at("2026-11-26 00:00")
    assert plan_due_at("2027-01", PlanRules(), Policy(timezone="Europe/Berlin")) == datetime.fromisoformat(
        "2027-01-01T00:00:00+01:00"
    )


@pytest.mark.parametrize(
    ("actor", "rule"),
    [
        (OTHER_REP, "role.open_month_plan"),
        (OTHER_MANAGER, "role.open_month_plan"),
        (AUDITOR, "role.auditor"),
    ],
)
def test_only_the_rep_their_manager_or_a_director_opens_a_plan(actor, rule):
    MonthPlan().refuse(open_plan(actor), OPENED_AT, rule)
    for allowed in (REP, MANAGER, OTHER_DIRECTOR):
        assert MonthPlan().decide(open_plan(allowed), OPENED_AT)


def test_a_plan_cannot_be_opened_for_a_month_that_is_over_or_twice_or_with_the_rep_as_manager():
    MonthPlan().refuse(open_plan(), at("2027-01-01 00:30"), "plan.month_over")
    assert MonthPlan().decide(open_plan(), at("2026-12-31 23:59"))  # the month itself still counts
    opened().refuse(open_plan(), OPENED_AT, "plan.exists")
    MonthPlan().refuse(open_plan(manager_id=REP.id), OPENED_AT, "plan.own_manager")


def test_a_malformed_month_is_refused_by_the_command_model():
    with pytest.raises(ValueError, match="YYYY-MM"):
        open_plan(month="2026-13")


# --- submission ---------------------------------------------------------------------------------


def test_submission_records_the_visits_a_snapshot_of_their_customers_and_the_findings():
    plan = opened()
    review = SubmissionReview(
        customers=[ACME, XIHU, Customer(id="C-99", name="Unplanned")], findings=[warning()]
    )
    (recorded,) = plan.apply(submit(), SUBMITTED_AT, review)
    event = recorded.event
    assert isinstance(event, MonthPlanSubmitted)
    assert (event.revision, event.late) == (1, False)
    assert event.visits == VISITS
    assert event.customers == [ACME, XIHU]  # the planned ones, once each, in plan order
    assert event.findings == [warning()]
    assert plan.s.status is MonthPlanStatus.submitted
    assert plan.s.customers == {"C-17": ACME, "C-21": XIHU}


@pytest.mark.parametrize(
    ("actor", "rule"),
    [(OTHER_REP, "role.submit_month_plan"), (MANAGER, "role.submit_month_plan"), (AUDITOR, "role.auditor")],
)
def test_only_the_plans_rep_submits_it(actor, rule):
    violation = opened().refuse(submit(actor=actor), SUBMITTED_AT, rule)
    if rule != "role.auditor":
        assert "Only the plan's rep (rep-1)" in violation.message


def test_blocking_findings_refuse_the_submission_listing_each_one():
    plan = opened()
    review = SubmissionReview(customers=[ACME, XIHU], findings=[warning(), blocker("V-1"), blocker("V-3")])
    violation = plan.refuse(submit(), SUBMITTED_AT, "plan.findings", review)
    assert "2 finding(s) block it" in violation.message
    assert "Visit V-1 must be planned" in violation.message and "Visit V-3" in violation.message
    assert "(plan.lead_time)" in violation.message
    assert "every 14 days" not in violation.message  # a warning does not stop it


def test_warnings_do_not_stop_a_submission():
    plan = opened()
    plan.apply(submit(), SUBMITTED_AT, SubmissionReview(customers=[ACME, XIHU], findings=[warning()]))
    assert plan.s.findings == [warning()]


def test_a_visit_with_a_customer_missing_from_the_registry_is_refused():
    violation = opened().refuse(
        submit(), SUBMITTED_AT, "plan.unknown_customer", SubmissionReview(customers=[ACME])
    )
    assert "C-21" in violation.message


@pytest.mark.parametrize(
    ("visits", "rule"),
    [
        ([], "plan.empty"),
        ([planned("V-1"), planned("V-1", XIHU)], "plan.duplicate_visit_id"),
        ([planned("V 1")], "plan.visit_id_invalid"),
        ([planned("-V1")], "plan.visit_id_invalid"),
    ],
)
def test_a_plan_must_list_visits_under_distinct_usable_ids(visits, rule):
    opened().refuse(submit(visits), SUBMITTED_AT, rule)


def test_the_validator_judges_all_but_the_review_and_decide_needs_the_review():
    plan = opened()
    validate(plan.s, submit(), SUBMITTED_AT)  # no registry needed: nothing to refuse yet
    with pytest.raises(RuleViolation) as caught:
        validate(plan.s, submit(actor=OTHER_REP), SUBMITTED_AT)
    assert caught.value.rule == "role.submit_month_plan"
    with pytest.raises(ValueError, match="review"):
        decide(plan.s, submit(), SUBMITTED_AT)


def test_the_rep_may_revise_until_approval_and_after_a_return():
    plan = submitted()
    plan.apply(submit(VISITS[:2]), SUBMITTED_AT + timedelta(hours=1))
    assert (plan.s.revision, plan.s.visits) == (2, VISITS[:2])
    plan.apply(return_plan(), SUBMITTED_AT + timedelta(hours=2))
    assert (plan.s.status, plan.s.last_reason) == (MonthPlanStatus.returned, "Visit Xihu twice")
    plan.apply(submit(), SUBMITTED_AT + timedelta(hours=3))
    assert (plan.s.status, plan.s.revision) == (MonthPlanStatus.submitted, 3)
    plan.apply(approve(), SUBMITTED_AT + timedelta(hours=4))
    violation = plan.refuse(submit(), SUBMITTED_AT + timedelta(hours=5), "state.submit_month_plan")
    assert "it is approved" in violation.message


def test_a_plan_submitted_after_its_deadline_is_marked_late_from_the_recorded_times():
    plan = opened()
    (recorded,) = plan.apply(submit(), DUE + timedelta(minutes=1))
    assert isinstance(recorded.event, MonthPlanSubmitted) and recorded.event.late
    assert plan.s.submitted_late
    plan.apply(submit(), DUE + timedelta(minutes=2))
    assert plan.s.first_submitted_at == DUE + timedelta(minutes=1)


def test_submitted_at_the_last_instant_of_the_due_day_is_on_time():
    plan = opened()
    (recorded,) = plan.apply(submit(), DUE)
    assert isinstance(recorded.event, MonthPlanSubmitted) and not recorded.event.late


# --- approval and return ------------------------------------------------------------------------


def test_approving_all_approves_every_planned_visit():
    plan = approved()
    event = plan.log[-1].event
    assert isinstance(event, MonthPlanApproved)
    assert (event.approved, event.declined, event.comment) == (["V-1", "V-2", "V-3"], [], "Go ahead")
    assert plan.s.status is MonthPlanStatus.approved
    assert plan.s.approved_by == MANAGER and plan.s.approved_at == APPROVED_AT
    assert plan.s.pending_starts() == ["V-1", "V-2", "V-3"]


def test_approving_part_declines_the_rest_in_plan_order():
    plan = approved(["V-3", "V-1", "V-1"])
    event = plan.log[-1].event
    assert isinstance(event, MonthPlanApproved)
    assert (event.approved, event.declined) == (["V-1", "V-3"], ["V-2"])


def test_approved_ids_must_be_planned_ones_and_at_least_one():
    plan = submitted()
    violation = plan.refuse(approve(["V-1", "V-9", "V-8"]), APPROVED_AT, "plan.unknown_visit")
    assert "V-8, V-9" in violation.message
    plan.refuse(approve([]), APPROVED_AT, "plan.approve_none")


def test_visits_whose_time_has_passed_cannot_be_approved():
    plan = submitted()
    late = at("2026-12-08 09:00")  # after V-1 (12-07), before V-2 and V-3
    violation = plan.refuse(approve(), late, "plan.approval_after_visit_time")
    assert "V-1" in violation.message and "V-2" not in violation.message
    plan.apply(approve(["V-2", "V-3"]), late)
    assert plan.s.approved == ["V-2", "V-3"]


@pytest.mark.parametrize(
    ("actor", "rule"),
    [
        (REP, "role.approve_month_plan"),
        (OTHER_MANAGER, "role.approve_month_plan"),
        (OTHER_DIRECTOR, "role.approve_month_plan"),
        (AUDITOR, "role.auditor"),
        (SYSTEM, "role.system"),
    ],
)
def test_only_the_plans_manager_or_its_director_approves(actor, rule):
    submitted().refuse(approve(actor=actor), APPROVED_AT, rule)


def test_the_plans_director_approves_and_becomes_the_approver():
    plan = approved(actor=DIRECTOR)
    assert plan.s.approved_by == DIRECTOR


@pytest.mark.parametrize("actor", [REP, OTHER_MANAGER, AUDITOR])
def test_only_the_manager_or_a_director_returns_a_plan(actor):
    rule = "role.auditor" if actor is AUDITOR else "role.return_month_plan"
    submitted().refuse(return_plan(actor), APPROVED_AT, rule)


def test_only_a_submitted_plan_is_approved_or_returned():
    plan = opened()
    violation = plan.refuse(approve(), APPROVED_AT, "state.approve_month_plan")
    assert "no plan has been submitted yet" in violation.message
    plan.refuse(return_plan(), APPROVED_AT, "state.return_month_plan")
    plan.apply(submit(), SUBMITTED_AT)
    plan.apply(return_plan(), APPROVED_AT)
    violation = plan.refuse(approve(), APPROVED_AT, "state.approve_month_plan")
    assert "returned for changes" in violation.message
    done = approved()
    done.refuse(approve(), APPROVED_AT, "state.approve_month_plan")
    done.refuse(return_plan(), APPROVED_AT, "state.return_month_plan")


# --- the deadline -------------------------------------------------------------------------------


def test_a_missing_plan_is_reminded_then_escalated_to_the_manager_then_the_director_on_time():
    plan = opened()
    reminder = plan.fire(OPENED_AT)
    assert isinstance(reminder, MonthPlanReminderSent)
    assert plan.log[-1].occurred_at == DUE - timedelta(hours=24)
    assert reminder.recipient == Actor(id=REP.id, role=Role.rep) and reminder.due_at == DUE
    assert "2026-12-01 00:00 CST" in reminder.message
    first = plan.fire(OPENED_AT)
    assert isinstance(first, MonthPlanEscalated) and plan.log[-1].occurred_at == DUE
    assert (first.level, first.recipient, first.scheduled_for) == (
        1,
        Actor(id=MANAGER.id, role=Role.manager),
        DUE,
    )
    second = plan.fire(OPENED_AT)
    assert isinstance(second, MonthPlanEscalated) and plan.log[-1].occurred_at == DUE + timedelta(hours=24)
    assert (second.level, second.recipient) == (2, Actor(id=DIRECTOR.id, role=Role.director))
    assert "has not been submitted" in second.message
    assert next_alarm(plan.s, DUE + timedelta(days=5)) is None  # the ladder is spent; the plan stays open
    assert (plan.s.reminded, plan.s.escalation_level) == (True, 2)


def test_a_submitted_plan_is_not_chased_but_a_returned_one_is_escalated_further_at_once():
    plan = submitted()
    assert next_alarm(plan.s, SUBMITTED_AT) is None
    plan.apply(return_plan(), DUE + timedelta(hours=30))
    alarm = next_alarm(plan.s, DUE + timedelta(hours=30))
    assert alarm is not None and alarm.kind is AlarmKind.escalate and alarm.level == 1
    assert alarm.at == DUE  # already due: the timer fires at once
    escalated = plan.fire(DUE + timedelta(hours=30))
    assert isinstance(escalated, MonthPlanEscalated) and "was returned for changes" in escalated.message


def test_a_plan_opened_after_its_deadline_skips_the_reminder_and_escalates_at_once():
    plan = MonthPlan()
    plan.apply(open_plan(), DUE + timedelta(days=2))
    alarm = next_alarm(plan.s, DUE + timedelta(days=2))
    assert alarm is not None and (alarm.kind, alarm.level, alarm.at) == (AlarmKind.escalate, 1, DUE)


def test_a_policy_without_reminders_and_with_a_three_step_ladder_is_followed():
    ladder = [
        EscalationStep(role=Role.manager, after=timedelta(0)),
        EscalationStep(role=Role.manager, after=timedelta(hours=12)),
        EscalationStep(role=Role.director, after=timedelta(hours=48)),
    ]
    plan = MonthPlan(
        settings=PlanSettings(
            policy=Policy(reminder_before=timedelta(0), escalation_ladder=ladder), rules=PlanRules()
        )
    )
    plan.apply(open_plan(director_id=None), OPENED_AT)
    levels = []
    for _ in ladder:
        event = plan.fire(OPENED_AT)
        assert isinstance(event, MonthPlanEscalated)
        levels.append((event.level, event.recipient.id, plan.log[-1].occurred_at - DUE))
    assert levels == [
        (1, MANAGER.id, timedelta(0)),
        (2, MANAGER.id, timedelta(hours=12)),
        (3, "directors", timedelta(hours=48)),
    ]


def test_reminders_and_escalations_are_the_engines_alone_and_only_when_due():
    plan = opened()
    reminder = Remind(command_id=cid(), actor=SYSTEM, concern=PLAN_CONCERN)
    escalation = Escalate(command_id=cid(), actor=SYSTEM, concern=PLAN_CONCERN, level=1)
    plan.refuse(reminder, OPENED_AT, "timer.remind")
    plan.refuse(escalation, DUE - timedelta(minutes=1), "timer.escalate")
    plan.refuse(escalation.model_copy(update={"level": 2}), DUE, "timer.escalate")
    plan.refuse(
        Remind(command_id=cid(), actor=REP, concern=PLAN_CONCERN), DUE - timedelta(hours=1), "role.timer"
    )
    plan.refuse(reminder.model_copy(update={"concern": "report"}), DUE - timedelta(hours=1), "timer.remind")
    submitted().refuse(escalation, DUE, "timer.escalate")


# --- the visits an approval opens ---------------------------------------------------------------


def test_each_approved_visit_opens_approved_by_the_plans_approver_under_a_derived_command_id():
    plan = approved(["V-1", "V-2"])
    command = visit_opening(plan.s, "V-2")
    assert command.visit_id == "V-2" and command.command_id == "rep-1-2026-12/V-2"
    assert command.actor == REP and (command.rep_id, command.manager_id, command.director_id) == (
        REP.id,
        MANAGER.id,
        DIRECTOR.id,
    )
    assert command.plan.customer == XIHU and command.plan.scheduled_start == at("2026-12-09 14:00")
    assert command.approved_by == MANAGER and command.approval_comment == "Go ahead"
    events = decide_visit(None, command, APPROVED_AT, Policy())
    assert [type(e) for e in events] == [PlanSubmitted, PlanApproved]  # the visit opens approved
    assert visit_opening(plan.s, "V-2") == command  # the same command every time
    with pytest.raises(ValueError, match="not an approved visit"):
        visit_opening(plan.s, "V-3")


def test_a_very_long_visit_command_id_is_hashed_to_fit():
    long = visit_command_id("r" * 190 + "-2026-12", "V-1")
    assert long.startswith("month-plan/") and len(long) <= 200
    assert long == visit_command_id("r" * 190 + "-2026-12", "V-1")


def test_started_visits_are_recorded_by_the_engine_once_each_and_complete_the_plan():
    plan = approved(["V-1", "V-3"])
    started = RecordVisitStarted(command_id=cid(), actor=SYSTEM, visit_id="V-1", workflow_id="visit-V-1")
    plan.refuse(started.model_copy(update={"actor": MANAGER}), APPROVED_AT, "role.record_visit_started")
    plan.refuse(started.model_copy(update={"visit_id": "V-2"}), APPROVED_AT, "plan.visit_not_approved")
    (recorded,) = plan.apply(started, APPROVED_AT)
    assert recorded.event == PlannedVisitStarted(visit_id="V-1", workflow_id="visit-V-1")
    plan.refuse(started, APPROVED_AT, "plan.visit_already_recorded")
    assert not plan.s.complete and plan.s.pending_starts() == ["V-3"]
    refused = RecordVisitNotStarted(
        command_id=cid(), actor=SYSTEM, visit_id="V-3", rule="visit.exists", reason="Visit V-3 exists."
    )
    (recorded,) = plan.apply(refused, APPROVED_AT)
    assert isinstance(recorded.event, PlannedVisitNotStarted)
    assert plan.s.complete and plan.s.started == {"V-1": "visit-V-1"}
    assert plan.s.not_started["V-3"].rule == "visit.exists"
    submitted().refuse(started, APPROVED_AT, "plan.visit_not_approved")


def test_an_event_after_the_plan_is_complete_does_not_follow():
    plan = approved(["V-1"])
    plan.apply(
        RecordVisitStarted(command_id=cid(), actor=SYSTEM, visit_id="V-1", workflow_id="visit-V-1"),
        APPROVED_AT,
    )
    assert plan.s.complete
    late = plan.log[-1].model_copy(update={"seq": plan.s.last_seq + 1})
    with pytest.raises(ValueError, match="after the plan was complete"):
        evolve(plan.s, late)


# --- the log ------------------------------------------------------------------------------------


def test_plan_rows_chain_like_visit_rows_with_the_stream_named_plan_id():
    plan = approved()
    assert [r.seq for r in plan.log] == [1, 2, 3]
    assert plan.log[0].prev_hash == GENESIS_HASH
    for before, after in zip(plan.log, plan.log[1:], strict=False):
        assert after.prev_hash == before.hash
    for row in plan.log:
        content = row.content()
        assert tuple(content) == ("plan_id", *HASHED_FIELDS[1:]) and content["plan_id"] == "rep-1-2026-12"
        assert row.hash == link_hash(row.prev_hash, content)


def test_folding_the_log_again_gives_the_same_state_and_an_event_before_opening_is_refused():
    plan = approved(["V-2"])
    assert fold(plan.log) == plan.s
    with pytest.raises(ValueError, match="before the plan was opened"):
        evolve(None, plan.log[1])


def test_the_read_model_row_counts_the_plan():
    plan = approved(["V-2"])
    row = summarize_plan(plan.s)
    assert (row.status, row.planned, row.approved, row.declined, row.started) == ("approved", 3, 1, 2, 0)
    assert (row.month, row.due_at, row.last_seq, row.head_hash) == (MONTH, DUE, 3, plan.s.head_hash)


# --- the review -------------------------------------------------------------------------------


def test_the_review_runs_the_plan_checks_and_keeps_no_contacts():
    records = [
        CustomerRecord(
            id=c.id,
            name=c.name,
            tier=c.tier,
            owner_rep_id=REP.id,
            manager_id=MANAGER.id,
            contacts=[{"name": "Ms Zhou", "phone": "138"}],
        )
        for c in (ACME, XIHU)
    ] + [
        CustomerRecord(
            id="C-50", name="Riverside", tier=CustomerTier.core, owner_rep_id="rep-2", manager_id="m"
        )
    ]
    review = review_submission(
        MonthPlanVisits(
            rep_id=REP.id, month=MONTH, visits=[*VISITS, planned("V-4", Customer(id="C-50", name="x"))]
        ),
        submitted_at=SUBMITTED_AT,
        rules=PlanRules(),
        policy=Policy(),
        customers=records,
        previous_plan=None,
        last_visits={ACME.id: date(2026, 11, 30)},
    )
    assert review.customers == [ACME, XIHU]
    assert "contacts" not in review.model_dump_json()
    rules = {(f.rule, f.visit_id) for f in review.findings}
    assert (Rule.unknown_customer, "V-4") in rules
    plan = opened()
    violation = plan.refuse(
        submit([*VISITS, planned("V-4", Customer(id="C-50", name="x"))]),
        SUBMITTED_AT,
        "plan.findings",
        review,
    )
    assert "plan.unknown_customer" in violation.message
