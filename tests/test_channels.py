"""The notices and the channels on their own: what a message says in each language, how an
email, a webhook request and a robot URL are built, which answers are retried. Real HTTP
receivers on 127.0.0.1 where a channel talks to one; no database.
"""

import base64
import email
import email.policy
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from activities.channels import (
    Channels,
    DingTalkSender,
    EmailSender,
    Outgoing,
    SendFailed,
    WebhookSender,
    dingtalk_sign,
    verify_webhook,
)
from domain.actors import Role
from domain.notices import NoticeFacts, render
from domain.people import Channel, Language, Person
from settings import NotifySettings
from tests.conftest import always

DUE = datetime(2026, 3, 6, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai
LI = Person(id="mgr-li", name_zh="李明", name_en="Ming Li", role=Role.manager, email="li@example.com")


def facts(**changes: object) -> NoticeFacts:
    base: dict[str, object] = {
        "stream": "visit",
        "stream_id": "V1",
        "kind": "escalation",
        "level": 1,
        "concern": "report",
        "due_at": DUE,
        "message": "Overdue: the report on the visit at 华东五金 (owed by r-wang) was due by ...",
        "timezone": "Asia/Shanghai",
        "at": DUE + timedelta(days=2, hours=3),
        "customer_name": "华东五金 <Hardware & Co>",
        "owner_id": "r-wang",
        "owner_name": "王芳",
        "recipient_id": "mgr-li",
        "recipient_role": "manager",
        "recipient_name": "李明",
        "key": "3f2a1c9e-0000-4000-8000-000000000001",
    }
    return NoticeFacts.model_validate({**base, **changes})


# --- what a notice says ---------------------------------------------------------------------


def test_an_escalation_says_what_is_late_since_when_for_which_customer_and_what_to_do_next():
    notice = render(facts())
    assert notice.subject == "【逾期·1级】拜访报告（华东五金 <Hardware & Co>）"
    text = notice.text
    assert "已于 2026-03-06 10:30 CST 到期，至今未完成（已逾期 2 天 3 小时）" in text
    assert "客户：华东五金 <Hardware & Co>" in text and "负责人：王芳 (r-wang)" in text
    assert "升级级别：1" in text
    assert "请督促 王芳 提交拜访报告" in text and "visits waive V1 --as manager:mgr-li" in text
    assert "通知编号：3f2a1c9e-0000-4000-8000-000000000001" in text


def test_a_reminder_in_english_tells_the_rep_to_submit_the_report_with_the_command():
    notice = render(
        facts(
            kind="reminder", level=None, recipient_id="r-wang", recipient_role="rep", recipient_name="Wang"
        ),
        Language.en,
    )
    assert notice.subject == "Reminder: visit report (华东五金 <Hardware & Co>)"
    assert (
        "Reminder: the visit report (华东五金 <Hardware & Co>) is due by 2026-03-06 10:30 CST." in notice.text
    )
    assert "Next step: Submit the visit report" in notice.text
    assert "visits report V1 --as rep:r-wang --outcome" in notice.text
    assert "Overdue by" not in notice.text


def test_the_html_and_markdown_escape_every_value():
    notice = render(facts())
    assert "<Hardware" not in notice.html and "华东五金 &lt;Hardware &amp; Co&gt;" in notice.html
    assert "<Hardware" not in notice.markdown and "&lt;Hardware" in notice.markdown


def test_a_deputy_is_told_whom_they_stand_in_for():
    notice = render(facts(recipient_id="mgr-zhou", recipient_name="周杰", standing_in_for="李明 (mgr-li)"))
    assert "李明 (mgr-li) 不在岗期间，由您代为处理。" in notice.text and "代理：李明 (mgr-li)" in notice.text


def test_a_monthly_plan_notice_names_the_month_and_the_plan_commands():
    plan = facts(
        stream="plan", stream_id="r-wang-2026-12", concern="month_plan", month="2026-12", customer_name=None
    )
    assert render(plan).subject == "【逾期·1级】2026-12 月度拜访计划"
    assert "visits plan show r-wang 2026-12" in render(plan).text
    reminder = render(plan.model_copy(update={"kind": "reminder", "level": None}), Language.en)
    assert "visits plan submit r-wang 2026-12 --as rep:r-wang" in reminder.text
    assert "Monthly plan: r-wang-2026-12" in reminder.text and "Month: 2026-12" in reminder.text


def test_a_concern_without_a_template_still_says_the_events_own_sentence():
    notice = render(facts(concern="something_new", message="Overdue: something new is missing."), Language.en)
    assert "something_new (V1)" in notice.subject
    assert "Next step: Overdue: something new is missing." in notice.text


# --- the channels -------------------------------------------------------------------------


def outgoing(person: Person = LI, key: str = "3f2a1c9e-0000-4000-8000-000000000001") -> Outgoing:
    return Outgoing(key, key, person, render(facts(), person.language), {"id": key, "名字": "李明"})


def test_an_email_is_utf8_text_with_an_html_alternative_and_an_encoded_chinese_subject():
    sender = EmailSender(NotifySettings(smtp_host="127.0.0.1", smtp_from="拜访系统 <visits@example.com>"))
    raw = sender.build(outgoing()).as_bytes(policy=email.policy.SMTP)
    assert raw.isascii()  # any mail server takes it
    assert b"Subject: =?utf-8?" in raw
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Subject"] == "【逾期·1级】拜访报告（华东五金 <Hardware & Co>）"
    assert mail["To"].addresses[0].display_name == "李明 (Ming Li)"
    assert mail["From"].addresses[0].display_name == "拜访系统"
    assert mail["Message-ID"] == "<3f2a1c9e-0000-4000-8000-000000000001@visitflow>"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert "&lt;Hardware &amp; Co&gt;" in mail.get_body(("html",)).get_content()


def test_an_invalid_email_address_is_a_permanent_failure():
    sender = EmailSender(NotifySettings(smtp_host="127.0.0.1"))
    with pytest.raises(SendFailed) as failed:
        sender.build(outgoing(Person(id="x", role=Role.rep, manager_id="m", email="not an address@@")))
    assert failed.value.permanent


def test_the_webhook_signature_covers_timestamp_and_body_and_refuses_stale_requests():
    settings = NotifySettings(webhook_url="http://127.0.0.1:9/hook", webhook_secret=SecretStr("s3cret"))
    sender = WebhookSender(settings, httpx.AsyncClient())
    now = time.time()
    body, headers = sender.request(outgoing(), now=now)
    timestamp = headers["X-Visitflow-Timestamp"]
    assert (
        headers["X-Visitflow-Signature"]
        == hmac.new(b"s3cret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )
    assert "李明".encode() in body  # UTF-8, not \\u escapes
    assert verify_webhook("s3cret", headers, body, now=now)
    assert not verify_webhook("s3cret", headers, body + b" ", now=now)
    assert not verify_webhook("s3cret", headers, body, now=now + 301)  # a replay, too late
    assert not verify_webhook("s3cret", {**headers, "X-Visitflow-Timestamp": "soon"}, body, now=now)


def test_the_dingtalk_url_is_signed_as_dingtalk_documents():
    settings = NotifySettings(
        dingtalk_url=SecretStr("https://oapi.dingtalk.com/robot/send?access_token=abc"),
        dingtalk_secret=SecretStr("SEC123"),
    )
    sender = DingTalkSender(settings, httpx.AsyncClient())
    url = httpx.URL(sender.signed_url(now=1_700_000_000.123))
    assert url.params["access_token"] == "abc" and url.params["timestamp"] == "1700000000123"
    digest = hmac.new(b"SEC123", b"1700000000123\nSEC123", hashlib.sha256).digest()
    assert url.params["sign"] == base64.b64encode(digest).decode()
    assert dingtalk_sign("SEC123", "1700000000123") == url.query.decode().split("sign=")[1]


def test_a_person_is_reached_on_their_channel_else_on_the_first_that_has_an_address():
    settings = NotifySettings(
        smtp_host="127.0.0.1", wecom_url=SecretStr("http://127.0.0.1:9/wecom"), dingtalk_url=None
    )
    channels = Channels(settings, httpx.AsyncClient())
    on_wecom = Person(id="a", role=Role.director, channel=Channel.wecom, wecom_id="A", email="a@x.cn")
    wants_dingtalk = Person(
        id="b", role=Role.director, channel=Channel.dingtalk, dingtalk_id="B", email="b@x.cn"
    )
    nowhere = Person(id="c", role=Role.director, channel=Channel.dingtalk, dingtalk_id="C")
    assert channels.route(on_wecom).name is Channel.wecom  # type: ignore[union-attr]
    assert channels.route(wants_dingtalk).name is Channel.email  # type: ignore[union-attr]
    reason = channels.route(nowhere)
    assert isinstance(reason, str) and "their channel dingtalk is not set up here" in reason
    assert "configured: email, wecom" in reason


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (500, False),
        (503, False),
        (429, False),
        (408, False),
        (400, True),
        (401, True),
        (404, True),
        (301, True),
    ],
)
async def test_http_answers_are_retried_or_dead_by_their_status(http_receiver, status, permanent):
    receiver = await http_receiver(always(status))
    settings = NotifySettings(webhook_url=receiver.url, webhook_secret=SecretStr("s"))
    async with httpx.AsyncClient() as client:
        with pytest.raises(SendFailed) as failed:
            await WebhookSender(settings, client).send(outgoing())
    assert failed.value.permanent is permanent and f"HTTP {status}" in failed.value.reason


async def test_nothing_listening_is_a_passing_failure():
    from tests.conftest import free_port

    settings = NotifySettings(
        webhook_url=f"http://127.0.0.1:{free_port()}/hook", webhook_secret=SecretStr("s")
    )
    async with httpx.AsyncClient() as client:
        with pytest.raises(SendFailed) as failed:
            await WebhookSender(settings, client).send(outgoing())
    assert not failed.value.permanent and "cannot be reached" in failed.value.reason
