"""The notification relay on real parts: a real PostgreSQL (a database per test), real SMTP
servers (aiosmtpd) and real HTTP receivers on 127.0.0.1, never a mock of a sender.

The outbox rows are the ones the real store writes: a visit (or a monthly plan) is driven
through its commands and its timers' alarms (`tests.helpers`), and each append request goes
through `EventStore.append`. The relay's clock is a test clock, moved forward to skip
backoffs, quiet hours and leases instead of sleeping.
"""

import asyncio
import hashlib
import hmac
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from pydantic import SecretStr

from activities.channels import verify_webhook
from activities.people import PeopleStore
from activities.plan_store import PlanStore
from activities.relay import Notifications, Relay, RelayReport, backoff
from activities.store import EventStore
from domain.actors import Role
from domain.people import Channel, Language, Person
from settings import NotifySettings
from tests import factory as f
from tests.conftest import accept, always, fail_first, free_port, hang
from tests.helpers import PlanDriver, VisitDriver, shanghai

pytestmark = pytest.mark.store

TZ = "Asia/Shanghai"
SECRET = "whsec-test-0123456789"
START = shanghai("2026-03-04 10:00")

DIRECTOR = Person(id="dir-zhao", name_zh="赵总", role=Role.director, email="zhao@example.com")
MANAGER = Person(
    id="mgr-li",
    name_zh="李明",
    name_en="Ming Li",
    role=Role.manager,
    manager_id="dir-zhao",
    email="li@example.com",
)
REP = Person(id="rep-wang", name_zh="王伟", role=Role.rep, manager_id="mgr-li", email="wang@example.com")


class Clock:
    """The relay's time: now, until a test moves it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def notify(**changes: Any) -> NotifySettings:
    base: dict[str, Any] = {"send_timeout": timedelta(seconds=1), "lease": timedelta(seconds=30)}
    return NotifySettings.model_validate({**base, **changes})


def relay(pool: asyncpg.Pool, settings: NotifySettings, clock: Clock, name: str = "relay-a") -> Relay:
    return Relay(pool, settings, timezone=TZ, clock=clock, name=name, rng=random.Random(7))


async def directory(pool: asyncpg.Pool, *people: Person) -> None:
    await PeopleStore(pool).upsert_many(people)


def person(base: Person, **changes: Any) -> Person:
    return Person.model_validate({**base.model_dump(), **changes})


async def late_visit(pool: asyncpg.Pool, *, alarms: int = 3, **plan: Any) -> tuple[VisitDriver, list[str]]:
    """A visit whose report is late: reminded, escalated to the manager, then to the director.
    Returns the driver and the ids of its notifications, in order."""
    driver = VisitDriver()
    store = EventStore(pool)
    await store.append(driver.send(f.submit_plan(f.new_id(), START, **plan), shanghai("2026-03-02 10:00")))
    await store.append(driver.send(f.approve(), shanghai("2026-03-02 11:00")))
    await store.append(driver.send(f.check_in(START, minutes=30), shanghai("2026-03-04 11:00")))
    ids = []
    for _ in range(alarms):
        request = driver.fire_next_alarm()
        await store.append(request)
        ids += [e.event_id for e in request.events]
    return driver, ids


async def row(pool: asyncpg.Pool, notification_id: str) -> dict[str, Any]:
    return await Notifications(pool).show(notification_id)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    """Poll `check` until it holds (a test helper that polls instead of sleeping a fixed time)."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not come true in time")


# --- email --------------------------------------------------------------------------------


async def test_a_late_report_emails_the_rep_then_the_manager_then_the_director(own_pool, smtp_server):
    smtp = await smtp_server()
    await directory(own_pool, DIRECTOR, person(MANAGER, language=Language.en), REP)
    driver, ids = await late_visit(own_pool)
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)

    report = await relay(own_pool, settings, Clock()).drain()

    assert (report.delivered, report.dead, report.retry) == (3, 0, 0)
    sent = {m["to"][0]: m for m in smtp.messages}  # sent at once: in any order
    assert sorted(sent) == ["li@example.com", "wang@example.com", "zhao@example.com"]
    reminder, escalation, director = (
        sent[to]["mail"] for to in ("wang@example.com", "li@example.com", "zhao@example.com")
    )
    # Chinese subject lines go out encoded (RFC 2047) and read back as written.
    assert b"Subject: =?utf-8?" in sent["wang@example.com"]["raw"]
    assert reminder["Subject"] == "【提醒】拜访报告（华东五金 East China Hardware）"
    assert escalation["Subject"] == "Overdue (level 1): visit report (华东五金 East China Hardware)"
    assert director["Subject"].startswith("【逾期·2级】拜访报告")
    for mail, notification_id in zip((reminder, escalation, director), ids, strict=True):
        assert mail["Message-ID"] == f"<{notification_id}@visitflow>"
        assert mail["Idempotency-Key"] == notification_id
        assert mail.get_content_type() == "multipart/alternative"
        text = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        assert driver.visit_id in text and "华东五金 East China Hardware" in html
    assert "请提交拜访报告" in reminder.get_body(("plain",)).get_content()
    assert f"visits report {driver.visit_id} --as rep:rep-wang" in reminder.get_body(("plain",)).get_content()
    manager_text = escalation.get_body(("plain",)).get_content()
    assert "Ask 王伟 (rep-wang) for the report" not in manager_text  # the owner is named once, by name
    assert "Owed by: 王伟 (rep-wang)" in manager_text and f"visits waive {driver.visit_id}" in manager_text

    shown = await row(own_pool, ids[1])
    assert shown["status"] == "delivered" and shown["channel"] == "email"
    assert shown["delivered_at"] is not None and shown["attempts"] == 1
    assert shown["resolution"]["person_ids"] == ["mgr-li"]
    assert [(a["attempt"], a["outcome"], a["channel"], a["person_id"]) for a in shown["history"]] == [
        (1, "delivered", "email", "mgr-li")
    ]


async def test_an_smtp_server_refusing_the_recipient_with_550_is_a_dead_letter(own_pool, smtp_server):
    smtp = await smtp_server(refuse={"wang@example.com": "550 5.1.1 No such user here"})
    await directory(own_pool, DIRECTOR, MANAGER, REP)
    _, ids = await late_visit(own_pool, alarms=1)
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)

    report = await relay(own_pool, settings, Clock()).drain()

    assert (report.delivered, report.dead) == (0, 1)
    shown = await row(own_pool, ids[0])
    assert shown["status"] == "dead"
    assert "550" in shown["last_error"] and "No such user" in shown["last_error"]
    assert [a["outcome"] for a in shown["history"]] == ["dead"]
    assert smtp.messages == []


async def test_an_smtp_server_that_is_down_then_comes_up_gets_the_mail_on_a_retry(own_pool, smtp_server):
    port = free_port()
    await directory(own_pool, DIRECTOR, MANAGER, REP)
    _, ids = await late_visit(own_pool, alarms=1)
    clock = Clock()
    settings = notify(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    the_relay = relay(own_pool, settings, clock)

    assert (await the_relay.drain()).retry == 1  # connection refused: passing
    waiting = await row(own_pool, ids[0])
    assert waiting["status"] == "pending" and "SMTP 127.0.0.1" in waiting["last_error"]
    assert waiting["next_attempt_at"] > clock.now
    assert (await the_relay.drain()).sends == 0  # not due yet: nothing is tried

    smtp = await smtp_server(port=port)
    clock.advance(minutes=10)
    assert (await the_relay.drain()).delivered == 1
    assert len(smtp.messages) == 1
    shown = await row(own_pool, ids[0])
    assert shown["status"] == "delivered" and shown["last_error"] is None
    assert [(a["attempt"], a["outcome"]) for a in shown["history"]] == [(1, "retry"), (2, "delivered")]


# --- the webhook and the robots -------------------------------------------------------------


async def test_the_webhook_gets_signed_json_with_the_notifications_id_as_idempotency_key(
    own_pool, http_receiver
):
    receiver = await http_receiver(accept)
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook, email=""))
    driver, ids = await late_visit(own_pool, alarms=1)
    settings = notify(webhook_url=receiver.url, webhook_secret=SecretStr(SECRET))

    assert (await relay(own_pool, settings, Clock()).drain()).delivered == 1

    (request,) = receiver.requests
    timestamp = request.headers["x-visitflow-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-visitflow-signature"] == expected
    assert verify_webhook(SECRET, request.headers, request.body)
    assert not verify_webhook(SECRET, request.headers, request.body.replace(b"rep-wang", b"rep-wong"))
    assert not verify_webhook("another secret", request.headers, request.body)
    assert request.headers["idempotency-key"] == ids[0]
    body = request.json()
    assert body["id"] == ids[0] and body["idempotency_key"] == ids[0]
    assert (body["stream"], body["stream_id"], body["kind"], body["concern"]) == (
        "visit",
        driver.visit_id,
        "reminder",
        "report",
    )
    assert body["person"] == {"id": "rep-wang", "name": "王伟", "language": "zh"}
    assert body["customer_name"] == "华东五金 East China Hardware"
    assert body["subject"].startswith("【提醒】") and "请提交拜访报告" in body["text"]
    assert (await row(own_pool, ids[0]))["channel"] == "webhook"


async def test_the_dingtalk_robot_gets_markdown_mentioning_the_person_on_a_signed_url(
    own_pool, http_receiver
):
    receiver = await http_receiver(accept)
    await directory(
        own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.dingtalk, dingtalk_id="ding-wang")
    )
    _, ids = await late_visit(own_pool, alarms=1)
    secret = "SEC0123456789abcdef"
    settings = notify(
        dingtalk_url=SecretStr(f"{receiver.url}?access_token=tok123"), dingtalk_secret=SecretStr(secret)
    )

    assert (await relay(own_pool, settings, Clock()).drain()).delivered == 1

    (request,) = receiver.requests
    assert request.query["access_token"] == "tok123"
    timestamp = request.query["timestamp"]
    assert abs(int(timestamp) - datetime.now(UTC).timestamp() * 1000) < 60_000  # milliseconds
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    import base64

    assert request.query["sign"] == base64.b64encode(digest).decode()  # parse_qsl undid the URL encoding
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert body["at"] == {"atUserIds": ["ding-wang"], "isAtAll": False}
    assert body["markdown"]["title"].startswith("【提醒】拜访报告")
    assert body["markdown"]["text"].endswith("@ding-wang") and "请提交拜访报告" in body["markdown"]["text"]
    assert (await row(own_pool, ids[0]))["channel"] == "dingtalk"


async def test_the_wecom_robot_gets_markdown_mentioning_the_person_by_wecom_id(own_pool, http_receiver):
    receiver = await http_receiver(accept)
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.wecom, wecom_id="WangWei"))
    await late_visit(own_pool, alarms=1)
    settings = notify(wecom_url=SecretStr(f"{receiver.url}?key=693a91f6"))

    assert (await relay(own_pool, settings, Clock()).drain()).delivered == 1

    (request,) = receiver.requests
    assert request.query == {"key": "693a91f6"}
    body = request.json()
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("### 【提醒】拜访报告") and content.endswith("<@WangWei>")


async def test_a_robot_refusing_the_message_is_dead_and_one_rate_limiting_it_is_retried(
    own_pool, http_receiver
):
    refusing = await http_receiver(always(200, b'{"errcode":310000,"errmsg":"keywords not in content"}'))
    limiting = await http_receiver(always(200, b'{"errcode":45009,"errmsg":"api freq out of limit"}'))
    await directory(
        own_pool,
        DIRECTOR,
        person(MANAGER, channel=Channel.wecom, wecom_id="LiMing"),
        person(REP, channel=Channel.dingtalk, dingtalk_id="ding-wang"),
    )
    _, ids = await late_visit(own_pool, alarms=2)
    settings = notify(dingtalk_url=SecretStr(refusing.url), wecom_url=SecretStr(limiting.url))

    report = await relay(own_pool, settings, Clock()).drain()

    assert (report.dead, report.retry) == (1, 1)
    dead, retried = await row(own_pool, ids[0]), await row(own_pool, ids[1])
    assert dead["status"] == "dead" and "errcode 310000" in dead["last_error"]
    assert retried["status"] == "pending" and "errcode 45009" in retried["last_error"]


async def test_a_webhook_answering_500_then_200_is_retried_with_backoff_under_the_same_key(
    own_pool, http_receiver
):
    receiver = await http_receiver(fail_first(1, 500))
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook))
    _, ids = await late_visit(own_pool, alarms=1)
    clock = Clock()
    settings = notify(
        webhook_url=receiver.url, webhook_secret=SecretStr(SECRET), retry_base=timedelta(seconds=30)
    )
    the_relay = relay(own_pool, settings, clock)

    assert (await the_relay.drain()).retry == 1
    waiting = await row(own_pool, ids[0])
    assert waiting["status"] == "pending" and "HTTP 500" in waiting["last_error"]
    wait = waiting["next_attempt_at"] - clock.now
    assert timedelta(seconds=15) <= wait <= timedelta(seconds=30)  # the first backoff, jittered
    assert (await the_relay.drain()).sends == 0

    clock.advance(seconds=31)
    assert (await the_relay.drain()).delivered == 1
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [ids[0], ids[0]]
    shown = await row(own_pool, ids[0])
    assert [(a["attempt"], a["outcome"]) for a in shown["history"]] == [(1, "retry"), (2, "delivered")]
    assert shown["status"] == "delivered" and shown["attempts"] == 2


async def test_a_webhook_that_hangs_is_cut_off_at_the_timeout_and_retried(own_pool, http_receiver):
    receiver = await http_receiver(hang)
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook))
    _, ids = await late_visit(own_pool, alarms=1)
    settings = notify(
        webhook_url=receiver.url, webhook_secret=SecretStr(SECRET), send_timeout=timedelta(seconds=1)
    )

    report = await relay(own_pool, settings, Clock()).drain()

    assert report.retry == 1 and len(receiver.requests) == 1
    shown = await row(own_pool, ids[0])
    assert shown["status"] == "pending" and "did not answer within 1 s" in shown["last_error"]
    (attempt,) = shown["history"]
    assert attempt["outcome"] == "retry" and 900 <= attempt["duration_ms"] < 5000


async def test_a_webhook_answering_400_is_a_dead_letter_with_the_answer(own_pool, http_receiver):
    receiver = await http_receiver(always(400, b'{"error":"unknown person"}'))
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook))
    _, ids = await late_visit(own_pool, alarms=1)
    settings = notify(webhook_url=receiver.url, webhook_secret=SecretStr(SECRET))

    assert (await relay(own_pool, settings, Clock()).drain()).dead == 1
    shown = await row(own_pool, ids[0])
    assert (
        shown["status"] == "dead"
        and "HTTP 400" in shown["last_error"]
        and "unknown person" in shown["last_error"]
    )


async def test_retries_that_run_out_end_in_a_dead_letter(own_pool, http_receiver):
    receiver = await http_receiver(always(503))
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook))
    _, ids = await late_visit(own_pool, alarms=1)
    clock = Clock()
    settings = notify(webhook_url=receiver.url, webhook_secret=SecretStr(SECRET), max_attempts=3)
    the_relay = relay(own_pool, settings, clock)

    for _ in range(3):
        await the_relay.drain()
        clock.advance(hours=2)
    shown = await row(own_pool, ids[0])
    assert shown["status"] == "dead" and shown["last_error"].startswith("gave up after 3 attempts")
    assert len(receiver.requests) == 3
    assert (await the_relay.drain()).sends == 0  # dead stays dead


# --- the directory: addresses, channels, quiet hours, deputies --------------------------------


async def test_a_person_without_an_address_is_a_dead_letter_that_says_so(own_pool, smtp_server):
    smtp = await smtp_server()
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, email=""))
    _, ids = await late_visit(own_pool, alarms=1)
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)

    assert (await relay(own_pool, settings, Clock()).drain()).dead == 1
    shown = await row(own_pool, ids[0])
    assert shown["status"] == "dead"
    assert "rep-wang cannot be reached: they have no email address" in shown["last_error"]


async def test_a_channel_not_set_up_here_falls_back_to_email_or_is_a_dead_letter(own_pool, smtp_server):
    smtp = await smtp_server()
    await directory(
        own_pool,
        DIRECTOR,
        person(MANAGER, channel=Channel.dingtalk, dingtalk_id="ding-li", email=""),
        person(REP, channel=Channel.dingtalk, dingtalk_id="ding-wang"),
    )
    _, ids = await late_visit(own_pool, alarms=2)
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)

    report = await relay(own_pool, settings, Clock()).drain()

    assert (report.delivered, report.dead) == (1, 1)
    rep_row, manager_row = await row(own_pool, ids[0]), await row(own_pool, ids[1])
    assert rep_row["status"] == "delivered" and rep_row["channel"] == "email"  # the fallback
    assert manager_row["status"] == "dead"
    assert (
        "their channel dingtalk is not set up here (VISITFLOW_NOTIFY__DINGTALK_URL)"
        in manager_row["last_error"]
    )


async def test_a_recipient_who_is_not_in_the_directory_is_a_dead_letter_until_re_driven(
    own_pool, smtp_server
):
    smtp = await smtp_server()
    await directory(own_pool, DIRECTOR)
    _, ids = await late_visit(own_pool, alarms=1)
    clock = Clock()
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)
    the_relay = relay(own_pool, settings, clock)

    assert (await the_relay.drain()).dead == 1
    shown = await row(own_pool, ids[0])
    assert shown["last_error"] == "rep-wang is not in the directory."
    assert shown["resolution"]["problem"] == "rep-wang is not in the directory."

    # The directory is put right, and the dead letter is sent again: resolved anew.
    await directory(own_pool, MANAGER, REP)
    assert await Notifications(own_pool).retry([ids[0][:8]], now=clock.now) == [
        {"id": ids[0], "stream": "visit"}
    ]
    assert (await the_relay.drain()).delivered == 1
    shown = await row(own_pool, ids[0])
    assert shown["status"] == "delivered" and shown["resolution"]["person_ids"] == ["rep-wang"]
    assert [(a["attempt"], a["outcome"]) for a in shown["history"]] == [(1, "dead"), (2, "delivered")]
    assert len(smtp.messages) == 1


async def test_quiet_hours_postpone_a_notification_to_their_end(own_pool, smtp_server):
    smtp = await smtp_server()
    clock = Clock()
    local = clock.now.astimezone(ZoneInfo(TZ))
    quiet_from = (local - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    quiet_to = (local + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, quiet_from=quiet_from, quiet_to=quiet_to))
    _, ids = await late_visit(own_pool, alarms=1)
    clock.advance(seconds=5)  # past the row's creation, still in the quiet hours
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, max_attempts=1)
    the_relay = relay(own_pool, settings, clock)

    assert (await the_relay.drain()).postponed == 1
    waiting = await row(own_pool, ids[0])
    end = datetime.combine((local + timedelta(hours=2)).date(), quiet_to, tzinfo=ZoneInfo(TZ))
    assert waiting["status"] == "pending" and waiting["next_attempt_at"] == end
    assert waiting["history"][0]["outcome"] == "postponed" and smtp.messages == []

    clock.now = end.astimezone(UTC)
    # Quiet hours used none of the retry budget (max_attempts=1): the send still happens.
    assert (await the_relay.drain()).delivered == 1
    assert len(smtp.messages) == 1


async def test_a_deputy_receives_the_absent_managers_escalation_and_the_resolution_says_why(
    own_pool, smtp_server
):
    smtp = await smtp_server()
    today = datetime.now(ZoneInfo(TZ)).date()
    deputy = Person(
        id="mgr-zhou", name_zh="周丽", role=Role.manager, manager_id="dir-zhao", email="zhou@example.com"
    )
    away = person(
        MANAGER, away_from=today - timedelta(days=1), away_to=today + timedelta(days=5), deputy_id="mgr-zhou"
    )
    await directory(own_pool, DIRECTOR, deputy, away, REP)
    _, ids = await late_visit(own_pool, alarms=2)
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)

    assert (await relay(own_pool, settings, Clock()).drain()).delivered == 2

    escalation = next(m for m in smtp.messages if m["to"] == ["zhou@example.com"])["mail"]
    text = escalation.get_body(("plain",)).get_content()
    assert "李明 (Ming Li) (mgr-li) 不在岗期间，由您代为处理" in text
    shown = await row(own_pool, ids[1])
    resolution = shown["resolution"]
    assert resolution["person_ids"] == ["mgr-zhou"] and resolution["standing_in"] == {"mgr-zhou": "mgr-li"}
    assert resolution["on"] == today.isoformat()
    assert any("deputy mgr-zhou stands in" in step for step in resolution["steps"])
    assert shown["history"][0]["person_id"] == "mgr-zhou"


async def test_the_directors_group_reaches_each_director_under_a_key_of_their_own(own_pool, http_receiver):
    receiver = await http_receiver(accept)
    other = Person(id="dir-qian", name_zh="钱总", role=Role.director)
    await directory(own_pool, DIRECTOR, other, person(MANAGER, manager_id=None), REP)
    _, ids = await late_visit(own_pool, alarms=3, director_id=None)
    settings = notify(webhook_url=receiver.url, webhook_secret=SecretStr(SECRET))

    assert (await relay(own_pool, settings, Clock()).drain()).delivered == 3

    to_directors = [r for r in receiver.requests if r.json()["recipient"]["id"] == "directors"]
    assert sorted(r.headers["idempotency-key"] for r in to_directors) == [
        f"{ids[2]}:dir-qian",
        f"{ids[2]}:dir-zhao",
    ]
    shown = await row(own_pool, ids[2])
    assert shown["resolution"]["person_ids"] == ["dir-qian", "dir-zhao"] and shown["channel"] == "webhook"


async def test_a_monthly_plans_reminder_names_the_month_and_the_plan_command(own_pool, smtp_server):
    smtp = await smtp_server()
    driver = PlanDriver("2026-12")
    rep = person(REP, id=driver.rep.id)
    await directory(own_pool, DIRECTOR, MANAGER, rep)
    store = PlanStore(own_pool)
    await store.append(driver.open())
    request = driver.fire()
    await store.append(request)
    settings = notify(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)

    assert (await relay(own_pool, settings, Clock()).drain()).delivered == 1

    mail = smtp.messages[0]["mail"]
    assert mail["Subject"] == "【提醒】2026-12 月度拜访计划"
    assert f"visits plan submit {driver.rep.id} 2026-12" in mail.get_body(("plain",)).get_content()
    shown = await row(own_pool, request.events[0].event_id)
    assert shown["stream"] == "plan" and shown["status"] == "delivered"


# --- several relays, and a relay that dies ---------------------------------------------------


async def test_a_relay_killed_mid_send_leaves_its_rows_to_the_next_relay_after_the_lease(
    own_pool, http_receiver
):
    receiver = await http_receiver(accept)
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook))
    _, ids = await late_visit(own_pool, alarms=1)
    clock = Clock()
    settings = notify(webhook_url=receiver.url, webhook_secret=SecretStr(SECRET), lease=timedelta(seconds=30))
    dying, next_relay = (
        relay(own_pool, settings, clock, "relay-dying"),
        relay(own_pool, settings, clock, "relay-b"),
    )

    # The first relay claims and sends, and dies before it records anything.
    async with dying._channels() as channels:
        (job,) = await dying.claim(10)
        await dying.deliver(job, channels)
    claimed = await row(own_pool, ids[0])
    assert (claimed["status"], claimed["claimed_by"]) == ("delivering", "relay-dying")

    assert (await next_relay.drain()).sends == 0  # the lease holds: nobody else sends it
    clock.advance(seconds=31)
    assert (await next_relay.drain()).delivered == 1

    # Sent twice under one key, so the receiver drops the repeat; delivered once for the relays.
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [ids[0], ids[0]]
    shown = await row(own_pool, ids[0])
    assert shown["status"] == "delivered" and shown["claimed_by"] is None
    assert [(a["attempt"], a["outcome"], a["relay"]) for a in shown["history"]] == [
        (1, "expired", "relay-dying"),
        (2, "delivered", "relay-b"),
    ]
    # The dead relay's late word changes nothing: the row is no longer its claim.
    assert await dying.record([await dying.deliver(job, channels)]) == {"lost": 1, "sends": 1}
    assert (await row(own_pool, ids[0]))["status"] == "delivered"


async def test_two_relays_at_once_send_each_notification_exactly_once(own_pool, http_receiver):
    async def slow(request, n):
        await asyncio.sleep(0.002)  # the relays overlap
        return await accept(request, n)

    receiver = await http_receiver(slow)
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook))
    ids: list[str] = []
    for _ in range(15):
        ids += (await late_visit(own_pool))[1]
    settings = notify(webhook_url=receiver.url, webhook_secret=SecretStr(SECRET), batch_size=5, concurrency=4)
    clock = Clock()
    one, two = relay(own_pool, settings, clock, "relay-1"), relay(own_pool, settings, clock, "relay-2")

    first, second = await asyncio.gather(one.drain(), two.drain())

    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert sorted(keys) == sorted(ids) and len(keys) == 45
    assert first.delivered + second.delivered == 45 and first.delivered and second.delivered
    statuses = await own_pool.fetch("SELECT status, count(*) FROM notifications GROUP BY status")
    assert {r["status"]: r["count"] for r in statuses} == {"delivered": 45}


async def test_a_running_relay_delivers_until_stopped_then_stops_cleanly(own_pool, http_receiver):
    receiver = await http_receiver(accept)
    await directory(own_pool, DIRECTOR, MANAGER, person(REP, channel=Channel.webhook))
    await late_visit(own_pool)
    settings = notify(
        webhook_url=receiver.url, webhook_secret=SecretStr(SECRET), poll_interval=timedelta(seconds=1)
    )
    stop = asyncio.Event()
    the_relay = Relay(own_pool, settings, timezone=TZ)  # the real clock: rows come while it runs
    running = asyncio.create_task(the_relay.run(stop))

    async def delivered(n: int) -> bool:
        return await own_pool.fetchval("SELECT count(*) FROM notifications WHERE status = 'delivered'") == n

    await eventually(lambda: delivered(3))
    # A notification written while the relay runs goes out on its next poll.
    await late_visit(own_pool, alarms=1)
    await eventually(lambda: delivered(4))
    stop.set()
    await asyncio.wait_for(running, 10)
    assert len(receiver.requests) == 4


def test_backoff_doubles_per_attempt_up_to_retry_max_with_jitter():
    settings = notify(retry_base=timedelta(seconds=10), retry_max=timedelta(seconds=60))
    rng = random.Random(1)
    for attempt, full in ((1, 10), (2, 20), (3, 40), (4, 60), (9, 60)):
        waits = [backoff(settings, attempt, rng).total_seconds() for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits), (attempt, waits)
        assert len(set(waits)) > 1  # jittered


def test_the_settings_keep_secrets_out_of_their_text():
    settings = notify(
        smtp_password=SecretStr("smtp-pass"),
        webhook_url="http://127.0.0.1/hook",
        webhook_secret=SecretStr("hook-secret"),
        dingtalk_url=SecretStr("https://oapi.dingtalk.com/robot/send?access_token=tok"),
        dingtalk_secret=SecretStr("SECding"),
        wecom_url=SecretStr("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wkey"),
    )
    shown = f"{settings!r} {settings} {settings.model_dump()} {settings.model_dump_json()}"
    for secret in ("smtp-pass", "hook-secret", "access_token=tok", "SECding", "key=wkey"):
        assert secret not in shown


def test_a_webhook_without_a_secret_is_refused_by_the_settings():
    with pytest.raises(ValueError, match="webhook_url needs webhook_secret"):
        notify(webhook_url="http://127.0.0.1/hook")


async def test_the_dev_mail_sink_keeps_each_message_as_an_eml_file_and_the_banner_says_where(
    own_pool, tmp_path
):
    from connect import Endpoints
    from settings import Settings
    from starter.dev import MailSink, banner

    sink = MailSink(tmp_path / "mail")
    port = await sink.start()
    try:
        await directory(own_pool, DIRECTOR, MANAGER, REP)
        _, ids = await late_visit(own_pool, alarms=1)
        settings = notify(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
        assert (await relay(own_pool, settings, Clock()).drain()).delivered == 1
    finally:
        await sink.stop()
    (kept,) = (tmp_path / "mail").glob("*.eml")
    assert kept.name.endswith("-wang@example.com.eml")
    assert f"Message-ID: <{ids[0]}@visitflow>" in kept.read_text()
    endpoints = Endpoints(temporal_address="127.0.0.1:7233", database_url="postgresql://x")
    shown = banner(
        Settings(data_dir=tmp_path), endpoints, mail=f"{sink.directory}  (SMTP sink on 127.0.0.1:{port})"
    )
    assert f"Mail        {tmp_path / 'mail'}" in shown


async def test_with_no_channel_set_up_notifications_wait_pending_rather_than_die(own_pool):
    await directory(own_pool, DIRECTOR, MANAGER, REP)
    _, ids = await late_visit(own_pool, alarms=1)

    assert await relay(own_pool, notify(), Clock()).drain() == RelayReport()

    shown = await row(own_pool, ids[0])
    assert (shown["status"], shown["attempts"], shown["history"]) == ("pending", 0, [])
