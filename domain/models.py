"""Value objects of a visit: the plan, the execution record, the report, promised items."""

import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

INSTANT_FORMAT = "a time is written in ISO 8601 with its offset, for example 2026-06-01T10:00+08:00"
"""The sentence a time in any other form is refused with."""

_ISO_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})"
)


def _iso_or_aware(value: object) -> object:
    # Pydantic's lax mode also reads epoch numbers, numeric strings and date-only strings
    # as datetimes: a foreign client's mistake would be stored as a plausible time. Only a
    # datetime (Python callers, asyncpg rows) or an ISO 8601 text with date, time and
    # offset reaches pydantic's own parsing; AwareDatetime then refuses naive datetimes.
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_INSTANT.fullmatch(value)):
        return value
    raise PydanticCustomError("instant_format", INSTANT_FORMAT)


def _utc(value: datetime) -> datetime:
    # Store every instant in UTC so the log, the hash chain and comparisons never depend
    # on the offset a client happened to send.
    return value.astimezone(UTC)


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_or_aware), AfterValidator(_utc)]
"""A point in time with its offset, normalised to UTC.

Accepted: a datetime with a tzinfo, or ISO 8601 text with a date, a time and an offset
(``2026-06-01T10:00+08:00``, ``2026-06-01T02:00:00.123456Z``). Numbers, date-only and
naive times are refused.
"""

Text = Annotated[str, Field(max_length=10_000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class Frozen(BaseModel):
    """Base for immutable value objects that refuse unknown fields and NUL characters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="after")
    def _text_is_storable(self) -> Self:
        # PostgreSQL cannot store NUL in text: refuse it with the command, not at the append.
        # One check per model, not per field: reading a long log validates every event.
        for name, value in self.__dict__.items():
            if _has_nul(value):
                raise ValueError(f"{name}: text may not contain NUL characters")
        return self


class CustomerTier(StrEnum):
    """客户分类: the tier sets the visit cadence (DOMAIN.md)."""

    core = "core"
    potential = "potential"
    regular = "regular"
    assist = "assist"


class VisitMethod(StrEnum):
    """How the visit happens: 实地, 网络, 电话."""

    on_site = "on_site"
    online = "online"
    phone = "phone"


class Customer(Frozen):
    id: Name
    name: Name
    tier: CustomerTier = CustomerTier.regular


class ExpenseRequest(Frozen):
    """应酬费用/礼品申请: an expense or gift requested with the plan."""

    description: Name
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    currency: str = Field(default="CNY", min_length=3, max_length=3)


class Plan(Frozen):
    """拜访计划: what the manager approves before the visit happens."""

    customer: Customer
    scheduled_start: Instant
    duration_minutes: int = Field(default=20, ge=1, le=24 * 60)
    method: VisitMethod = VisitMethod.on_site
    purpose: Annotated[str, Field(min_length=1, max_length=2_000)]
    agenda: Text = ""
    participants: list[Name] = Field(default_factory=list, max_length=50)
    expenses: list[ExpenseRequest] = Field(default_factory=list, max_length=50)


class Execution(Frozen):
    """拜访实施: what the rep recorded on check-in."""

    method: VisitMethod
    started_at: Instant
    ended_at: Instant
    location: str | None = Field(default=None, max_length=500)
    notes: Text = ""


class PromisedItemIn(Frozen):
    """承诺事项 as the rep writes it in the report."""

    item_id: Name | None = None
    description: Annotated[str, Field(min_length=1, max_length=2_000)]
    owner_id: Name
    due_at: Instant


class Report(Frozen):
    """拜访报告: the report due within two days after the visit."""

    outcome: Annotated[str, Field(min_length=1, max_length=10_000)]
    customer_feedback: Text = ""
    customer_needs: Text = ""
    problems: Text = ""
    competitor_notes: Text = ""
    next_steps: Text = ""
    promised_items: list[PromisedItemIn] = Field(default_factory=list, max_length=100)


class ItemStatus(StrEnum):
    open = "open"
    completed = "completed"


class PromisedItem(Frozen):
    """A promised item being followed up to completion (落实对客户的承诺)."""

    item_id: str
    description: str
    owner_id: str
    due_at: Instant
    status: ItemStatus = ItemStatus.open
    completed_at: Instant | None = None
    completed_late: bool = False
    resolution: str = ""
    customer_reply: str = ""
