"""Monthly KPIs per rep (考核), computed from the event log with the workflow's own fold.

Every figure is read from the log as it stood at `as_of` (each visit's events before the
first that occurred at or after it). Months are counted in the company time zone: a
visit's own figures in the zone of the policy it recorded, customer cadence in `timezone`.
For one rep and month ``M``:

- **planned**: the rep's visits whose plan (the latest scheduled start, after revisions
  and reschedules) falls in M, whatever became of them.
- **approved**: of those, the ones whose current plan was approved (a reschedule waiting
  for approval again is not). **executed**: checked in. **cancelled**: closed as cancelled.
- **missed**: approved, not cancelled, not checked in, and the check-in deadline (scheduled
  end + the visit's check-in grace) passed before `as_of`.
- **reports on time / late**: for the executed visits planned in M, the first report
  submission (revision 1) at or before / after the due time it was submitted against.
  **missing**: none submitted and the due time passed before `as_of` (waived reports
  included). **on-time rate**: on time ÷ (on time + late + missing); none when nothing
  was due.
- **median report delay**: the median, in hours, of (submitted − due) of the late reports.
- **escalations**: Escalated events that occurred in M on the rep's visits (any concern,
  any month of visit), in all and by level.
- **promises opened**: promised items first listed in a report submitted in M. **closed on
  time / late**: items completed in M by / after their due time. **overdue**: items of the
  rep's visits still open at ``min(as_of, end of M)`` and due before then.
- **cadence per tier**: the rep's customers of that tier (owned in `customers` when the
  registry is given; otherwise those of the rep's visits scheduled from the longest
  cadence before M up to M's end, at the tier of the latest of them) and how many kept
  their cadence: at every moment from M's start to ``min(as_of, end of M)``, the
  customer's last executed visit (its recorded start, by any rep) was at most
  `cadence_days[tier]` days old. A customer with no executed visit in time fails.

The team row adds the reps' counts, pools the late reports for its median, and judges each
customer once.
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from itertools import takewhile
from statistics import median

from pydantic import Field

from domain.calendar import zone
from domain.customers import CustomerRecord
from domain.events import (
    Escalated,
    PromisedItemCompleted,
    RecordedEvent,
    ReportSubmitted,
    VisitCheckedIn,
    VisitOutcome,
)
from domain.models import CustomerTier, Frozen, Instant
from domain.planning import month_numbers
from domain.policy import Policy
from domain.state import VisitState, evolve

DEFAULT_TIMEZONE = Policy().timezone


class TierCadence(Frozen):
    """How many of a rep's customers of one tier were judged, and how many kept the cadence."""

    customers: int = 0
    kept: int = 0
    rate: float | None = None


class RepMonthKpi(Frozen):
    """One rep's figures for one month (the module docstring defines each); `rep_id` None is the team."""

    rep_id: str | None
    month: str
    as_of: Instant
    planned: int = 0
    approved: int = 0
    executed: int = 0
    missed: int = 0
    cancelled: int = 0
    reports_on_time: int = 0
    reports_late: int = 0
    reports_missing: int = 0
    report_on_time_rate: float | None = None
    median_report_delay_hours: float | None = None
    escalations: int = 0
    escalations_by_level: dict[int, int] = Field(default_factory=dict)
    items_opened: int = 0
    items_closed_on_time: int = 0
    items_closed_late: int = 0
    items_overdue: int = 0
    cadence: dict[CustomerTier, TierCadence] = Field(default_factory=dict)

    @property
    def is_team(self) -> bool:
        return self.rep_id is None

    @property
    def reports_due(self) -> int:
        return self.reports_on_time + self.reports_late + self.reports_missing


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """The first instant of `month` (``YYYY-MM``) and of the month after, local to `timezone`."""
    year, number = month_numbers(month)
    tz = zone(timezone)
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def kept_cadence(visits: Iterable[datetime], start: datetime, until: datetime, days: int) -> bool:
    """True when, at every moment from `start` to `until`, the last of `visits` was at most
    `days` days old."""
    limit = timedelta(days=days)
    last: datetime | None = None
    for at in sorted(v for v in visits if v < until):
        # Visits up to `start` only set the age the period opens with.
        if at > start and (last is None or at - last > limit):
            return False
        last = at
    return last is not None and until - last <= limit


@dataclass
class _Visit:
    """What one visit contributes to the month, read from its log up to `as_of`."""

    state: VisitState
    start: datetime
    end: datetime
    first_report_due: datetime | None = None
    first_report_at: datetime | None = None
    items_opened: int = 0
    completed_late: list[bool] = field(default_factory=list)
    escalation_levels: list[int] = field(default_factory=list)
    items_overdue: int = 0

    @property
    def in_month(self) -> bool:
        return self.start <= self.state.plan.scheduled_start < self.end


def _read_visit(events: Sequence[RecordedEvent], month: str, as_of: datetime) -> _Visit | None:
    log = list(takewhile(lambda e: e.occurred_at < as_of, events))
    if not log:
        return None
    state = evolve(None, log[0])
    visit = _Visit(state, *month_bounds(month, state.policy.timezone))
    cut = min(as_of, visit.end)
    at_cut = state if log[0].occurred_at < cut else None
    seen_items: set[str] = set()
    for n, recorded in enumerate(log):
        if n:
            state = evolve(state, recorded)
            at_cut = state if recorded.occurred_at < cut else at_cut
        _note(visit, recorded, seen_items)
    visit.state = state
    if at_cut is not None:
        visit.items_overdue = sum(1 for item in at_cut.open_items() if item.due_at < cut)
    return visit


def _note(visit: _Visit, recorded: RecordedEvent, seen_items: set[str]) -> None:
    """Record what one event adds to the month's figures (beyond the folded state)."""
    in_month = visit.start <= recorded.occurred_at < visit.end
    event = recorded.event
    if isinstance(event, VisitCheckedIn) and visit.first_report_due is None:
        visit.first_report_due = event.report_due_at
    elif isinstance(event, ReportSubmitted):
        if event.revision == 1:
            visit.first_report_due, visit.first_report_at = event.due_at, recorded.occurred_at
        # A revised report repeats its promises: only an item listed for the first time is new.
        new = {item.item_id for item in event.items} - seen_items
        seen_items |= new
        visit.items_opened += len(new) if in_month else 0
    elif isinstance(event, PromisedItemCompleted) and in_month:
        visit.completed_late.append(event.late)
    elif isinstance(event, Escalated) and in_month:
        visit.escalation_levels.append(event.level)


@dataclass
class _Tally:
    """One rep's (or the team's) running counts."""

    planned: int = 0
    approved: int = 0
    executed: int = 0
    missed: int = 0
    cancelled: int = 0
    on_time: int = 0
    late: int = 0
    missing: int = 0
    delays: list[float] = field(default_factory=list)
    levels: Counter[int] = field(default_factory=Counter)
    opened: int = 0
    closed_on_time: int = 0
    closed_late: int = 0
    overdue: int = 0

    def add(self, v: _Visit, as_of: datetime) -> None:
        s = v.state
        self.levels.update(v.escalation_levels)
        self.opened += v.items_opened
        self.closed_late += sum(v.completed_late)
        self.closed_on_time += len(v.completed_late) - sum(v.completed_late)
        self.overdue += v.items_overdue
        if not v.in_month:
            return
        self.planned += 1
        self.approved += s.approved_at is not None
        self.cancelled += s.outcome is VisitOutcome.cancelled
        if s.execution is None:
            end = s.plan.scheduled_start + timedelta(minutes=s.plan.duration_minutes)
            deadline = end + s.policy.check_in_grace
            waiting = s.approved_at is not None and s.outcome is not VisitOutcome.cancelled
            self.missed += waiting and deadline < as_of
            return
        self.executed += 1
        due, submitted = v.first_report_due, v.first_report_at
        if due is None:
            return
        if submitted is None:
            self.missing += due < as_of
        elif submitted > due:
            self.late += 1
            self.delays.append((submitted - due) / timedelta(hours=1))
        else:
            self.on_time += 1

    def merge(self, other: "_Tally") -> None:
        # Every field adds up: counts, the list of delays, the Counter of levels.
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def empty(self) -> bool:
        flows = (self.planned, self.opened, self.closed_on_time, self.closed_late, self.overdue)
        return not any(flows) and not self.levels


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


Verdicts = Mapping[str, tuple[CustomerTier, bool]]
"""Customer id → (tier, kept its cadence)."""


def _row(rep_id: str | None, month: str, as_of: datetime, t: _Tally, judged: Verdicts) -> RepMonthKpi:
    cadence: dict[CustomerTier, TierCadence] = {}
    for tier in CustomerTier:
        verdicts = [kept for customer_tier, kept in judged.values() if customer_tier is tier]
        if verdicts:
            kept = sum(verdicts)
            cadence[tier] = TierCadence(customers=len(verdicts), kept=kept, rate=_rate(kept, len(verdicts)))
    due = t.on_time + t.late + t.missing
    return RepMonthKpi(
        rep_id=rep_id,
        month=month,
        as_of=as_of,
        planned=t.planned,
        approved=t.approved,
        executed=t.executed,
        missed=t.missed,
        cancelled=t.cancelled,
        reports_on_time=t.on_time,
        reports_late=t.late,
        reports_missing=t.missing,
        report_on_time_rate=_rate(t.on_time, due),
        median_report_delay_hours=round(median(t.delays), 2) if t.delays else None,
        escalations=sum(t.levels.values()),
        escalations_by_level=dict(sorted(t.levels.items())),
        items_opened=t.opened,
        items_closed_on_time=t.closed_on_time,
        items_closed_late=t.closed_late,
        items_overdue=t.overdue,
        cadence=cadence,
    )


def _customers_of_reps(
    visits: Sequence[_Visit],
    customers: Sequence[CustomerRecord],
    since: datetime,
    end: datetime,
) -> tuple[dict[str, set[str]], dict[str, CustomerTier]]:
    """Each rep's customers and each customer's tier: the registry's, else the visits'."""
    owned: dict[str, set[str]] = {}
    tiers: dict[str, CustomerTier] = {}
    if customers:
        for record in customers:
            owned.setdefault(record.owner_rep_id, set()).add(record.id)
            tiers[record.id] = record.tier
        return owned, tiers
    for v in sorted(visits, key=lambda v: v.state.plan.scheduled_start):
        plan = v.state.plan
        if since <= plan.scheduled_start < end:
            owned.setdefault(v.state.rep_id, set()).add(plan.customer.id)
            tiers[plan.customer.id] = plan.customer.tier  # the latest scheduled visit wins
    return owned, tiers


def kpis(
    visits: Iterable[Sequence[RecordedEvent]],
    month: str,
    *,
    as_of: datetime,
    cadence_days: Mapping[CustomerTier, int],
    customers: Sequence[CustomerRecord] = (),
    timezone: str = DEFAULT_TIMEZONE,
) -> list[RepMonthKpi]:
    """Each rep's figures for `month` (``YYYY-MM``), sorted by rep id, then the team's row.

    `visits` holds each visit's events in seq order; `timezone` is the company's, for the
    cadence window. Raises ValueError for a malformed month.
    """
    start, end = month_bounds(month, timezone)
    read = [v for events in visits if (v := _read_visit(events, month, as_of)) is not None]
    tallies: dict[str, _Tally] = {}
    for v in read:
        tallies.setdefault(v.state.rep_id, _Tally()).add(v, as_of)

    longest = max(cadence_days.values(), default=0)
    owned, tiers = _customers_of_reps(read, customers, start - timedelta(days=longest), end)
    executed: dict[str, list[datetime]] = {}
    for v in read:
        if v.state.execution is not None:
            executed.setdefault(v.state.plan.customer.id, []).append(v.state.execution.started_at)
    until = max(start, min(as_of, end))
    judged = {
        customer: (tier, kept_cadence(executed.get(customer, []), start, until, cadence_days[tier]))
        for customer, tier in tiers.items()
        if tier in cadence_days
    }

    rows: list[RepMonthKpi] = []
    team = _Tally()
    for rep_id in sorted(set(tallies) | set(owned)):
        tally = tallies.get(rep_id, _Tally())
        mine = {c: judged[c] for c in owned.get(rep_id, ()) if c in judged}
        team.merge(tally)
        if not tally.empty or mine:
            rows.append(_row(rep_id, month, as_of, tally, mine))
    rows.append(_row(None, month, as_of, team, judged))
    return rows
