"""The monthly plan's checks: cadence per tier, two-month coverage, lead time, plan errors.

Each test reads: given the rep's customers and what is known of their last visits, when a
plan for a month is submitted at a time, then these findings. Times are Shanghai wall-clock
times (`at`); the default story is rep-1's plan for December 2026, submitted on Friday
2026-11-20, well before its due day (2026-11-30).
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

import pytest

from domain.customers import CustomerRecord
from domain.errors import RuleViolation
from domain.models import CustomerTier
from domain.plan_checks import Finding, Rule, blocking, check_month_plan, render_findings
from domain.planning import MonthPlanVisits, PlannedVisit, PlanRules, Severity, month_bounds, plan_due_day
from domain.policy import Policy
from tests.domain.support import Visit, at, submit_plan

REP_ID = "rep-1"
SUBMITTED = at("2026-11-20 10:00")


def customer(cid: str, name: str, tier: CustomerTier, owner: str = REP_ID) -> CustomerRecord:
    return CustomerRecord(id=cid, name=name, tier=tier, owner_rep_id=owner, manager_id="mgr-1")


ACME = customer("C-17", "Acme Trading", CustomerTier.core)
XIHU = customer("C-21", "杭州西湖贸易有限公司", CustomerTier.potential)
LAKESIDE = customer("C-30", "Lakeside Stores", CustomerTier.regular)
HILLSIDE = customer("C-40", "Hillside Farm Co-op", CustomerTier.assist)
OTHER_REPS = customer("C-50", "Riverside Foods", CustomerTier.core, owner="rep-2")


def visit(visit_id: str, who: CustomerRecord | str, when: str | datetime) -> PlannedVisit:
    """A planned visit; `when` is a Shanghai wall-clock time unless given as an instant."""
    return PlannedVisit(
        visit_id=visit_id,
        customer_id=who if isinstance(who, str) else who.id,
        scheduled_start=at(when) if isinstance(when, str) else when,
        purpose="Review orders",
    )


def month_plan(month: str, *visits: PlannedVisit) -> MonthPlanVisits:
    return MonthPlanVisits(rep_id=REP_ID, month=month, visits=list(visits))


def check(
    plan: MonthPlanVisits,
    *,
    customers: Sequence[CustomerRecord] = (ACME,),
    previous: MonthPlanVisits | None = None,
    last: Mapping[str, date] | None = None,
    submitted: datetime = SUBMITTED,
    rules: PlanRules | None = None,
    policy: Policy | None = None,
) -> list[Finding]:
    return check_month_plan(
        plan,
        customers=customers,
        previous_plan=previous,
        last_visits=last or {},
        submitted_at=submitted,
        rules=rules or PlanRules(),
        policy=policy or Policy(),
    )


def only(findings: list[Finding], rule: Rule) -> list[Finding]:
    return [finding for finding in findings if finding.rule is rule]


def messages(findings: list[Finding], rule: Rule) -> list[str]:
    return [finding.message for finding in only(findings, rule)]


# --- a plan that keeps every rule ---------------------------------------------------------


def test_plan_keeping_every_rule_has_no_findings():
    plan = month_plan(
        "2026-12",
        visit("V-1", ACME, "2026-12-03 09:00"),
        visit("V-2", ACME, "2026-12-17 09:00"),
        visit("V-3", ACME, "2026-12-31 09:00"),
        visit("V-4", XIHU, "2026-12-15 14:00"),
        visit("V-5", HILLSIDE, "2026-12-08 10:00"),
        visit("V-6", HILLSIDE, "2026-12-22 10:00"),
    )
    last = {
        ACME.id: date(2026, 11, 27),
        XIHU.id: date(2026, 11, 20),
        LAKESIDE.id: date(2026, 11, 10),
        HILLSIDE.id: date(2026, 11, 25),
    }

    findings = check(plan, customers=[ACME, XIHU, LAKESIDE, HILLSIDE], last=last)

    assert findings == []
    assert render_findings(findings) == "The plan meets every rule."


# --- cadence --------------------------------------------------------------------------------


def test_cadence_gap_between_two_planned_visits_names_the_dates():
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-03 09:00"), visit("V-2", ACME, "2026-12-31 09:00")
    )

    findings = check(plan, last={ACME.id: date(2026, 11, 26)})

    assert messages(findings, Rule.cadence) == [
        "Acme Trading (C-17, core) is to be visited every 14 days: after the visit planned on "
        "2026-12-03 none is planned before 2026-12-31; one is due by 2026-12-17."
    ]
    (finding,) = findings
    assert (finding.customer_id, finding.visit_id, finding.day) == (ACME.id, None, date(2026, 12, 17))


@pytest.mark.parametrize(
    ("second", "late"), [("2026-12-17 18:00", False), ("2026-12-18 08:00", True)], ids=["14 days", "15 days"]
)
def test_cadence_allows_a_gap_of_exactly_the_cadence_and_not_a_day_more(second: str, late: bool):
    plan = month_plan(
        "2026-12",
        visit("V-1", ACME, "2026-12-03 09:00"),
        visit("V-2", ACME, second),
        visit("V-3", ACME, "2026-12-30 09:00"),
    )

    findings = check(plan, last={ACME.id: date(2026, 11, 30)})

    assert bool(only(findings, Rule.cadence)) is late


def test_cadence_after_the_last_planned_visit_runs_to_the_months_end():
    plan = month_plan("2026-12", visit("V-1", ACME, "2026-12-07 09:00"))

    findings = check(plan, last={ACME.id: date(2026, 11, 30)})

    assert messages(findings, Rule.cadence) == [
        "Acme Trading (C-17, core) is to be visited every 14 days: after the visit planned on "
        "2026-12-07 none is planned through the month's end, 2026-12-31; one is due by 2026-12-21."
    ]


def test_cadence_counts_from_the_last_visit_before_the_month():
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-10 09:00"), visit("V-2", ACME, "2026-12-24 09:00")
    )

    findings = check(plan, last={ACME.id: date(2026, 10, 20)})

    assert messages(findings, Rule.cadence) == [
        "Acme Trading (C-17, core) is to be visited every 14 days: after the last visit, on "
        "2026-10-20, none is planned before 2026-12-10; one was due by 2026-11-03."
    ]


def test_cadence_with_no_visit_known_counts_from_the_months_first_day():
    late_start = month_plan("2026-12", visit("V-1", ACME, "2026-12-20 09:00"))
    in_time = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-15 09:00"), visit("V-2", ACME, "2026-12-29 09:00")
    )

    assert messages(check(late_start), Rule.cadence) == [
        "Acme Trading (C-17, core) is to be visited every 14 days: with no earlier visit known, "
        "the first one planned is on 2026-12-20; one is due by 2026-12-15."
    ]
    assert only(check(in_time), Rule.cadence) == []


def test_cadence_customer_with_nothing_known_and_nothing_planned():
    findings = check(month_plan("2026-12"))

    assert messages(findings, Rule.cadence) == [
        "Acme Trading (C-17, core) is to be visited every 14 days: with no earlier visit known, "
        "none is planned in 2026-12; one is due by 2026-12-15."
    ]


def test_every_gap_is_its_own_finding_in_date_order():
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-01 09:00"), visit("V-2", ACME, "2026-12-20 09:00")
    )

    findings = check(plan, last={ACME.id: date(2026, 11, 10)})

    assert [finding.day for finding in only(findings, Rule.cadence)] == [
        date(2026, 11, 24),
        date(2026, 12, 15),
    ]


def test_two_visits_on_one_day_count_as_one_visit_day():
    plan = month_plan(
        "2026-12",
        visit("V-1", ACME, "2026-12-10 09:00"),
        visit("V-2", ACME, "2026-12-10 15:00"),
        visit("V-3", ACME, "2026-12-24 09:00"),
    )

    assert only(check(plan, last={ACME.id: date(2026, 11, 30)}), Rule.cadence) == []


def test_regular_customer_visited_last_month_needs_no_visit_this_month():
    findings = check(month_plan("2026-12"), customers=[LAKESIDE], last={LAKESIDE.id: date(2026, 11, 10)})

    assert findings == []


def test_regular_customer_with_only_the_previous_plan_known_needs_no_visit_this_month():
    previous = month_plan("2026-11", visit("N-1", LAKESIDE, "2026-11-10 09:00"))

    assert check(month_plan("2026-12"), customers=[LAKESIDE], previous=previous) == []


def test_regular_customer_last_visited_two_months_ago_is_due_this_month():
    findings = check(month_plan("2026-12"), customers=[LAKESIDE], last={LAKESIDE.id: date(2026, 10, 1)})

    assert messages(findings, Rule.cadence) == [
        "Lakeside Stores (C-30, regular) is to be visited every 62 days: after the last visit, on "
        "2026-10-01, none is planned through the month's end, 2026-12-31; one is due by 2026-12-02."
    ]


def test_previous_plans_latest_visit_is_the_last_visit_when_none_is_known():
    previous = month_plan(
        "2026-11", visit("N-1", ACME, "2026-11-12 09:00"), visit("N-2", ACME, "2026-11-26 09:00")
    )
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-14 09:00"), visit("V-2", ACME, "2026-12-28 09:00")
    )

    assert messages(check(plan, previous=previous), Rule.cadence) == [
        "Acme Trading (C-17, core) is to be visited every 14 days: after the visit planned on "
        "2026-11-26 none is planned before 2026-12-14; one is due by 2026-12-10."
    ]


def test_known_last_visit_is_preferred_to_the_previous_plan():
    # The previous plan's visit on 11-26 did not happen; the last visit known is 11-20.
    previous = month_plan("2026-11", visit("N-1", ACME, "2026-11-26 09:00"))
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-07 09:00"), visit("V-2", ACME, "2026-12-21 09:00")
    )

    findings = check(plan, previous=previous, last={ACME.id: date(2026, 11, 20)})

    assert [finding.day for finding in only(findings, Rule.cadence)] == [date(2026, 12, 4)]


def test_potential_customer_is_visited_monthly_and_named_in_chinese():
    findings = check(month_plan("2026-12"), customers=[XIHU], last={XIHU.id: date(2026, 11, 15)})

    assert messages(findings, Rule.cadence) == [
        "杭州西湖贸易有限公司 (C-21, potential) is to be visited every 31 days: after the last visit, on "
        "2026-11-15, none is planned through the month's end, 2026-12-31; one is due by 2026-12-16."
    ]


def test_assist_customer_is_visited_every_two_weeks():
    plan = month_plan("2026-12", visit("V-1", HILLSIDE, "2026-12-02 10:00"))

    findings = check(plan, customers=[HILLSIDE], last={HILLSIDE.id: date(2026, 11, 25)})

    assert [finding.day for finding in only(findings, Rule.cadence)] == [date(2026, 12, 16)]


def test_cadence_days_are_a_setting_and_a_tier_left_out_has_none():
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-03 09:00"), visit("V-2", ACME, "2026-12-17 09:00")
    )
    last = {ACME.id: date(2026, 11, 30), LAKESIDE.id: date(2026, 9, 1)}
    weekly = PlanRules(cadence_days={CustomerTier.core: 7})

    findings = check(plan, customers=[ACME, LAKESIDE], last=last, rules=weekly)

    assert [(f.customer_id, f.day) for f in only(findings, Rule.cadence)] == [
        (ACME.id, date(2026, 12, 10)),
        (ACME.id, date(2026, 12, 24)),
    ]


def test_customers_of_other_reps_are_not_checked():
    findings = check(month_plan("2026-12"), customers=[OTHER_REPS])

    assert findings == []


# --- coverage -------------------------------------------------------------------------------


def test_customer_in_neither_this_nor_last_months_plan_is_uncovered():
    findings = check(month_plan("2026-12"), customers=[LAKESIDE], previous=month_plan("2026-11"))

    assert messages(findings, Rule.coverage) == [
        "Lakeside Stores (C-30, regular) has no visit planned in 2026-11 or 2026-12; the plans of 2 "
        "consecutive months must together cover every customer of rep-1."
    ]
    (finding,) = findings
    assert (finding.customer_id, finding.visit_id, finding.day) == (LAKESIDE.id, None, None)


def test_customer_in_last_months_plan_is_covered():
    previous = month_plan("2026-11", visit("N-1", LAKESIDE, "2026-11-10 09:00"))

    assert only(check(month_plan("2026-12"), customers=[LAKESIDE], previous=previous), Rule.coverage) == []


def test_customer_in_this_months_plan_is_covered():
    plan = month_plan("2026-12", visit("V-1", LAKESIDE, "2026-12-10 09:00"))

    assert only(check(plan, customers=[LAKESIDE]), Rule.coverage) == []


def test_a_last_visit_inside_the_window_covers_the_customer():
    in_window = check(month_plan("2026-12"), customers=[LAKESIDE], last={LAKESIDE.id: date(2026, 11, 3)})
    before = check(month_plan("2026-12"), customers=[LAKESIDE], last={LAKESIDE.id: date(2026, 10, 31)})

    assert only(in_window, Rule.coverage) == []
    assert messages(before, Rule.coverage) == [
        "Lakeside Stores (C-30, regular) has no visit planned in 2026-11 or 2026-12 (last visit "
        "2026-10-31); the plans of 2 consecutive months must together cover every customer of rep-1."
    ]


def test_coverage_of_one_month_ignores_the_previous_plan():
    previous = month_plan("2026-11", visit("N-1", LAKESIDE, "2026-11-10 09:00"))

    findings = check(
        month_plan("2026-12"), customers=[LAKESIDE], previous=previous, rules=PlanRules(coverage_months=1)
    )

    assert messages(findings, Rule.coverage) == [
        "Lakeside Stores (C-30, regular) has no visit planned in 2026-12; every plan must cover every "
        "customer of rep-1."
    ]


def test_coverage_of_three_months_reaches_back_through_the_last_visit():
    three = PlanRules(coverage_months=3)
    covered = check(
        month_plan("2026-12"), customers=[LAKESIDE], last={LAKESIDE.id: date(2026, 10, 20)}, rules=three
    )
    uncovered = check(month_plan("2026-12"), customers=[LAKESIDE], rules=three)

    assert only(covered, Rule.coverage) == []
    assert messages(uncovered, Rule.coverage) == [
        "Lakeside Stores (C-30, regular) has no visit planned in 2026-10, 2026-11 or 2026-12; the "
        "plans of 3 consecutive months must together cover every customer of rep-1."
    ]


def test_one_coverage_finding_per_uncovered_customer():
    plan = month_plan("2026-12", visit("V-1", ACME, "2026-12-01 09:00"))

    findings = check(plan, customers=[LAKESIDE, ACME, XIHU])

    assert [finding.customer_id for finding in only(findings, Rule.coverage)] == [XIHU.id, LAKESIDE.id]


# --- lead time and the plan's due day -------------------------------------------------------

MONDAY_VISIT = "2026-12-07 09:00"


@pytest.mark.parametrize(
    ("submitted", "policy", "in_time"),
    [
        ("2026-12-04 23:59", Policy(), True),  # Friday, the working day before
        ("2026-12-05 09:00", Policy(), False),  # Saturday
        ("2026-12-06 09:00", Policy(), False),  # Sunday
        ("2026-12-04 10:00", Policy(holidays=[date(2026, 12, 4)]), False),  # Friday a holiday
        ("2026-12-03 10:00", Policy(holidays=[date(2026, 12, 4)]), True),
        ("2026-12-05 10:00", Policy(makeup_workdays=[date(2026, 12, 5)]), True),  # 调休 Saturday
        ("2026-12-02 10:00", Policy(plan_lead_working_days=3), True),
        ("2026-12-03 10:00", Policy(plan_lead_working_days=3), False),
        ("2026-12-07 08:00", Policy(plan_lead_working_days=0), True),
    ],
    ids=[
        "friday",
        "saturday",
        "sunday",
        "holiday-friday",
        "thursday-before-holiday",
        "makeup-saturday",
        "3-days-wednesday",
        "3-days-thursday",
        "no-lead-time",
    ],
)
def test_lead_time_counts_working_days_of_the_company_calendar(submitted: str, policy: Policy, in_time: bool):
    plan = month_plan("2026-12", visit("V-1", ACME, MONDAY_VISIT))

    findings = check(plan, submitted=at(submitted), policy=policy)

    assert (only(findings, Rule.lead_time) == []) is in_time


def test_lead_time_message():
    plan = month_plan("2026-12", visit("V-1", ACME, MONDAY_VISIT), visit("V-2", ACME, "2026-12-21 09:00"))

    findings = check(plan, submitted=at("2026-12-05 09:00"))

    assert messages(findings, Rule.lead_time) == [
        "Visit V-1 with Acme Trading (C-17, core) on 2026-12-07 must be planned at least 1 working "
        "day ahead, by 2026-12-04; the plan was submitted on 2026-12-05."
    ]
    assert only(findings, Rule.lead_time)[0].visit_id == "V-1"


@pytest.mark.parametrize(
    "submitted",
    ["2026-12-04 18:00", "2026-12-05 09:00", "2026-12-07 08:00", "2026-12-07 09:00", "2026-12-07 10:00"],
)
def test_lead_time_is_the_single_visit_plans_rule(submitted: str):
    now = at(submitted)
    try:
        Visit().decide(submit_plan(start=at(MONDAY_VISIT)), now)
        refused_by = None
    except RuleViolation as refusal:
        refused_by = refusal.rule

    findings = check(month_plan("2026-12", visit("V-1", ACME, MONDAY_VISIT)), submitted=now)

    assert [f.rule for f in findings if f.rule in (Rule.lead_time, Rule.in_past)] == (
        [refused_by] if refused_by else []
    )


def test_visit_already_passed_is_a_blocking_error_not_a_lead_time_finding():
    plan = month_plan("2026-12", visit("V-1", ACME, "2026-12-01 09:00"))
    warn_all = PlanRules(lead_time=Severity.warn)

    findings = check(plan, submitted=at("2026-12-01 10:00"), rules=warn_all)

    assert [(f.rule, f.severity) for f in findings if f.visit_id] == [(Rule.in_past, Severity.block)]
    assert messages(findings, Rule.in_past) == [
        "Visit V-1 with Acme Trading (C-17, core) is planned for 2026-12-01 09:00 CST, which had "
        "already passed when the plan was submitted at 2026-12-01 10:00 CST."
    ]


def test_plan_submitted_on_its_due_day_is_in_time_at_any_hour():
    assert only(check(month_plan("2026-12"), submitted=at("2026-11-30 23:59")), Rule.late) == []


def test_plan_submitted_after_its_due_day_is_late():
    findings = check(month_plan("2026-12"), submitted=at("2026-12-01 00:10"))

    assert messages(findings, Rule.late) == [
        "The plan for 2026-12 was due by the end of 2026-11-30 and was submitted at 2026-12-01 00:10 CST."
    ]
    (late,) = only(findings, Rule.late)
    assert (late.customer_id, late.day, late.severity) == (None, date(2026, 11, 30), Severity.warn)


def test_plan_due_day_is_a_day_of_the_month_before():
    rules = PlanRules(submit_by_day=25)

    assert only(check(month_plan("2026-12"), submitted=at("2026-11-25 18:00"), rules=rules), Rule.late) == []
    late = only(check(month_plan("2026-12"), submitted=at("2026-11-26 09:00"), rules=rules), Rule.late)
    assert [f.day for f in late] == [date(2026, 11, 25)]


# --- month boundaries -----------------------------------------------------------------------


def test_january_plan_follows_decembers_across_the_year():
    previous = month_plan("2026-12", visit("D-1", ACME, "2026-12-28 09:00"))
    plan = month_plan(
        "2027-01", visit("J-1", ACME, "2027-01-12 09:00"), visit("J-2", ACME, "2027-01-26 09:00")
    )

    findings = check(plan, previous=previous, submitted=at("2026-12-31 23:00"))

    assert messages(findings, Rule.cadence) == [
        "Acme Trading (C-17, core) is to be visited every 14 days: after the visit planned on "
        "2026-12-28 none is planned before 2027-01-12; one is due by 2027-01-11."
    ]
    assert only(findings, Rule.late) == []
    assert [
        f.day for f in only(check(plan, previous=previous, submitted=at("2027-01-01 00:01")), Rule.late)
    ] == [date(2026, 12, 31)]


@pytest.mark.parametrize(
    ("month", "second_visit", "due"),
    [
        ("2027-02", "2027-02-14 09:00", date(2027, 2, 28)),
        ("2027-02", "2027-02-15 09:00", None),
        ("2028-02", "2028-02-15 09:00", date(2028, 2, 29)),
    ],
    ids=["due-on-the-28th", "due-in-march", "leap-year-due-on-the-29th"],
)
def test_february_ends_on_its_own_last_day(month: str, second_visit: str, due: date | None):
    year = int(month[:4])
    plan = month_plan(month, visit("F-1", ACME, f"{month}-01 09:00"), visit("F-2", ACME, second_visit))

    findings = check(plan, last={ACME.id: date(year, 1, 20)}, submitted=at(f"{year}-01-05 09:00"))

    assert [f.day for f in only(findings, Rule.cadence)] == ([due] if due else [])


def test_month_bounds_and_due_days():
    assert month_bounds("2027-02") == (date(2027, 2, 1), date(2027, 2, 28))
    assert month_bounds("2028-02") == (date(2028, 2, 1), date(2028, 2, 29))
    assert month_bounds("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    assert plan_due_day("2027-01", PlanRules()) == date(2026, 12, 31)
    assert plan_due_day("2027-03", PlanRules()) == date(2027, 2, 28)
    assert plan_due_day("2027-01", PlanRules(submit_by_day=25)) == date(2026, 12, 25)


# --- the company's time zone ----------------------------------------------------------------


def test_visit_at_half_past_midnight_shanghai_belongs_to_that_month():
    first_of_december = at("2026-12-01 00:30")  # still 2026-11-30 in UTC
    assert first_of_december.astimezone(UTC).day == 30
    plan = month_plan(
        "2026-12", visit("V-1", ACME, first_of_december), visit("V-2", ACME, "2026-12-15 09:00")
    )

    findings = check(plan, last={ACME.id: date(2026, 11, 17)}, submitted=at("2026-11-27 09:00"))

    assert only(findings, Rule.outside_month) == []
    assert [f.day for f in only(findings, Rule.cadence)] == [date(2026, 12, 29)]


def test_visit_given_in_utc_is_placed_by_its_shanghai_date():
    new_years_eve_utc = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)  # 2027-01-01 00:30 in Shanghai

    findings = check(month_plan("2026-12", visit("V-9", ACME, new_years_eve_utc)))

    assert messages(findings, Rule.outside_month) == [
        "Visit V-9 with Acme Trading (C-17, core) is planned for 2027-01-01 00:30 CST, which is not "
        "in 2026-12, the month of this plan."
    ]


def test_month_is_read_in_the_policys_time_zone():
    plan = month_plan("2026-12", visit("V-1", ACME, "2026-12-01 00:30"))

    findings = check(plan, policy=Policy(timezone="UTC"))

    assert [f.day for f in only(findings, Rule.outside_month)] == [date(2026, 11, 30)]


def test_late_plan_is_judged_by_the_shanghai_date_of_submission():
    # 16:10 UTC on 2026-11-30 is already 2026-12-01 in Shanghai.
    findings = check(month_plan("2026-12"), submitted=datetime(2026, 11, 30, 16, 10, tzinfo=UTC))

    assert len(only(findings, Rule.late)) == 1


# --- errors of the plan itself --------------------------------------------------------------


def test_customer_not_in_the_registry_is_a_blocking_error():
    plan = month_plan("2026-12", visit("V-9", "C-99", "2026-12-08 09:00"))

    findings = check(plan, customers=[])

    assert findings == [
        Finding(
            rule=Rule.unknown_customer,
            severity=Severity.block,
            customer_id="C-99",
            visit_id="V-9",
            day=date(2026, 12, 8),
            message="Visit V-9 on 2026-12-08 is with customer C-99, who is not among rep-1's customers "
            "in the registry.",
        )
    ]


def test_customer_of_another_rep_is_a_blocking_error():
    plan = month_plan("2026-12", visit("V-9", OTHER_REPS, "2026-12-08 09:00"))

    findings = check(plan, customers=[OTHER_REPS], submitted=at("2026-12-08 08:00"))

    # Reported once, as the error it is: no lead-time finding for the same visit.
    assert messages(findings, Rule.unknown_customer) == [
        "Visit V-9 on 2026-12-08 is with Riverside Foods (C-50, core), a customer of rep-2, not of rep-1."
    ]
    assert only(findings, Rule.lead_time) == []


def test_visit_id_used_twice_is_a_blocking_error():
    plan = month_plan(
        "2026-12",
        visit("V-1", ACME, "2026-12-03 09:00"),
        visit("V-1", ACME, "2026-12-17 09:00"),
        visit("V-2", ACME, "2026-12-29 09:00"),
    )

    findings = check(plan, last={ACME.id: date(2026, 11, 30)})

    assert messages(findings, Rule.duplicate_visit_id) == [
        "Visit id V-1 is used again for Acme Trading (C-17, core) on 2026-12-17; it already names the "
        "visit on 2026-12-03, and every planned visit needs its own id."
    ]
    # The repeated entry is left out of the cadence walk: 12-03 to 12-29 is a gap.
    assert [f.day for f in only(findings, Rule.cadence)] == [date(2026, 12, 17)]


def test_plan_errors_block_even_when_every_rule_only_warns():
    warn_all = PlanRules(
        cadence=Severity.warn, coverage=Severity.warn, lead_time=Severity.warn, late=Severity.warn
    )
    plan = month_plan(
        "2026-12",
        visit("V-1", "C-99", "2026-12-08 09:00"),
        visit("V-2", ACME, "2027-01-04 09:00"),
        visit("V-2", ACME, "2026-12-09 09:00"),
    )

    findings = check(plan, rules=warn_all)

    assert {f.rule for f in blocking(findings)} == {
        Rule.unknown_customer,
        Rule.outside_month,
        Rule.duplicate_visit_id,
    }


# --- severity is a setting per rule ---------------------------------------------------------


def _one_finding_of_each_setting(rules: PlanRules) -> list[Finding]:
    """A plan with exactly one cadence, coverage, lead-time and late finding."""
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-01 09:00"), visit("V-2", ACME, "2026-12-28 09:00")
    )
    return check(
        plan,
        customers=[ACME, LAKESIDE],
        last={ACME.id: date(2026, 11, 30)},
        submitted=at("2026-12-01 08:00"),
        rules=rules,
    )


@pytest.mark.parametrize(
    ("setting", "rule"),
    [
        ("cadence", Rule.cadence),
        ("coverage", Rule.coverage),
        ("lead_time", Rule.lead_time),
        ("late", Rule.late),
    ],
)
def test_each_rule_blocks_or_warns_as_set(setting: str, rule: Rule):
    warn_all = {
        "cadence": Severity.warn,
        "coverage": Severity.warn,
        "lead_time": Severity.warn,
        "late": Severity.warn,
    }

    warned = _one_finding_of_each_setting(PlanRules(**warn_all))
    blocked = _one_finding_of_each_setting(PlanRules(**{**warn_all, setting: Severity.block}))

    assert sorted(f.rule for f in warned) == sorted([Rule.cadence, Rule.coverage, Rule.lead_time, Rule.late])
    assert blocking(warned) == []
    assert [f.rule for f in blocking(blocked)] == [rule]


def test_default_severities_block_only_lead_time():
    findings = _one_finding_of_each_setting(PlanRules())

    assert [f.rule for f in blocking(findings)] == [Rule.lead_time]


# --- the list the rep and the manager read --------------------------------------------------


def test_findings_are_sorted_by_rule_then_customer_then_date():
    plan = month_plan("2026-12", visit("V-1", "C-99", "2026-12-02 09:00"))

    findings = check(
        plan,
        customers=[LAKESIDE, ACME, HILLSIDE],
        last={ACME.id: date(2026, 11, 10), HILLSIDE.id: date(2026, 11, 1)},
        submitted=at("2026-12-01 09:00"),
    )

    assert [(f.rule.value, f.customer_id, f.day) for f in findings] == [
        ("plan.cadence", ACME.id, date(2026, 11, 24)),
        ("plan.cadence", HILLSIDE.id, date(2026, 11, 15)),
        ("plan.coverage", LAKESIDE.id, None),
        ("plan.late", None, date(2026, 11, 30)),
        ("plan.unknown_customer", "C-99", date(2026, 12, 2)),
    ]


def test_rendered_list_marks_what_blocks():
    plan = month_plan(
        "2026-12", visit("V-1", ACME, "2026-12-07 09:00"), visit("V-2", ACME, "2026-12-21 09:00")
    )

    text = render_findings(check(plan, last={ACME.id: date(2026, 11, 30)}, submitted=at("2026-12-05 09:00")))

    assert text == (
        "2 finding(s), 1 blocking the submission:\n"
        "- [warn] The plan for 2026-12 was due by the end of 2026-11-30 and was submitted at "
        "2026-12-05 09:00 CST. (plan.late)\n"
        "- [block] Visit V-1 with Acme Trading (C-17, core) on 2026-12-07 must be planned at least 1 "
        "working day ahead, by 2026-12-04; the plan was submitted on 2026-12-05. (plan.lead_time)"
    )


def test_findings_cross_a_boundary_as_json():
    findings = check(month_plan("2026-12"), customers=[XIHU, LAKESIDE], submitted=at("2026-12-02 09:00"))

    assert [Finding.model_validate_json(f.model_dump_json()) for f in findings] == findings
    assert findings[0].model_dump(mode="json")["rule"] == "plan.coverage"


def test_checks_are_deterministic():
    plan = month_plan(
        "2026-12", visit("V-2", ACME, "2026-12-20 09:00"), visit("V-1", "C-99", "2026-12-02 09:00")
    )
    customers = [LAKESIDE, ACME, XIHU, HILLSIDE]

    assert check(plan, customers=customers) == check(plan, customers=list(reversed(customers)))


# --- the caller's mistakes are errors, not findings -----------------------------------------


def test_previous_plan_must_be_the_reps_plan_for_the_month_before():
    with pytest.raises(ValueError, match="the previous plan must be rep-1's plan for 2026-11"):
        check(month_plan("2026-12"), previous=month_plan("2026-10"))


def test_last_visits_must_lie_before_the_month():
    with pytest.raises(ValueError, match="last visits must lie before 2026-12-01: C-17"):
        check(month_plan("2026-12"), last={ACME.id: date(2026, 12, 1)})


def test_submission_time_needs_a_time_zone():
    with pytest.raises(ValueError, match="time zone"):
        check(month_plan("2026-12"), submitted=datetime(2026, 11, 20, 10, 0))
