"""The directory of people: who works here, whom they report to, and how to reach them.

The org tree runs rep → manager → director (`manager_id` names the one above). A person
away from/to a date names a deputy (代理人), who receives their notifications and may act
for them meanwhile. Notification recipients are resolved through the directory at
delivery time (`resolve`): "the visit's manager" becomes the manager or their deputy,
"directors" becomes the manager's own director in the tree, or every active director.
Pure: the lookup of people is an argument.
"""

from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from enum import StrEnum

from pydantic import Field, model_validator

from domain.actors import Actor, Role
from domain.calendar import zone
from domain.models import Frozen, Name

DIRECTORS = "directors"
"""The recipient id of an escalation to the directors' group (a stream without a named director)."""


class Channel(StrEnum):
    """How a person is reached."""

    email = "email"
    dingtalk = "dingtalk"  # 钉钉
    wecom = "wecom"  # 企业微信
    webhook = "webhook"  # the company's own system, one endpoint for everyone


class Language(StrEnum):
    """The language of the messages a person receives: Chinese by default."""

    zh = "zh"
    en = "en"


class Person(Frozen):
    """One person of the directory.

    `away_from`/`away_to` (local dates, both included) and `deputy_id` say who stands in
    for them meanwhile. `quiet_from`/`quiet_to` (local times) is when they are not
    disturbed: a notification due then waits until the quiet hours end.
    """

    id: Name
    name_zh: str = Field(default="", max_length=200)
    name_en: str = Field(default="", max_length=200)
    role: Role
    manager_id: str | None = Field(default=None, max_length=200)
    active: bool = True
    email: str = Field(default="", max_length=320)
    mobile: str = Field(default="", max_length=50)
    dingtalk_id: str = Field(default="", max_length=200)
    wecom_id: str = Field(default="", max_length=200)
    channel: Channel = Channel.email
    language: Language = Language.zh
    quiet_from: time | None = None
    quiet_to: time | None = None
    away_from: date | None = None
    away_to: date | None = None
    deputy_id: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> "Person":
        if (self.away_from is None) != (self.away_to is None):
            raise ValueError("an absence has both away_from and away_to, or neither")
        if self.away_from is not None and self.away_to is not None:
            if self.away_to < self.away_from:
                raise ValueError("away_to is before away_from")
            if not self.deputy_id:
                raise ValueError("an absence names the deputy who stands in (deputy_id)")
        if self.deputy_id == self.id:
            raise ValueError("a person cannot be their own deputy")
        if self.manager_id == self.id:
            raise ValueError("a person cannot be their own manager")
        if (self.quiet_from is None) != (self.quiet_to is None):
            raise ValueError("quiet hours have both quiet_from and quiet_to, or neither")
        return self

    @property
    def display_name(self) -> str:
        """The name people read: Chinese and Latin when both are known."""
        if self.name_zh and self.name_en:
            return f"{self.name_zh} ({self.name_en})"
        return self.name_zh or self.name_en or self.id

    def away_on(self, day: date) -> bool:
        """Whether the person is away on `day` (a local date)."""
        return (
            self.away_from is not None and self.away_to is not None and self.away_from <= day <= self.away_to
        )

    def address(self, channel: Channel) -> str:
        """The person's address on `channel` ("" when they have none there)."""
        return {
            Channel.email: self.email,
            Channel.dingtalk: self.dingtalk_id,
            Channel.wecom: self.wecom_id,
            Channel.webhook: self.id,  # the company's system knows people by id
        }[channel]

    def quiet_until(self, instant: datetime, timezone: str) -> datetime | None:
        """When the quiet hours around `instant` end, or None when `instant` is not in them.

        Quiet hours may run over midnight (22:00–07:00).
        """
        if self.quiet_from is None or self.quiet_to is None or self.quiet_from == self.quiet_to:
            return None
        tz = zone(timezone)
        local = instant.astimezone(tz)
        now, start, end = local.time().replace(tzinfo=None), self.quiet_from, self.quiet_to
        overnight = start > end
        quiet = (start <= now or now < end) if overnight else (start <= now < end)
        if not quiet:
            return None
        day = local.date()
        if overnight and now >= start:
            day = date.fromordinal(day.toordinal() + 1)
        return datetime.combine(day, end, tzinfo=tz)


class Resolved(Frozen):
    """Who a notification reaches, and why: the resolution recorded with the delivery.

    `person_ids` are told (in order); `steps` say in words how they were found (a deputy
    standing in, the director in the tree, every director); `problem` says why nobody can
    be told (then `person_ids` is empty).
    """

    recipient: Actor
    person_ids: list[str] = Field(default_factory=list)
    steps: list[str] = Field(default_factory=list)
    problem: str | None = None


Lookup = Callable[[str], Person | None]
"""A person by id (the directory's `get`), or None."""


def resolve(
    recipient: Actor,
    lookup: Lookup,
    on: date,
    *,
    manager_id: str | None = None,
    directors: Iterable[Person] = (),
) -> Resolved:
    """Who receives a notification addressed to `recipient` on the local date `on`.

    `manager_id` is the stream's manager (to find "directors" through the tree);
    `directors` are the directory's directors (the group, when the tree names none).
    """
    steps: list[str] = []
    if recipient.id == DIRECTORS:
        above = _director_above(manager_id, lookup)
        if above is not None:
            steps.append(f"directors: {above.id}, the director above manager {manager_id}")
            targets = [above]
        else:
            targets = [d for d in directors if d.active and d.role is Role.director]
            if not targets:
                return Resolved(recipient=recipient, problem="The directory has no active director to tell.")
            steps.append(f"directors: every active director ({', '.join(d.id for d in targets)})")
    else:
        person = lookup(recipient.id)
        if person is None:
            return Resolved(recipient=recipient, problem=f"{recipient.id} is not in the directory.")
        targets = [person]
    told: list[str] = []
    for person in targets:
        chosen = _stand_in(person, lookup, on, steps)
        if chosen is not None and chosen.id not in told:
            told.append(chosen.id)
    if not told:
        return Resolved(recipient=recipient, steps=steps, problem=steps[-1] if steps else "Nobody to tell.")
    return Resolved(recipient=recipient, person_ids=told, steps=steps)


def _director_above(manager_id: str | None, lookup: Lookup) -> Person | None:
    manager = lookup(manager_id) if manager_id else None
    above = lookup(manager.manager_id) if manager is not None and manager.manager_id else None
    if above is not None and above.active and above.role is Role.director:
        return above
    return None


def _stand_in(person: Person, lookup: Lookup, on: date, steps: list[str]) -> Person | None:
    """The person, or their deputy while they are away (a deputy's deputy is not followed)."""
    if not person.active:
        steps.append(f"{person.id} is no longer active")
        return None
    if not person.away_on(on) or not person.deputy_id:
        return person
    deputy = lookup(person.deputy_id)
    if deputy is None or not deputy.active:
        steps.append(
            f"{person.id} is away {person.away_from} to {person.away_to} and deputy {person.deputy_id} "
            "cannot be reached through the directory; told in person"
        )
        return person
    steps.append(f"{person.id} is away {person.away_from} to {person.away_to}; deputy {deputy.id} stands in")
    return deputy


def deputy_may_act(deputy: Person, absent: Person, on: date) -> bool:
    """Whether `deputy` may act for `absent` on `on`: named as deputy, and `absent` is away then."""
    return deputy.active and absent.deputy_id == deputy.id and absent.away_on(on)
