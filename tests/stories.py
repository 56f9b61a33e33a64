"""A whole visit recorded in a real log, for the audit tests: one story, known times."""

from datetime import datetime
from zoneinfo import ZoneInfo

from activities.store import EventStore
from domain.commands import ReturnReport
from tests import factory as f
from tests.helpers import VisitDriver

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


VISIT_START = at("2026-11-23 09:00")


async def story(store: EventStore, visit_id: str | None = None) -> VisitDriver:
    """A visit with a late, returned report and a kept promise: 12 events, closed.

    1 PlanSubmitted 11-16 10:00 · 2 PlanApproved 11-17 10:00 · 3 VisitCheckedIn 11-23 12:00
    (visit 09:00-09:25, report due 11-25 09:25) · 4 ReminderSent 11-24 09:25 · 5 Escalated to
    the manager 11-25 09:25 · 6 ReportSubmitted (late) 11-25 15:00 · 7 ReportReturned 11-25 17:00
    · 8 ReportSubmitted 11-26 10:00 · 9 ReportAccepted 11-26 11:00 · 10 PromisedItemCompleted
    11-27 10:00 · 11 VisitClosed (same command).
    """
    driver = VisitDriver()
    vid = visit_id or f.new_id()
    steps = [
        (f.submit_plan(vid, VISIT_START), at("2026-11-16 10:00")),
        (f.approve(comment="Bring the price list"), at("2026-11-17 10:00")),
        (f.check_in(VISIT_START), at("2026-11-23 12:00")),
    ]
    for command, when in steps:
        await store.append(driver.send(command, when))
    await store.append(driver.fire_next_alarm())  # reminder 24 h before the report is due
    await store.append(driver.fire_next_alarm())  # escalation to the manager at the deadline
    due = at("2026-11-30 18:00")
    await store.append(driver.send(f.report(("samples", due)), at("2026-11-25 15:00")))
    back = ReturnReport(command_id=f.new_id("c"), actor=f.MANAGER, reason="Add the competitor's prices")
    await store.append(driver.send(back, at("2026-11-25 17:00")))
    await store.append(driver.send(f.report(("samples", due)), at("2026-11-26 10:00")))
    await store.append(driver.send(f.accept(), at("2026-11-26 11:00")))
    await store.append(driver.send(f.complete("samples"), at("2026-11-27 10:00")))
    return driver
