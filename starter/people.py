"""The directory of people for backends and the `visits people` commands.

Every person shown to someone passes through `visible`, which applies
`domain.people.may_see_contacts`; imports are checked by `domain.people` too. Nothing here
decides a rule.
"""

from dataclasses import dataclass, field
from datetime import date

from activities.people import InvalidDirectory, PeopleRefused, PeopleStore, UpsertCounts
from domain.actors import Actor
from domain.errors import RuleViolation
from domain.people import (
    CONTACT_FIELDS,
    Lookup,
    Person,
    PersonProblem,
    Resolved,
    check_may_import,
    managers_of,
    may_see_contacts,
    resolve,
)
from domain.people_csv import ParsedPeople, RowError, parse_bytes, to_csv
from starter.errors import CommandRefused


class PersonNotFound(CommandRefused):
    def __init__(self, person_id: str) -> None:
        super().__init__("person.unknown", f"There is no person {person_id} in the directory.")


class PeopleFileInvalid(Exception):
    """A people file with problems: every one of them, with its line and column. Nothing was loaded."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"The file has {len(errors)} problem(s); nothing was loaded.")
        self.errors = errors


@dataclass(frozen=True)
class Export:
    """A CSV export: its text, how many people it holds, for how many contact details are left out."""

    text: str
    people: int
    contacts_withheld: int


@dataclass(frozen=True)
class PersonView:
    """One person as `visits people show` presents them, to one viewer on one date.

    Only `person` may carry contact details (when `contacts_confidential` is false); the
    people around them are named, never reachable, here.
    """

    person: Person
    contacts_confidential: bool
    on: date
    resolved: Resolved
    """Whom a notification addressed to this person reaches on `on`, and why."""
    managers: list[Person] = field(default_factory=list)
    """Up the tree, nearest first."""
    team: list[Person] = field(default_factory=list)
    """Direct reports, by id."""
    team_size: int = 0
    """Everyone below them in the tree."""
    deputy: Person | None = None
    deputy_for: list[Person] = field(default_factory=list)
    """The people who name this person as their deputy."""
    told: list[Person] = field(default_factory=list)
    """The people of `resolved.person_ids`."""


def without_contacts(person: Person) -> Person:
    """`person` with every contact detail left empty."""
    return person.model_copy(update=dict.fromkeys(CONTACT_FIELDS, ""))


def visible(person: Person, actor: Actor | None, lookup: Lookup) -> Person:
    """`person` as `actor` may see them: contact details only if `may_see_contacts` allows."""
    if actor is not None and may_see_contacts(actor, person, lookup):
        return person
    return without_contacts(person)


def _refused(err: RuleViolation) -> CommandRefused:
    return CommandRefused(err.rule, err.message)


async def import_csv(store: PeopleStore, data: bytes, actor: Actor, *, dry_run: bool = False) -> UpsertCounts:
    """Load a people CSV file (bytes as read from disk) as `actor`: every row, or none.

    Raises `CommandRefused` when the actor may not import at all, `PeopleFileInvalid` with
    every problem otherwise: the file's own first; once it is clean, what it would break in
    the directory; once that holds, the people the actor may not change.
    """
    try:
        check_may_import(actor)
    except RuleViolation as err:
        raise _refused(err) from None
    parsed = parse_bytes(data)
    if not parsed.ok:
        raise PeopleFileInvalid(list(parsed.errors))
    try:
        return await store.upsert_many(
            parsed.people, keep_contacts=parsed.without_contacts, actor=actor, dry_run=dry_run
        )
    except (InvalidDirectory, PeopleRefused) as err:
        raise PeopleFileInvalid(_located(err.problems, parsed)) from None


def _located(problems: list[PersonProblem], parsed: ParsedPeople) -> list[RowError]:
    errors = [
        RowError(line=parsed.lines.get(p.person_id, 0), field=p.field, reason=p.reason) for p in problems
    ]
    return sorted(errors, key=lambda e: e.line)


async def export_csv(store: PeopleStore, actor: Actor | None) -> Export:
    """The directory as CSV, each person's contact details only if `actor` may see them."""
    people = await store.list()
    lookup = {p.id: p for p in people}.get
    shown = [visible(p, actor, lookup) for p in people]
    # Counted whether or not a person has contact details, so the count tells nothing about them.
    withheld = sum(1 for p in people if actor is None or not may_see_contacts(actor, p, lookup))
    return Export(text=to_csv(shown), people=len(people), contacts_withheld=withheld)


async def show(store: PeopleStore, person_id: str, actor: Actor | None, on: date) -> PersonView:
    """One person as `actor` may see them, with the people around them, on the local date `on`."""
    directory = {p.id: p for p in await store.list()}
    person = directory.get(person_id)
    if person is None:
        raise PersonNotFound(person_id)
    lookup = directory.get
    below = [p for p in directory.values() if any(m.id == person_id for m in managers_of(p, lookup))]
    resolved = resolve(Actor(id=person.id, role=person.role), lookup, on)
    deputy = directory.get(person.deputy_id) if person.deputy_id else None
    return PersonView(
        person=visible(person, actor, lookup),
        contacts_confidential=actor is None or not may_see_contacts(actor, person, lookup),
        on=on,
        resolved=resolved,
        managers=[without_contacts(m) for m in managers_of(person, lookup)],
        team=[without_contacts(p) for p in below if p.manager_id == person_id],
        team_size=len(below),
        deputy=without_contacts(deputy) if deputy is not None else None,
        deputy_for=[without_contacts(p) for p in directory.values() if p.deputy_id == person_id],
        told=[without_contacts(directory[i]) for i in resolved.person_ids if i in directory],
    )
