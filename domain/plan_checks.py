"""Checks of a rep's monthly plan: cadence, coverage and lead time, as findings to read.

`check_month_plan` never raises for a bad plan: it returns every finding, each naming its
rule, its severity (block or warn, a setting per rule in `PlanRules`), the customer and the
dates in the company's time zone, so the rep and the manager see the whole list at once.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import Field

from domain.calendar import latest_plan_day, local_date, local_text
from domain.customers import CustomerRecord
from domain.models import Frozen
from domain.planning import (
    MonthPlanVisits,
    PlannedVisit,
    PlanRules,
    Severity,
    month_bounds,
    month_of,
    plan_due_day,
    previous_month,
)
from domain.policy import Policy


class Rule(StrEnum):
    """The stable code of each plan check; clients branch on it."""

    cadence = "plan.cadence"
    coverage = "plan.coverage"
    lead_time = "plan.lead_time"
    late = "plan.late"
    # Errors of the plan itself: always blocking, whatever the settings.
    in_past = "plan.in_past"
    outside_month = "plan.outside_month"
    unknown_customer = "plan.unknown_customer"
    duplicate_visit_id = "plan.duplicate_visit_id"


class Finding(Frozen):
    """One thing the plan misses. `day` is the local date it is about (a visit's, or a due date)."""

    rule: Rule
    severity: Severity
    customer_id: str | None = None
    visit_id: str | None = None
    day: date | None = None
    message: str = Field(min_length=1)


def check_month_plan(
    plan: MonthPlanVisits,
    *,
    customers: Sequence[CustomerRecord],
    previous_plan: MonthPlanVisits | None,
    last_visits: Mapping[str, date],
    submitted_at: datetime,
    rules: PlanRules,
    policy: Policy,
) -> list[Finding]:
    """Every finding on `plan` submitted at `submitted_at`, sorted by rule, customer, date.

    `customers`: the registry records of the rep's customers (a record owned by another rep
    does not count as the rep's). `previous_plan`: the rep's plan for the month before, if
    any. `last_visits`: per customer id, the local date of its last visit before the month,
    when known. All dates are local to `policy.timezone`; a visit belongs to the month its
    local date falls in.

    Rules, as checked:
    - plan errors (always block): a visit id used twice (`plan.duplicate_visit_id`), a visit
      whose local date is not in the month (`plan.outside_month`), a visit with a customer
      that is not the rep's (`plan.unknown_customer`), a visit at or before `submitted_at`
      (`plan.in_past`). The first three leave the visit out of every other check, so each
      is reported once; an in-past visit gets no lead-time finding but still counts below.
    - `plan.lead_time`, per visit: the local submission date is after `latest_plan_day`
      (the single visit plan's rule; none when `plan_lead_working_days` is 0).
    - `plan.late`: the local submission date is after `plan_due_day(month, rules)`.
    - `plan.cadence`: per customer, the walk starts at its last visit (`last_visits`; when
      unknown, its latest visit in `previous_plan`; when neither, the month's first day, as
      if visited then) and goes through its visit days in the month. Every step of more than
      `cadence_days[tier]` days is one finding, due `cadence_days` after the step's start;
      after the last visit a finding is made when that due date still falls in the month.
      So a regular customer visited last month needs nothing this month.
    - `plan.coverage`: a customer with no visit in this plan, none in `previous_plan` (when
      `coverage_months` > 1) and no `last_visits` date in the window of `coverage_months`
      months ending with this one is one finding.

    Raises ValueError when the arguments contradict each other (a naive `submitted_at`, a
    previous plan of another rep or month, a last visit not before the month).
    """
    _require_consistent(plan, previous_plan, last_visits, submitted_at)
    owned: dict[str, CustomerRecord] = {}
    others: dict[str, CustomerRecord] = {}
    for record in customers:
        (owned if record.owner_rep_id == plan.rep_id else others).setdefault(record.id, record)
    kept, findings = _screen(plan, owned, others, policy)
    findings += _lead_time(kept, owned, submitted_at, rules, policy)
    findings += _late(plan, submitted_at, rules, policy)
    visit_days: dict[str, list[date]] = {}
    for visit in kept:
        visit_days.setdefault(visit.customer_id, []).append(local_date(visit.scheduled_start, policy))
    findings += _cadence(plan, owned, visit_days, previous_plan, last_visits, rules, policy)
    findings += _coverage(plan, owned, visit_days, previous_plan, last_visits, rules)
    return sorted(findings, key=_order)


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that stop the submission."""
    return [finding for finding in findings if finding.severity is Severity.block]


def render_findings(findings: Sequence[Finding]) -> str:
    """The findings as a short text list for the rep and the manager, one line each."""
    if not findings:
        return "The plan meets every rule."
    blocks = len(blocking(findings))
    head = f"{len(findings)} finding(s), {blocks} blocking the submission:"
    lines = [f"- [{finding.severity}] {finding.message} ({finding.rule})" for finding in findings]
    return "\n".join([head, *lines])


def _order(finding: Finding) -> tuple[str, bool, str, date, str, str]:
    # Findings about the whole plan (no customer) come before those about one customer.
    return (
        finding.rule.value,
        finding.customer_id is not None,
        finding.customer_id or "",
        finding.day or date.min,
        finding.visit_id or "",
        finding.message,
    )


def _require_consistent(
    plan: MonthPlanVisits,
    previous_plan: MonthPlanVisits | None,
    last_visits: Mapping[str, date],
    submitted_at: datetime,
) -> None:
    # These are caller mistakes, not findings: the rep cannot fix them by changing the plan.
    if submitted_at.tzinfo is None or submitted_at.utcoffset() is None:
        raise ValueError("submitted_at needs a time zone")
    if previous_plan is not None and (
        previous_plan.rep_id != plan.rep_id or previous_plan.month != previous_month(plan.month)
    ):
        raise ValueError(
            f"the previous plan must be {plan.rep_id}'s plan for {previous_month(plan.month)}, "
            f"not {previous_plan.rep_id}'s for {previous_plan.month}"
        )
    first, _ = month_bounds(plan.month)
    late = sorted(cid for cid, day in last_visits.items() if day >= first)
    if late:
        raise ValueError(f"last visits must lie before {first}: {', '.join(late)}")


def _who(customer: CustomerRecord) -> str:
    return f"{customer.name} ({customer.id}, {customer.tier})"


def _plan_error(rule: Rule, visit: PlannedVisit, day: date, message: str) -> Finding:
    return Finding(
        rule=rule,
        severity=Severity.block,
        customer_id=visit.customer_id,
        visit_id=visit.visit_id,
        day=day,
        message=message,
    )


def _screen(
    plan: MonthPlanVisits,
    owned: Mapping[str, CustomerRecord],
    others: Mapping[str, CustomerRecord],
    policy: Policy,
) -> tuple[list[PlannedVisit], list[Finding]]:
    """The visits free of plan errors, and a finding for each visit that has one."""
    kept: list[PlannedVisit] = []
    findings: list[Finding] = []
    first_use: dict[str, date] = {}
    for visit in plan.visits:
        day = local_date(visit.scheduled_start, policy)
        customer = owned.get(visit.customer_id) or others.get(visit.customer_id)
        who = _who(customer) if customer else f"customer {visit.customer_id}"
        if visit.visit_id in first_use:
            findings.append(
                _plan_error(
                    Rule.duplicate_visit_id,
                    visit,
                    day,
                    f"Visit id {visit.visit_id} is used again for {who} on {day}; it already names "
                    f"the visit on {first_use[visit.visit_id]}, and every planned visit needs its own id.",
                )
            )
            continue
        first_use[visit.visit_id] = day
        if month_of(day) != plan.month:
            findings.append(
                _plan_error(
                    Rule.outside_month,
                    visit,
                    day,
                    f"Visit {visit.visit_id} with {who} is planned for "
                    f"{local_text(visit.scheduled_start, policy.timezone)}, which is not in {plan.month}, "
                    "the month of this plan.",
                )
            )
        elif visit.customer_id not in owned:
            whose = (
                f"a customer of {customer.owner_rep_id}, not of {plan.rep_id}"
                if customer
                else f"who is not among {plan.rep_id}'s customers in the registry"
            )
            message = f"Visit {visit.visit_id} on {day} is with {who}, {whose}."
            findings.append(_plan_error(Rule.unknown_customer, visit, day, message))
        else:
            kept.append(visit)
    return kept, findings


def _lead_time(
    kept: Sequence[PlannedVisit],
    owned: Mapping[str, CustomerRecord],
    submitted_at: datetime,
    rules: PlanRules,
    policy: Policy,
) -> list[Finding]:
    findings: list[Finding] = []
    submitted_on = local_date(submitted_at, policy)
    days = policy.plan_lead_working_days
    for visit in kept:
        who = _who(owned[visit.customer_id])
        day = local_date(visit.scheduled_start, policy)
        # As for a single visit's plan: a visit already begun is an error, not a late plan.
        if visit.scheduled_start <= submitted_at:
            findings.append(
                Finding(
                    rule=Rule.in_past,
                    severity=Severity.block,
                    customer_id=visit.customer_id,
                    visit_id=visit.visit_id,
                    day=day,
                    message=(
                        f"Visit {visit.visit_id} with {who} is planned for "
                        f"{local_text(visit.scheduled_start, policy.timezone)}, which had already passed "
                        f"when the plan was submitted at {local_text(submitted_at, policy.timezone)}."
                    ),
                )
            )
            continue
        latest = latest_plan_day(visit.scheduled_start, policy)
        if days and submitted_on > latest:
            findings.append(
                Finding(
                    rule=Rule.lead_time,
                    severity=rules.lead_time,
                    customer_id=visit.customer_id,
                    visit_id=visit.visit_id,
                    day=day,
                    message=(
                        f"Visit {visit.visit_id} with {who} on {day} must be planned at least {days} "
                        f"working day{'s' if days > 1 else ''} ahead, by {latest}; the plan was "
                        f"submitted on {submitted_on}."
                    ),
                )
            )
    return findings


def _late(plan: MonthPlanVisits, submitted_at: datetime, rules: PlanRules, policy: Policy) -> list[Finding]:
    due = plan_due_day(plan.month, rules)
    if local_date(submitted_at, policy) <= due:
        return []
    return [
        Finding(
            rule=Rule.late,
            severity=rules.late,
            day=due,
            message=(
                f"The plan for {plan.month} was due by the end of {due} and was submitted at "
                f"{local_text(submitted_at, policy.timezone)}."
            ),
        )
    ]


def _last_visit(
    customer_id: str,
    first: date,
    previous_plan: MonthPlanVisits | None,
    last_visits: Mapping[str, date],
    policy: Policy,
) -> tuple[date, str] | None:
    """Where the customer's cadence walk starts, with the words that name it; None if unknown."""
    known = last_visits.get(customer_id)
    if known is not None:
        return known, f"the last visit, on {known},"
    if previous_plan is None:
        return None
    planned = [
        day
        for visit in previous_plan.visits
        if visit.customer_id == customer_id and (day := local_date(visit.scheduled_start, policy)) < first
    ]
    if not planned:
        return None
    return max(planned), f"the visit planned on {max(planned)}"


def _cadence(
    plan: MonthPlanVisits,
    owned: Mapping[str, CustomerRecord],
    visit_days: Mapping[str, list[date]],
    previous_plan: MonthPlanVisits | None,
    last_visits: Mapping[str, date],
    rules: PlanRules,
    policy: Policy,
) -> list[Finding]:
    first, last = month_bounds(plan.month)
    findings: list[Finding] = []
    for customer in owned.values():
        every = rules.cadence_days.get(customer.tier)
        if every is None:
            continue
        start = _last_visit(customer.id, first, previous_plan, last_visits, policy)
        # With no visit known, the month's first day stands in for one.
        anchor, anchor_words = start if start else (first, None)
        gaps: list[tuple[date, str]] = []
        for day in sorted(set(visit_days.get(customer.id, []))):
            if (day - anchor).days > every:
                words = (
                    f"after {anchor_words} none is planned before {day}"
                    if anchor_words
                    else f"with no earlier visit known, the first one planned is on {day}"
                )
                gaps.append((anchor + timedelta(days=every), words))
            anchor, anchor_words = day, f"the visit planned on {day}"
        # The month's end: the next visit is due within the month, and none is planned.
        if anchor + timedelta(days=every) <= last:
            words = (
                f"after {anchor_words} none is planned through the month's end, {last}"
                if anchor_words
                else f"with no earlier visit known, none is planned in {plan.month}"
            )
            gaps.append((anchor + timedelta(days=every), words))
        for due, words in gaps:
            tense = "was" if due < first else "is"
            findings.append(
                Finding(
                    rule=Rule.cadence,
                    severity=rules.cadence,
                    customer_id=customer.id,
                    day=due,
                    message=(
                        f"{_who(customer)} is to be visited every {every} days: {words}; "
                        f"one {tense} due by {due}."
                    ),
                )
            )
    return findings


def _coverage(
    plan: MonthPlanVisits,
    owned: Mapping[str, CustomerRecord],
    visit_days: Mapping[str, list[date]],
    previous_plan: MonthPlanVisits | None,
    last_visits: Mapping[str, date],
    rules: PlanRules,
) -> list[Finding]:
    window = [plan.month]
    while len(window) < rules.coverage_months:
        window.insert(0, previous_month(window[0]))
    since, _ = month_bounds(window[0])
    earlier = (
        {visit.customer_id for visit in previous_plan.visits}
        if previous_plan is not None and rules.coverage_months > 1
        else set()
    )
    months = window[0] if len(window) == 1 else f"{', '.join(window[:-1])} or {window[-1]}"
    rule_words = (
        f"every plan must cover every customer of {plan.rep_id}"
        if rules.coverage_months == 1
        else f"the plans of {rules.coverage_months} consecutive months must together cover every "
        f"customer of {plan.rep_id}"
    )
    findings: list[Finding] = []
    for customer in owned.values():
        seen = last_visits.get(customer.id)
        # A visit in the window counts however it was planned (a monthly or a single plan).
        if customer.id in visit_days or customer.id in earlier or (seen is not None and seen >= since):
            continue
        last_words = f" (last visit {seen})" if seen else ""
        findings.append(
            Finding(
                rule=Rule.coverage,
                severity=rules.coverage,
                customer_id=customer.id,
                message=f"{_who(customer)} has no visit planned in {months}{last_words}; {rule_words}.",
            )
        )
    return findings
