"""The channels a notification goes out on: email (SMTP), a signed webhook, the DingTalk and
WeCom group robots.

Each channel sends one `Outgoing` message (one notification for one person) and either
returns or raises `SendFailed`, whose `permanent` flag decides between a retry and the dead
letter: a refused recipient (SMTP 5xx), an HTTP 4xx or a robot's refusal are permanent; a
connection refused, a timeout, an HTTP 5xx, an SMTP 4xx are not. The HTTP channels share
one `httpx.AsyncClient` (its connection pool), which the relay owns.

The webhook's signature: ``X-Visitflow-Signature`` is the hex HMAC-SHA256, keyed with
``VISITFLOW_NOTIFY__WEBHOOK_SECRET``, of ``X-Visitflow-Timestamp`` (Unix seconds), a dot,
and the raw body (`verify_webhook` is what a receiver does). DingTalk's signed URL appends
``timestamp`` (Unix milliseconds) and ``sign``, the URL-encoded base64 HMAC-SHA256 of
``timestamp + "\\n" + secret`` keyed with the secret.
"""

import base64
import email.errors
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

import aiosmtplib
import httpx

from domain.notices import Notice
from domain.people import Channel, Person
from settings import NotifySettings

TIMESTAMP_HEADER = "X-Visitflow-Timestamp"
SIGNATURE_HEADER = "X-Visitflow-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_JSON = {"Content-Type": "application/json; charset=utf-8"}

FALLBACK_ORDER = (Channel.email, Channel.wecom, Channel.dingtalk, Channel.webhook)
"""Where a person is reached when their own channel is not set up here or has no address for them."""

# The robots answer HTTP 200 with an error code; these mean "later", the others "never".
_ROBOT_TRANSIENT = {
    Channel.dingtalk: {-1, 130101},  # system busy; sending too fast (20 messages a minute)
    Channel.wecom: {-1, 45009},  # system busy; API frequency out of limit
}


class SendFailed(Exception):
    """A channel could not deliver; `permanent` says that trying again cannot help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Outgoing:
    """One notification for one person, rendered, with its idempotency key."""

    key: str
    """Stable across attempts: the notification id (with the person's id when it reaches several)."""
    notification_id: str
    person: Person
    notice: Notice
    payload: Mapping[str, Any] = field(default_factory=dict)
    """The notification as the webhook's JSON body carries it."""


class Sender(Protocol):
    name: Channel
    formats: frozenset[str]
    """The forms of the notice this channel sends (`domain.notices.render`'s `formats`)."""

    def address(self, person: Person) -> str:
        """The person's address on this channel ("" when they have none)."""
        ...

    async def send(self, message: Outgoing) -> None:
        """Deliver `message`, or raise `SendFailed`."""
        ...


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def _message_id(key: str) -> str:
    local = "".join(c if c.isalnum() or c in "-." else "." for c in key)
    return f"<{local}@visitflow>"


class EmailSender:
    """Email over SMTP (aiosmtplib): plain text with an HTML alternative, STARTTLS or TLS, auth."""

    name = Channel.email
    formats = frozenset({"text", "html"})

    def __init__(self, settings: NotifySettings) -> None:
        if not settings.smtp_host:
            raise ValueError("no SMTP host is configured")
        self.settings = settings

    def address(self, person: Person) -> str:
        return person.email

    def build(self, message: Outgoing) -> EmailMessage:
        """The email for `message`: UTF-8 throughout, the subject encoded for any mail server."""
        s, person = self.settings, message.person
        try:
            to = Address(display_name=person.display_name, addr_spec=person.email)
        except (ValueError, IndexError, email.errors.HeaderParseError) as err:
            raise SendFailed(
                f"{person.id}'s email address {person.email!r} is not valid: {err}", permanent=True
            ) from None
        mail = EmailMessage()
        mail["From"] = s.smtp_from
        mail["To"] = to
        mail["Subject"] = message.notice.subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        # The same Message-ID on every attempt: mail systems and readers drop the repeat.
        mail["Message-ID"] = _message_id(message.key)
        mail["X-Visitflow-Notification"] = message.notification_id
        mail[IDEMPOTENCY_HEADER] = message.key
        mail["Content-Language"] = "zh-CN" if message.notice.language == "zh" else "en"
        mail.set_content(message.notice.text)
        mail.add_alternative(message.notice.html, subtype="html")
        return mail

    async def send(self, message: Outgoing) -> None:
        s = self.settings
        mail = self.build(message)
        try:
            await aiosmtplib.send(
                mail,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_user or None,
                password=_secret(s.smtp_password) or None,
                start_tls=s.smtp_starttls,
                use_tls=s.smtp_tls,
                timeout=s.send_timeout.total_seconds(),
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            codes = [r.code for r in err.recipients]
            text = "; ".join(f"{r.code} {r.message}".strip() for r in err.recipients)
            raise SendFailed(
                f"the SMTP server refused {message.person.email}: {text}",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPDataError as err:
            raise SendFailed(
                f"the SMTP server refused the message: {err.code} {err.message}", permanent=err.code >= 500
            ) from None
        except aiosmtplib.SMTPResponseException as err:
            # Refused sender, authentication, greeting: the server's or our settings' fault, not
            # this message's; retried, so the rows go out once the settings are fixed.
            raise SendFailed(f"the SMTP server answered {err.code} {err.message}", permanent=False) from None
        except (aiosmtplib.SMTPException, OSError) as err:
            raise SendFailed(f"SMTP {s.smtp_host}:{s.smtp_port}: {err}", permanent=False) from None


def _check_http(response: httpx.Response, what: str) -> None:
    code = response.status_code
    if 200 <= code < 300:
        return
    detail = f"{what} answered HTTP {code}: {response.text[:200]}".strip()
    # 408 and 429 ask to come back later; any other 4xx says the request itself is wrong.
    permanent = (400 <= code < 500 and code not in (408, 429)) or 300 <= code < 400
    raise SendFailed(detail, permanent=permanent)


def _unreachable(err: httpx.TransportError, what: str, seconds: float) -> SendFailed:
    """A request that got no answer: always worth another try."""
    if isinstance(err, httpx.TimeoutException):
        return SendFailed(f"{what} did not answer within {seconds:g} s", permanent=False)
    return SendFailed(f"{what} cannot be reached: {err or type(err).__name__}", permanent=False)


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 of ``timestamp + "." + body``, keyed with `secret`."""
    return hmac.digest(secret.encode(), timestamp.encode() + b"." + body, "sha256").hex()


def verify_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None, tolerance: float = 300
) -> bool:
    """What a receiver does: recompute the signature over the raw body and compare in constant
    time, and refuse a timestamp more than `tolerance` seconds away (a replayed request)."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    signature = lower.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or abs((now if now is not None else time.time()) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign_webhook(secret, timestamp, body), signature)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def json_body(value: Any) -> bytes:
    """Compact UTF-8 JSON, Chinese kept as is."""
    return _ENCODER.encode(value).encode()


class WebhookSender:
    """The company's own system: one URL for everyone, a signed JSON body, an idempotency key."""

    name = Channel.webhook
    formats = frozenset({"text"})

    def __init__(self, settings: NotifySettings, client: httpx.AsyncClient) -> None:
        if not settings.webhook_url or settings.webhook_secret is None:
            raise ValueError("no webhook URL and secret are configured")
        self.url = settings.webhook_url
        self.secret = settings.webhook_secret.get_secret_value()
        self.timeout = settings.send_timeout.total_seconds()
        self.client = client

    def address(self, person: Person) -> str:
        return person.address(Channel.webhook)

    def request(self, message: Outgoing, *, now: float | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the POST for `message`."""
        body = json_body(message.payload)
        timestamp = str(int(now if now is not None else time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: message.key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign_webhook(self.secret, timestamp, body),
        }
        return body, headers

    async def send(self, message: Outgoing) -> None:
        body, headers = self.request(message)
        # httpx's own timeouts (connect, read, write) here; the relay bounds the whole send too.
        try:
            response = await self.client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TransportError as err:
            raise _unreachable(err, "the webhook", self.timeout) from None
        _check_http(response, "the webhook")


def _robot_answer(response: httpx.Response, channel: Channel, what: str) -> None:
    try:
        answer = response.json()
    except ValueError:
        raise SendFailed(
            f"{what} answered something other than JSON: {response.text[:200]}", permanent=False
        ) from None
    code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
    if code:
        raise SendFailed(
            f"{what} refused the message: errcode {code} {answer.get('errmsg', '')}".strip(),
            permanent=code not in _ROBOT_TRANSIENT[channel],
        )


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk's `sign`: URL-encoded base64 of HMAC-SHA256(secret, timestamp + "\\n" + secret)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


class DingTalkSender:
    """The DingTalk group robot (钉钉自定义机器人): Markdown, the person @-mentioned by user id,
    and the signed URL when a secret is set."""

    name = Channel.dingtalk
    formats = frozenset({"markdown"})

    def __init__(self, settings: NotifySettings, client: httpx.AsyncClient) -> None:
        if settings.dingtalk_url is None:
            raise ValueError("no DingTalk robot URL is configured")
        self.url = settings.dingtalk_url.get_secret_value()
        self.secret = _secret(settings.dingtalk_secret)
        self.timeout = settings.send_timeout.total_seconds()
        self.client = client

    def address(self, person: Person) -> str:
        return person.dingtalk_id

    def signed_url(self, *, now: float | None = None) -> str:
        if not self.secret:
            return self.url
        timestamp = str(int((now if now is not None else time.time()) * 1000))
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}timestamp={timestamp}&sign={dingtalk_sign(self.secret, timestamp)}"

    def body(self, message: Outgoing) -> dict[str, Any]:
        user = message.person.dingtalk_id
        return {
            "msgtype": "markdown",
            # DingTalk shows the @ only when the user id is also written in the text.
            "markdown": {"title": message.notice.subject, "text": f"{message.notice.markdown}\n\n@{user}"},
            "at": {"atUserIds": [user], "isAtAll": False},
        }

    async def send(self, message: Outgoing) -> None:
        what = "the DingTalk robot"
        try:
            response = await self.client.post(
                self.signed_url(), content=json_body(self.body(message)), headers=_JSON, timeout=self.timeout
            )
        except httpx.TransportError as err:
            raise _unreachable(err, what, self.timeout) from None
        _check_http(response, what)
        _robot_answer(response, Channel.dingtalk, what)


class WeComSender:
    """The WeCom group robot (企业微信群机器人): Markdown, the person mentioned as ``<@userid>``."""

    name = Channel.wecom
    formats = frozenset({"markdown"})

    def __init__(self, settings: NotifySettings, client: httpx.AsyncClient) -> None:
        if settings.wecom_url is None:
            raise ValueError("no WeCom robot URL is configured")
        self.url = settings.wecom_url.get_secret_value()
        self.timeout = settings.send_timeout.total_seconds()
        self.client = client

    def address(self, person: Person) -> str:
        return person.wecom_id

    def body(self, message: Outgoing) -> dict[str, Any]:
        # Markdown messages mention with <@userid> in the content (mentioned_list is text-only).
        content = f"{message.notice.markdown}\n\n<@{message.person.wecom_id}>"
        return {"msgtype": "markdown", "markdown": {"content": content}}

    async def send(self, message: Outgoing) -> None:
        what = "the WeCom robot"
        try:
            response = await self.client.post(
                self.url, content=json_body(self.body(message)), headers=_JSON, timeout=self.timeout
            )
        except httpx.TransportError as err:
            raise _unreachable(err, what, self.timeout) from None
        _check_http(response, what)
        _robot_answer(response, Channel.wecom, what)


_SETTING = {
    Channel.email: "VISITFLOW_NOTIFY__SMTP_HOST",
    Channel.webhook: "VISITFLOW_NOTIFY__WEBHOOK_URL",
    Channel.dingtalk: "VISITFLOW_NOTIFY__DINGTALK_URL",
    Channel.wecom: "VISITFLOW_NOTIFY__WECOM_URL",
}


class Channels:
    """The channels the settings configure, and which one reaches a person."""

    def __init__(self, settings: NotifySettings, client: httpx.AsyncClient) -> None:
        self.senders: dict[Channel, Sender] = {}
        if settings.smtp_host:
            self.senders[Channel.email] = EmailSender(settings)
        if settings.webhook_url:
            self.senders[Channel.webhook] = WebhookSender(settings, client)
        if settings.dingtalk_url is not None:
            self.senders[Channel.dingtalk] = DingTalkSender(settings, client)
        if settings.wecom_url is not None:
            self.senders[Channel.wecom] = WeComSender(settings, client)

    def route(self, person: Person) -> Sender | str:
        """The sender that reaches `person`: their own channel when it is set up here and they
        have an address there, else the first of `FALLBACK_ORDER` that does; or why none does."""
        preferred = person.channel if isinstance(person.channel, Channel) else None
        order: Sequence[Channel] = ([preferred] if preferred else []) + [
            c for c in FALLBACK_ORDER if c != preferred
        ]
        for channel in order:
            sender = self.senders.get(channel)
            if sender is not None and sender.address(person):
                return sender
        why = []
        if preferred is None:
            why.append(f"their channel {person.channel!r} is unknown")
        elif preferred not in self.senders:
            why.append(f"their channel {preferred} is not set up here ({_SETTING[preferred]})")
        else:
            why.append(f"they have no {preferred} address")
        configured = ", ".join(str(c) for c in self.senders) or "none"
        return (
            f"{person.id} cannot be reached: {'; '.join(why)}, and no other channel set up here "
            f"(configured: {configured}) has an address for them"
        )
