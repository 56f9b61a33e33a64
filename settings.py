"""One settings object, read from environment variables prefixed VISITFLOW_.

With nothing set, `visits dev` starts an embedded Temporal dev server and an embedded
PostgreSQL, so a newcomer needs no setup. Nested policy figures use a double underscore,
durations in ISO 8601 or a short form: ``VISITFLOW_POLICY__REPORT_DEADLINE=PT24H`` (or
``24h``; the old ``VISITFLOW_POLICY__REPORT_DEADLINE_HOURS=24`` is still read); lists are JSON:
``VISITFLOW_POLICY__HOLIDAYS='["2026-10-01","2026-10-02"]'``. The monthly plan's rules
are nested the same way: ``VISITFLOW_PLANNING__SUBMIT_BY_DAY=25``.
"""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.planning import PlanRules
from domain.policy import Policy

TASK_QUEUE = "visitflow"
"""The default task queue the visit workflows and activities run on."""


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
    policy: Policy = Field(default_factory=Policy)
    planning: PlanRules = Field(default_factory=PlanRules)
