"""How a visit looks in the terminal: its state lines, its timeline, a table of visits.

Shared by `visits show`, `visits list`, `visits overdue` and `visits audit`.
"""

from rich.table import Table

from domain.state import VisitState
from domain.summary import VisitSummary
from domain.timeline import TimelineEntry, concern_text
from starter.cli.common import local, local_seconds, short


def _concern_words(key: str | None) -> str:
    return "-" if key is None else concern_text(key)


def timeline_table(entries: list[TimelineEntry], tz: str, *, status: bool = False) -> Table:
    """The timeline table; with `status`, the visit's status after each step too."""
    table = Table(title=f"Timeline (times in {tz})", title_justify="left", expand=False)
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time", no_wrap=True)
    table.add_column("actor", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("what / why", overflow="fold")
    if status:
        table.add_column("status after", no_wrap=True)
    for e in entries:
        why = f" — why: {short(e.why, 120)}" if e.why else ""
        cells = [str(e.seq), local_seconds(e.occurred_at, tz), f"{e.actor_id} ({e.actor_role})", e.type]
        cells.append(e.what + why)
        if status:
            cells.append(str(e.status))
        table.add_row(*cells)
    return table


def state_lines(state: VisitState, summary: VisitSummary) -> list[str]:
    """The visit at a glance: status, customer, people, plan, visit, report, promises, deadlines."""
    tz = state.policy.timezone
    plan = state.plan
    people = f"rep {state.rep_id} · manager {state.manager_id}"
    if state.director_id:
        people += f" · director {state.director_id}"
    status = str(state.status) + (f" ({state.outcome})" if state.outcome else "")
    lines = [
        f"Visit {state.visit_id}: {status}",
        f"  Customer   {plan.customer.name} ({plan.customer.id}, {plan.customer.tier})",
        f"  People     {people}",
        f"  Planned    {local(plan.scheduled_start, tz)}, {plan.duration_minutes} min {plan.method}: "
        f"{short(plan.purpose, 60)}",
    ]
    if state.execution is not None:
        x = state.execution
        lines.append(f"  Visited    {local(x.started_at, tz)}–{local(x.ended_at, tz)} {x.method}")
    if state.report_due_at is not None:
        late = " (late)" if state.report_late else ""
        lines.append(f"  Report due {local(state.report_due_at, tz)}{late}")
    if state.items:
        done = len(state.items) - summary.open_items
        lines.append(f"  Promises   {done}/{len(state.items)} completed")
    if summary.next_due_at is not None:
        lines.append(
            f"  Next due   {_concern_words(summary.next_due_concern)} by {local(summary.next_due_at, tz)}"
        )
    if summary.escalated:
        names = ", ".join(_concern_words(k) for k in summary.escalated)
        lines.append(f"  Escalated  {names} (level {summary.escalation_level})")
    return lines


def visits_table(rows: list[VisitSummary], tz: str, *, title: str, overdue: bool) -> Table:
    """Visits as rows; the overdue view drops status, manager and schedule for the deadline."""
    table = Table(title=f"{title} (times in {tz})", title_justify="left")
    table.add_column("visit", no_wrap=True)
    if not overdue:
        table.add_column("status", no_wrap=True)
    table.add_column("rep", no_wrap=True)
    if not overdue:
        table.add_column("manager", no_wrap=True)
        table.add_column("scheduled", no_wrap=True)
    table.add_column("customer")
    table.add_column("due" if overdue else "next due")
    table.add_column("due at", no_wrap=True)
    table.add_column("escalation", justify="right", no_wrap=True)
    for s in rows:
        level = str(s.escalation_level) if s.escalation_level else "-"
        cells = [s.visit_id]
        if not overdue:
            cells.append(str(s.status))
        cells.append(s.rep_id)
        if not overdue:
            cells += [s.manager_id, local(s.scheduled_start, tz)]
        cells += [
            f"{s.customer_name} ({s.customer_id})",
            _concern_words(s.next_due_concern),
            local(s.next_due_at, tz),
            level,
        ]
        table.add_row(*cells)
    return table
