"""The directory of people: who works here, whom they report to, and how to reach them.

The org tree runs rep → manager → director (`manager_id` names the one above). A person
away from/to a date names a deputy (代理人), who receives their notifications and may act
for them meanwhile. Notification recipients are resolved through the directory at
delivery time (`resolve`): "the visit's manager" becomes the manager or their deputy,
"directors" becomes the manager's own director in the tree, or every active director.

Contact details (`CONTACT_FIELDS`) are confidential: `may_see_contacts` says who may read
them. `directory_problems` says what an import would break in the directory as a whole (a
manager who is not there, a loop in the tree, a rep reporting to a rep); `import_refusals`
says who may write whom. Pure: the lookup of people is an argument.
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time
from enum import StrEnum

from pydantic import Field, model_validator

from domain.actors import Actor, Role
from domain.calendar import zone
from domain.errors import RuleViolation
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


CONTACT_FIELDS = ("email", "mobile", "dingtalk_id", "wecom_id")
"""The confidential fields of a person: shown only to whom `may_see_contacts` allows."""

MANAGED_BY: Mapping[Role, tuple[Role, ...]] = {
    Role.rep: (Role.manager, Role.director),
    Role.manager: (Role.director,),
    Role.director: (Role.director,),
    Role.auditor: (Role.manager, Role.director),
}
"""The org tree: the roles a person of each role may report to (rep → manager → director)."""


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
    manager_id: Name | None = None
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
    deputy_id: Name | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Person":
        # The same rules stand as CHECK constraints in migrations/0007_people.sql.
        if self.role is Role.system:
            raise ValueError("the engine (role system) is not a person of the directory")
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
        if self.quiet_from is not None and self.quiet_from == self.quiet_to:
            raise ValueError("quiet hours start and end at the same time; leave both empty for none")
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


# --- the org tree -------------------------------------------------------------------------


def managers_of(person: Person, lookup: Lookup) -> list[Person]:
    """`person`'s managers up the tree, nearest first; stops at an unknown id or a loop."""
    chain: list[Person] = []
    seen = {person.id}
    above = lookup(person.manager_id) if person.manager_id else None
    while above is not None and above.id not in seen:
        chain.append(above)
        seen.add(above.id)
        above = lookup(above.manager_id) if above.manager_id else None
    return chain


def in_team(person: Person, manager_id: str, lookup: Lookup) -> bool:
    """Whether `manager_id` is among `person`'s managers up the tree (their team, direct or not)."""
    return any(m.id == manager_id for m in managers_of(person, lookup))


def may_see_contacts(actor: Actor, person: Person, lookup: Lookup) -> bool:
    """Contact details are shown only to the person themself, their managers up the tree and directors."""
    if actor.id == person.id or actor.role is Role.director:
        return True
    return actor.role is Role.manager and in_team(person, actor.id, lookup)


# --- imports ------------------------------------------------------------------------------


class PersonProblem(Frozen):
    """Why one person of an import cannot be written: the field at fault and a sentence."""

    person_id: str
    field: str
    reason: str


def _roles(roles: Iterable[Role]) -> str:
    """The roles as words: a rep; a manager or a director; an auditor."""
    words = [f"an {r}" if r[0] in "aeiou" else f"a {r}" for r in roles]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def directory_problems(changes: Iterable[Person], stored: Mapping[str, Person]) -> list[PersonProblem]:
    """What `changes` (people to add or change) would break in the directory `stored`.

    The directory after the import must hold every manager and deputy it names, its manager
    tree must not loop, reps need a manager, and each role reports to the roles `MANAGED_BY`
    allows. Each problem is told on a person of `changes`: a rule broken between a changed
    person and a stored one is told on the changed one (a manager turned rep is told that
    their reps still report to them).
    """
    batch = {p.id: p for p in changes}
    after = {**stored, **batch}
    problems: list[PersonProblem] = []
    for person in batch.values():
        problems += _reference_problems(person, after)
        problems += _loop_problems(person, after)
    problems += _role_problems(batch, after)
    return problems


def _reference_problems(person: Person, after: Mapping[str, Person]) -> list[PersonProblem]:
    problems: list[PersonProblem] = []
    if person.role is Role.rep and person.manager_id is None:
        reason = "Missing manager_id: a rep reports to a manager or a director, who hears their escalations."
        problems.append(PersonProblem(person_id=person.id, field="manager_id", reason=reason))
    for field, what in (("manager_id", "manager"), ("deputy_id", "deputy")):
        named = getattr(person, field)
        if named is not None and named not in after:
            reason = (
                f"The {what} {named} is not in the directory: add them in this file, or import them first."
            )
            problems.append(PersonProblem(person_id=person.id, field=field, reason=reason))
    return problems


def _loop_problems(person: Person, after: Mapping[str, Person]) -> list[PersonProblem]:
    path = [person.id]
    above = after.get(person.manager_id) if person.manager_id else None
    while above is not None and above.id not in path:
        path.append(above.id)
        above = after.get(above.manager_id) if above.manager_id else None
    if above is None or above.id != person.id:
        return []  # the chain ends, or loops above this person (told on the loop's own people)
    loop = " → ".join([*path, person.id])
    reason = f"The manager tree loops ({loop}); the top of the tree is a director without a manager."
    return [PersonProblem(person_id=person.id, field="manager_id", reason=reason)]


def _role_problems(batch: Mapping[str, Person], after: Mapping[str, Person]) -> list[PersonProblem]:
    problems: list[PersonProblem] = []
    # Stored people whose manager a changed person no longer fits: told on that manager.
    reporting: dict[tuple[str, Role], list[str]] = {}
    for person in after.values():
        manager = after.get(person.manager_id) if person.manager_id else None
        if manager is None or manager.role in MANAGED_BY[person.role]:
            continue
        allowed = _roles(MANAGED_BY[person.role])
        if person.id in batch:
            reason = (
                f"{person.id} is {_roles([person.role])}, who reports to {allowed}; their manager "
                f"{manager.id} is {_roles([manager.role])}."
            )
            problems.append(PersonProblem(person_id=person.id, field="manager_id", reason=reason))
        elif manager.id in batch:
            reporting.setdefault((manager.id, person.role), []).append(person.id)
    for (manager_id, role), ids in reporting.items():
        manager = after[manager_id]
        names = ", ".join(sorted(ids)[:5]) + (", ..." if len(ids) > 5 else "")
        reason = (
            f"{manager_id} cannot be {_roles([manager.role])} while {role}s report to them ({names}): "
            f"{_roles([role])} reports to {_roles(MANAGED_BY[role])}; give them another manager first."
        )
        problems.append(PersonProblem(person_id=manager_id, field="role", reason=reason))
    return problems


IMPORT_RULE = "people.import"
"""The rule that names who may load people into the directory."""

_FOR_ABOVE = ("role", "manager_id", "active")
"""A manager's own fields that only the level above may change."""


def check_may_import(actor: Actor) -> None:
    """Only managers and directors load people; anyone else is refused by `IMPORT_RULE`."""
    if actor.role not in (Role.manager, Role.director):
        raise RuleViolation(
            IMPORT_RULE,
            f"Only managers and directors may import people; {actor.id} acts as {actor.role}.",
        )


def import_refusals(
    actor: Actor, changes: Iterable[Person], stored: Mapping[str, Person]
) -> list[PersonProblem]:
    """The people among `changes` (to be added or changed) `actor` may not write, and why.

    A director writes anyone. A manager writes the people of their own team (everyone below
    them in the tree), before and after the change, so nobody takes a colleague's rep by
    naming themselves as manager; and their own row, except `role`, `manager_id` and
    `active`, which are the level above's to set (so a manager names their own deputy).
    """
    check_may_import(actor)
    if actor.role is Role.director:
        return []
    batch = {p.id: p for p in changes}
    after = {**stored, **batch}
    refusals: list[PersonProblem] = []
    for person in batch.values():
        before = stored.get(person.id)
        if person.id == actor.id:
            changed = [f for f in _FOR_ABOVE if before is None or getattr(before, f) != getattr(person, f)]
            if changed:
                reason = (
                    f"A manager changes their own contact details, quiet hours and absence, not their "
                    f"{changed[0]}: that is for a director."
                )
                refusals.append(PersonProblem(person_id=person.id, field=changed[0], reason=reason))
        elif before is not None and not in_team(before, actor.id, stored.get):
            reason = (
                f"{person.id} is not in {actor.id}'s team; only their managers up the tree or a director "
                "may change them."
            )
            refusals.append(PersonProblem(person_id=person.id, field="id", reason=reason))
        elif not in_team(person, actor.id, after.get):
            reason = (
                f"A manager imports only the people of their own team; {person.id} would report to "
                f"{person.manager_id or 'nobody'}, outside {actor.id}'s team."
            )
            refusals.append(PersonProblem(person_id=person.id, field="manager_id", reason=reason))
    return refusals
