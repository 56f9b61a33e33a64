"""One settings object, read from environment variables prefixed VISITFLOW_.

With nothing set, `visits dev` starts an embedded Temporal dev server and an embedded
PostgreSQL, so a newcomer needs no setup. Nested policy figures use a double underscore,
durations in ISO 8601 or a short form: ``VISITFLOW_POLICY__REPORT_DEADLINE=PT24H`` (or
``24h``; the old ``VISITFLOW_POLICY__REPORT_DEADLINE_HOURS=24`` is still read); lists are JSON:
``VISITFLOW_POLICY__HOLIDAYS='["2026-10-01","2026-10-02"]'``. The monthly plan's rules
are nested the same way: ``VISITFLOW_PLANNING__SUBMIT_BY_DAY=25``.
"""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.planning import PlanRules
from domain.policy import Duration, Policy, with_chasing

TASK_QUEUE = "visitflow"
"""The default task queue the visit workflows and activities run on."""


def _seconds(low: int, high: int) -> AfterValidator:
    """Bounds of a notification duration, refused in a sentence that names them."""

    def check(value: timedelta) -> timedelta:
        if not timedelta(seconds=low) <= value <= timedelta(seconds=high):
            raise ValueError(f"must be between {low} and {high} seconds")
        return value

    return AfterValidator(check)


class NotifySettings(BaseModel):
    """How reminders and escalations reach people (`activities.relay`): the channels, retries
    and the relay's pace. ``VISITFLOW_NOTIFY__SMTP_HOST=mail.example.com`` and so on.

    Secrets are `SecretStr` (printed as ``**********``). The DingTalk and WeCom robot URLs
    carry the robot's token, so they are secrets too.
    """

    enabled: bool = True
    """Run the relay inside `visits worker` / `visits dev` (`visits relay` runs it alone)."""
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_tls: bool = False
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "visitflow <visitflow@localhost>"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    dingtalk_url: SecretStr | None = None
    dingtalk_secret: SecretStr | None = None
    wecom_url: SecretStr | None = None
    send_timeout: Annotated[Duration, _seconds(1, 300)] = timedelta(seconds=10)
    retry_base: Annotated[Duration, _seconds(1, 86_400)] = timedelta(seconds=30)
    retry_max: Annotated[Duration, _seconds(1, 7 * 86_400)] = timedelta(hours=1)
    max_attempts: int = Field(default=10, ge=1, le=1000)
    lease: Annotated[Duration, _seconds(10, 86_400)] = timedelta(minutes=5)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    concurrency: int = Field(default=16, ge=1, le=1000)
    poll_interval: Annotated[Duration, _seconds(1, 3600)] = timedelta(seconds=2)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("webhook_url needs webhook_secret: receivers verify the signature")
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("smtp_tls (TLS from the start) and smtp_starttls exclude each other")
        if self.retry_max < self.retry_base:
            raise ValueError("retry_max is shorter than retry_base")
        if self.lease < 2 * self.send_timeout:
            raise ValueError("lease must be at least twice send_timeout, so no claim ends mid-send")
        return self


class Settings(BaseSettings):
    """Where the engine's servers are, and the policy (and plan rules) new visits and plans start with."""

    model_config = SettingsConfigDict(env_prefix="VISITFLOW_", env_nested_delimiter="__", extra="ignore")

    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal frontend; unset = embedded dev server"
    )
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    task_queue: str = TASK_QUEUE
    database_url: SecretStr | None = Field(
        default=None, description="postgresql:// URL; unset = embedded PostgreSQL"
    )
    db_pool_min: int = 1
    db_pool_max: int = 10
    data_dir: Path = Field(
        default=Path(".visitflow"),
        description="where `visits dev` keeps its embedded servers' data",
    )
    ui_port: int = 8233
    temporal_port: int = 7233
    log_format: str = Field(default="auto", description="auto | console | json")
    log_level: str = "INFO"
    policy: Annotated[Policy, AfterValidator(with_chasing)] = Field(
        default_factory=lambda: with_chasing(Policy())
    )
    """The policy new visits and plans record; the chasing rules default on here, not in the model."""
    planning: PlanRules = Field(default_factory=PlanRules)
    open_month_plans: bool = Field(
        default=True, description="open every active rep's plan for next month on the 1st (a schedule)"
    )
    notify: NotifySettings = Field(default_factory=NotifySettings)
    """The notification relay and its channels (`VISITFLOW_NOTIFY__*`)."""
