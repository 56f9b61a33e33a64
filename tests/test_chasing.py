"""Nothing left unchased: everything that waits on a person has a deadline and the ladder.

On the time-skipping server with the settings' defaults: a plan still to approve is
reminded before the visit time, a report waits for the manager's review only so long, a
reminder repeats while its deadline has not come, and the ladder's top rung is told again
while the concern stays overdue.
"""

from datetime import timedelta

from domain.actors import Actor, Role
from domain.calendar import add_working_days
from domain.events import Escalated, RecordedEvent, ReminderSent
from domain.policy import Policy
from tests import factory as f
from tests.test_workflow import engine, opened_approved, skip_to


def chased(logged: list[RecordedEvent]) -> list[tuple[str, str, int, int, str]]:
    """(event type, concern, level, repeat, recipient id) of each reminder and escalation."""
    return [
        (e.type, e.event.concern, getattr(e.event, "level", 0), e.event.repeat, e.event.recipient.id)
        for e in logged
        if isinstance(e.event, ReminderSent | Escalated)
    ]


async def test_a_plan_still_to_approve_is_reminded_to_the_manager_before_the_visit_time(
    env, pool, task_queue
):
    async with engine(env, pool, task_queue, Policy()) as client:
        visit_id = f.new_id()
        start = (await env.get_current_time()).replace(microsecond=0) + timedelta(days=4)
        await client.start_visit(f.submit_plan(visit_id, start))
        await skip_to(env, start - timedelta(hours=23))
        logged = await client.history(visit_id)
        assert chased(logged) == [("ReminderSent", "plan_approval", 0, 0, f.MANAGER.id)]
        reminder = logged[-1]
        assert isinstance(reminder.event, ReminderSent)
        assert reminder.event.recipient == Actor(id=f.MANAGER.id, role=Role.manager)
        assert abs(reminder.occurred_at - (start - timedelta(hours=24))) < timedelta(seconds=2)
        assert "approval of the plan" in reminder.event.message


async def test_a_report_waiting_for_review_is_chased_up_the_ladder_and_its_top_rung_told_again(
    env, pool, task_queue
):
    async with engine(env, pool, task_queue, Policy()) as client:
        visit_id, start = await opened_approved(client, env)
        await skip_to(env, start + timedelta(hours=1))
        await client.send(visit_id, f.check_in(start))
        submitted = await client.send(visit_id, f.report())
        state = await client.state(visit_id)
        assert state.report_submitted_at is not None
        due = add_working_days(state.report_submitted_at, 2, state.policy)
        await skip_to(env, due + timedelta(hours=49))
        assert submitted.status == "report_submitted"
        review = [c for c in chased(await client.history(visit_id)) if c[1] == "review"]
        assert review == [
            ("ReminderSent", "review", 0, 0, f.MANAGER.id),
            ("Escalated", "review", 1, 0, f.MANAGER.id),
            ("Escalated", "review", 2, 0, f.DIRECTOR.id),
            ("Escalated", "review", 2, 1, f.DIRECTOR.id),
        ]
        # Accepting the report ends the chase: nothing more is sent about it.
        await client.send(visit_id, f.accept())
        await skip_to(env, due + timedelta(days=5))
        assert len([c for c in chased(await client.history(visit_id)) if c[1] == "review"]) == 4


async def test_a_reminder_repeats_until_its_deadline_and_silence_never_follows_the_last_rung(
    env, pool, task_queue
):
    policy = Policy(report_deadline="PT72H", reminder_before="PT48H", review_working_days=None)
    async with engine(env, pool, task_queue, policy) as client:
        visit_id, start = await opened_approved(client, env)
        await skip_to(env, start + timedelta(hours=1))
        await client.send(visit_id, f.check_in(start, minutes=30))
        due = start + timedelta(minutes=30) + timedelta(hours=72)
        await skip_to(env, due + timedelta(hours=73))
        logged = await client.history(visit_id)
        assert chased(logged) == [
            ("ReminderSent", "report", 0, 0, f.REP.id),
            ("ReminderSent", "report", 0, 1, f.REP.id),
            ("Escalated", "report", 1, 0, f.MANAGER.id),
            ("Escalated", "report", 2, 0, f.DIRECTOR.id),
            ("Escalated", "report", 2, 1, f.DIRECTOR.id),
            ("Escalated", "report", 2, 2, f.DIRECTOR.id),
        ]
        times = [e.occurred_at for e in logged if isinstance(e.event, ReminderSent | Escalated)]
        hours = [timedelta(hours=h) for h in (-48, -24, 0, 24, 48, 72)]
        assert [abs(t - (due + h)) < timedelta(seconds=2) for t, h in zip(times, hours, strict=True)] == [
            True
        ] * 6
        repeat = logged[-1].event
        assert isinstance(repeat, Escalated) and repeat.message.startswith("Still overdue: the report")
        assert repeat.scheduled_for == due + timedelta(hours=72)
