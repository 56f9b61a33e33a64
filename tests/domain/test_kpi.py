"""Monthly KPIs: every figure of a simulated November 2026 checked against a hand count.

The visits are driven through the real rules (`decide`) with `VisitDriver`, so the events
are those the workflow would record. All times are Shanghai wall-clock times.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from domain.actors import Actor, Role
from domain.commands import (
    AcceptReport,
    ApprovePlan,
    CancelVisit,
    CheckIn,
    CompleteItem,
    Reschedule,
    SubmitPlan,
    SubmitReport,
)
from domain.customers import CustomerRecord
from domain.events import RecordedEvent
from domain.kpi import RepMonthKpi, TierCadence, kept_cadence, kpis, month_bounds
from domain.models import Customer, CustomerTier, Execution, Plan, PromisedItemIn, Report
from domain.planning import PlanRules
from tests.helpers import VisitDriver

SHANGHAI = ZoneInfo("Asia/Shanghai")
MANAGER = Actor(id="mgr-1", role=Role.manager)
CADENCE = PlanRules().cadence_days  # core 14, potential 31, regular 62, assist 14 days
MONTH = "2026-11"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


AS_OF = at("2026-12-05 00:00")


def _id() -> str:
    return uuid.uuid4().hex[:12]


class V:
    """One visit, driven command by command; each method returns the visit for chaining."""

    def __init__(self, rep: str, customer: str, tier: str, start: str, name: str = "") -> None:
        self.rep = Actor(id=rep, role=Role.rep)
        self.start = at(start)
        self.end = self.start + timedelta(minutes=30)
        self.driver = VisitDriver()
        plan = Plan(
            customer=Customer(id=customer, name=f"Customer {customer}", tier=tier),
            scheduled_start=self.start,
            duration_minutes=30,
            purpose="Monthly review",
        )
        submit = SubmitPlan(
            command_id=_id(),
            actor=self.rep,
            visit_id=name or f"v-{_id()}",
            rep_id=rep,
            manager_id=MANAGER.id,
            plan=plan,
        )
        self.driver.send(submit, self.start - timedelta(days=7))

    def approve(self) -> V:
        self.driver.send(ApprovePlan(command_id=_id(), actor=MANAGER), self.start - timedelta(days=6))
        return self

    def check_in(self) -> V:
        execution = Execution(method="on_site", started_at=self.start, ended_at=self.end)
        self.driver.send(CheckIn(command_id=_id(), actor=self.rep, execution=execution), self.end)
        return self

    def report(self, when: str, *items: tuple[str, str]) -> V:
        promised = [
            PromisedItemIn(item_id=i, description=f"promise {i}", owner_id=self.rep.id, due_at=at(due))
            for i, due in items
        ]
        body = Report(outcome="Trial order agreed", promised_items=promised)
        self.driver.send(SubmitReport(command_id=_id(), actor=self.rep, report=body), at(when))
        self.driver.send(AcceptReport(command_id=_id(), actor=MANAGER), at(when) + timedelta(minutes=30))
        return self

    def complete(self, item: str, when: str) -> V:
        done = CompleteItem(command_id=_id(), actor=self.rep, item_id=item, resolution="done")
        self.driver.send(done, at(when))
        return self

    def cancel(self, when: str) -> V:
        self.driver.send(CancelVisit(command_id=_id(), actor=self.rep, reason="closed"), at(when))
        return self

    def reschedule(self, to: str, when: str) -> V:
        move = Reschedule(command_id=_id(), actor=self.rep, scheduled_start=at(to), reason="asked")
        self.driver.send(move, at(when))
        return self

    def alarms(self, *expected: str) -> V:
        """Fire the engine's next alarms, checking each one's kind and instant."""
        for text in expected:
            request = self.driver.fire_next_alarm()
            fired = request.events[0]
            assert f"{fired.type}@{fired.occurred_at.astimezone(SHANGHAI):%m-%d %H:%M}" == text
        return self

    @property
    def events(self) -> list[RecordedEvent]:
        return [e for request in self.driver.requests for e in request.events]


@cache
def november() -> tuple[V, ...]:
    """The month's visits (hand counts in the tests below)."""
    return (
        # rep-a, before November: C1's last October visit left a promise open (due 11-05).
        V("rep-a", "C1", "core", "2026-10-22 10:00")
        .approve()
        .check_in()
        .report("2026-10-23 09:00", ("oct-1", "2026-11-05 18:00"))
        .alarms("ReminderSent@11-04 18:00", "Escalated@11-05 18:00", "Escalated@11-06 18:00"),
        V("rep-a", "C6", "potential", "2026-10-20 10:00").approve().check_in().report("2026-10-20 15:00"),
        V("rep-a", "C3", "regular", "2026-10-05 10:00").approve().check_in().report("2026-10-05 15:00"),
        # rep-a, November.
        V("rep-a", "C4", "assist", "2026-11-01 00:30", "a0-half-past-midnight")  # 10-31 16:30 UTC
        .approve()
        .check_in()
        .report("2026-11-02 09:00"),
        V("rep-a", "C1", "core", "2026-11-02 10:00")
        .approve()
        .check_in()
        .report("2026-11-03 09:00", ("a1", "2026-11-10 18:00"))
        .complete("a1", "2026-11-09 10:00"),
        V("rep-a", "C1", "core", "2026-11-16 10:00", "a2-late-5h")
        .approve()
        .check_in()
        .alarms("ReminderSent@11-17 10:30", "Escalated@11-18 10:30")
        .report("2026-11-18 15:30", ("a2", "2026-11-20 18:00"))
        .alarms("ReminderSent@11-19 18:00", "Escalated@11-20 18:00")
        .complete("a2", "2026-11-22 10:00"),
        V("rep-a", "C2", "potential", "2026-11-20 14:00", "a3-missed")
        .approve()
        .alarms("Escalated@11-20 16:30", "Escalated@11-21 16:30"),
        V("rep-a", "C3", "regular", "2026-11-25 10:00", "a4-cancelled").approve().cancel("2026-11-24 09:00"),
        V("rep-a", "C1", "core", "2026-11-28 10:00")
        .approve()
        .check_in()
        .report("2026-11-29 10:00", ("a5", "2026-12-10 18:00")),
        V("rep-a", "C2", "potential", "2026-11-10 10:00")
        .approve()
        .check_in()
        .report("2026-11-10 15:00", ("a6", "2026-11-25 18:00")),
        V("rep-a", "C4", "assist", "2026-12-01 00:30", "a-december").approve(),  # 11-30 16:30 UTC
        # rep-b.
        V("rep-b", "C5", "core", "2026-10-25 10:00").approve().check_in().report("2026-10-25 15:00"),
        V("rep-b", "C5", "core", "2026-11-05 10:00", "b1-late-10h")
        .approve()
        .check_in()
        .report("2026-11-07 20:30"),
        V("rep-b", "C5", "core", "2026-11-12 10:00", "b2-late-30h")
        .approve()
        .check_in()
        .alarms("ReminderSent@11-13 10:30", "Escalated@11-14 10:30", "Escalated@11-15 10:30")
        .report("2026-11-15 16:30"),
        V("rep-b", "C7", "regular", "2026-11-26 10:00", "b3-never-approved").alarms("Escalated@11-26 10:00"),
        V("rep-b", "C7", "regular", "2026-11-27 10:00", "b4-moved-to-december")
        .approve()
        .reschedule("2026-12-03 10:00", "2026-11-22 09:00"),
        V("rep-b", "C8", "assist", "2026-11-20 10:00", "b5-no-report").approve().check_in(),
        V("rep-b", "C8", "assist", "2026-11-24 10:00", "b6-late-2h")
        .approve()
        .check_in()
        .report("2026-11-26 12:30"),
    )


def logs() -> list[list[RecordedEvent]]:
    return [v.events for v in november()]


def figures(
    as_of: datetime = AS_OF, customers: Sequence[CustomerRecord] = (), month: str = MONTH
) -> dict[str | None, RepMonthKpi]:
    rows = kpis(logs(), month, as_of=as_of, cadence_days=CADENCE, customers=customers)
    return {k.rep_id: k for k in rows}


def cadence(**tiers: tuple[int, int]) -> dict[CustomerTier, TierCadence]:
    return {
        CustomerTier(t): TierCadence(customers=n, kept=kept, rate=round(kept / n, 4))
        for t, (kept, n) in tiers.items()
    }


EXPECTED = {
    "rep-a": RepMonthKpi(
        rep_id="rep-a",
        month=MONTH,
        as_of=AS_OF,
        planned=7,  # a0, a1, a2, a3, a4, a5, a6 (not the October ones, not 12-01 00:30)
        approved=7,  # a4 was approved before it was cancelled
        executed=5,  # a0, a1, a2, a5, a6
        missed=1,  # a3
        cancelled=1,  # a4
        reports_on_time=4,
        reports_late=1,  # a2: due 11-18 10:30, in at 15:30
        reports_missing=0,
        report_on_time_rate=0.8,
        median_report_delay_hours=5.0,
        escalations=6,  # oct-1 ×2 (an October visit), a2 report + item, a3 check-in ×2
        escalations_by_level={1: 4, 2: 2},
        items_opened=4,  # a1, a2, a5, a6 (oct-1 was opened in October)
        items_closed_on_time=1,  # a1
        items_closed_late=1,  # a2
        items_overdue=2,  # oct-1 (due 11-05), a6 (due 11-25); a5 is due in December
        # C1 kept (gaps 9.6, 11, 14, 12 and 2.6 days); C2 first visited 11-10; C6 last 10-20
        # (41 days > 31); C3 last 10-05 (57 days ≤ 62); C4 first visited at 11-01 00:30.
        cadence=cadence(core=(1, 1), potential=(0, 2), regular=(1, 1), assist=(0, 1)),
    ),
    "rep-b": RepMonthKpi(
        rep_id="rep-b",
        month=MONTH,
        as_of=AS_OF,
        planned=5,  # b1, b2, b3, b5, b6 (b4 moved to December)
        approved=4,  # not b3
        executed=4,
        missed=0,  # b3 was never approved
        cancelled=0,
        reports_on_time=0,
        reports_late=3,  # 10 h, 30 h, 2 h
        reports_missing=1,  # b5
        report_on_time_rate=0.0,
        median_report_delay_hours=10.0,
        escalations=3,
        escalations_by_level={1: 2, 2: 1},
        # C5: 19 days without a visit after 11-12; C7 never visited; C8 first visited 11-20.
        cadence=cadence(core=(0, 1), regular=(0, 1), assist=(0, 1)),
    ),
    None: RepMonthKpi(
        rep_id=None,
        month=MONTH,
        as_of=AS_OF,
        planned=12,
        approved=11,
        executed=9,
        missed=1,
        cancelled=1,
        reports_on_time=4,
        reports_late=4,
        reports_missing=1,
        report_on_time_rate=0.4444,
        median_report_delay_hours=7.5,  # of 2, 5, 10, 30
        escalations=9,
        escalations_by_level={1: 6, 2: 3},
        items_opened=4,
        items_closed_on_time=1,
        items_closed_late=1,
        items_overdue=2,
        cadence=cadence(core=(1, 2), potential=(0, 2), regular=(1, 2), assist=(0, 2)),
    ),
}


def test_every_figure_of_the_month_matches_the_hand_count():
    rows = kpis(logs(), MONTH, as_of=AS_OF, cadence_days=CADENCE)
    assert [k.rep_id for k in rows] == ["rep-a", "rep-b", None]
    for k in rows:
        assert k == EXPECTED[k.rep_id], k.rep_id


def test_a_visit_at_half_past_midnight_on_the_first_counts_in_that_month_in_shanghai():
    first = next(v for v in november() if v.driver.visit_id == "a0-half-past-midnight")
    assert first.start.astimezone(ZoneInfo("UTC")).month == 10  # still October in UTC
    alone = kpis([first.events], MONTH, as_of=AS_OF, cadence_days=CADENCE)[0]
    assert (alone.planned, alone.executed, alone.reports_on_time) == (1, 1, 1)
    october = kpis([first.events], "2026-10", as_of=AS_OF, cadence_days=CADENCE)[0]
    assert october.planned == 0
    december = next(v for v in november() if v.driver.visit_id == "a-december")
    assert kpis([december.events], "2026-12", as_of=AS_OF, cadence_days=CADENCE)[0].planned == 1
    assert figures(month="2026-12")["rep-a"].planned == 1  # the same visit, from the whole log


def test_a_late_report_counts_its_delay_in_hours_and_the_median_takes_the_middle_value():
    only = [v.events for v in november() if v.driver.visit_id == "b1-late-10h"]
    row = kpis(only, MONTH, as_of=AS_OF, cadence_days=CADENCE)[0]
    assert (row.reports_late, row.median_report_delay_hours) == (1, 10.0)
    assert figures()["rep-b"].median_report_delay_hours == 10.0  # of 2, 10, 30
    assert figures()[None].median_report_delay_hours == 7.5  # of 2, 5, 10, 30: the mean of the middle two


def test_a_cancelled_visit_is_not_missed_and_a_never_approved_one_is_not_either():
    rows = figures()
    assert rows["rep-a"].missed == 1 and rows["rep-a"].cancelled == 1
    assert rows["rep-b"].missed == 0 and rows["rep-b"].approved == rows["rep-b"].planned - 1


def test_the_log_is_read_as_it_stood_at_as_of():
    rows = figures(as_of=at("2026-11-18 12:00"))
    a = rows["rep-a"]
    # a2's report (due 10:30) is not in yet; a3's check-in is not due; a5 is not planned yet.
    assert (a.planned, a.executed, a.reports_late, a.reports_missing, a.missed) == (6, 4, 0, 1, 0)
    assert a.approved == 5  # a4 is approved on 11-19
    assert a.escalations_by_level == {1: 2, 2: 1}  # oct-1 twice, a2's report once
    # Overdue at as_of: only oct-1; a6 falls due on 11-25.
    assert a.items_overdue == 1 and a.items_closed_late == 0
    # C1 visited 11-16 (2 days); C3 57 days → still 44 days; C6: 29 days ≤ 31 still.
    assert a.cadence[CustomerTier.potential] == TierCadence(customers=2, kept=1, rate=0.5)


def test_a_customer_without_a_visit_in_the_month_fails_only_once_its_cadence_ran_out():
    start, end = month_bounds(MONTH, "Asia/Shanghai")
    last = at("2026-10-20 10:00")
    assert not kept_cadence([last], start, end, 31)  # 41.6 days by the month's end
    assert kept_cadence([last], start, end, 62)
    assert not kept_cadence([], start, end, 62)  # never visited
    # Exactly the cadence apart is kept; a minute more is not.
    visits = [at("2026-10-25 10:00"), at("2026-11-08 10:00"), at("2026-11-22 10:00")]
    assert kept_cadence(visits, start, end, 14)
    assert not kept_cadence([*visits[:2], at("2026-11-22 10:01")], start, end, 14)
    # A first visit inside the month leaves its start uncovered.
    assert not kept_cadence([at("2026-11-01 00:30"), at("2026-11-14 00:00")], start, end, 14)


def test_the_registry_names_each_reps_customers_and_their_tiers():
    registry = [
        CustomerRecord(id="C1", name="C1", tier=CustomerTier.core, owner_rep_id="rep-a", manager_id="mgr-1"),
        # Registered as regular: its last visit (10-20) is within 62 days.
        CustomerRecord(
            id="C6", name="C6", tier=CustomerTier.regular, owner_rep_id="rep-a", manager_id="mgr-1"
        ),
        # Never visited by anyone: fails; owned by a rep with no visit at all, who gets a row.
        CustomerRecord(id="C9", name="C9", tier=CustomerTier.core, owner_rep_id="rep-c", manager_id="mgr-1"),
    ]
    rows = figures(customers=registry)
    assert rows["rep-a"].cadence == cadence(core=(1, 1), regular=(1, 1))
    assert "rep-b" in rows and rows["rep-b"].cadence == {}
    assert rows["rep-c"].cadence == cadence(core=(0, 1)) and rows["rep-c"].planned == 0
    assert rows[None].cadence == cadence(core=(1, 2), regular=(1, 1))


def test_a_month_is_written_yyyy_mm():
    for bad in ("2026-13", "2026-1", "26-11", "2026/11", "november"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            kpis([], bad, as_of=AS_OF, cadence_days=CADENCE)
    start, end = month_bounds("2026-12", "Asia/Shanghai")
    assert (start, end) == (at("2026-12-01 00:00"), at("2027-01-01 00:00"))


def test_an_empty_log_gives_only_an_empty_team_row():
    assert kpis([], MONTH, as_of=AS_OF, cadence_days=CADENCE) == [
        RepMonthKpi(rep_id=None, month=MONTH, as_of=AS_OF)
    ]
