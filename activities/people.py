"""The directory of people in PostgreSQL (`people`, migrations/0007_people.sql).

The store hands out whole people, contact details included: who may read them is decided by
`domain.people.may_see_contacts`, applied by the callers that show people to people
(`starter.people`). An import is one transaction: every person is written, or none, and only
when the directory stays whole (`domain.people.directory_problems`). Notification recipients
resolve through `resolve`, which reads one consistent snapshot of the people it needs.
"""

from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date
from enum import StrEnum
from typing import Any

import asyncpg

from activities.customers import UpsertCounts
from activities.db import Connection
from activities.errors import StoreError, StoreUnavailable, from_postgres
from domain.actors import Actor, Role
from domain.people import (
    CONTACT_FIELDS,
    Lookup,
    Person,
    PersonProblem,
    Resolved,
    directory_problems,
    import_refusals,
    resolve,
)

DIRECTORY_LOCK = 0x7669_7369_7470_706C
"""Advisory-lock key held by imports ("visitppl" in ASCII): two imports never interleave."""

_COLUMNS = (
    "id",
    "name_zh",
    "name_en",
    "role",
    "manager_id",
    "active",
    "email",
    "mobile",
    "dingtalk_id",
    "wecom_id",
    "channel",
    "language",
    "quiet_from",
    "quiet_to",
    "away_from",
    "away_to",
    "deputy_id",
)

_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM people"

_INSERT = f"""
INSERT INTO people ({", ".join(_COLUMNS)})
VALUES ({", ".join(f"${n}" for n in range(1, len(_COLUMNS) + 1))})
"""

_UPDATE = f"""
UPDATE people SET {", ".join(f"{c} = ${n}" for n, c in enumerate(_COLUMNS, start=1) if c != "id")},
       updated_at = now()
 WHERE id = $1
"""

# The people named and, transitively, their managers up the tree and their deputies: all that
# `domain.people.resolve` may look up. UNION (not UNION ALL) ends the walk on a loop.
_NEAR = f"""
WITH RECURSIVE near(id) AS (
    SELECT unnest($1::text[])
  UNION
    SELECT named.id
      FROM near
      JOIN people p ON p.id = near.id
     CROSS JOIN LATERAL (VALUES (p.manager_id), (p.deputy_id)) AS named(id)
     WHERE named.id IS NOT NULL
)
{_SELECT} WHERE id IN (SELECT id FROM near)
"""


class PeopleStoreError(StoreError):
    """The directory could not do what was asked; the message says why."""


class InvalidPeople(PeopleStoreError):
    """The people handed to the store contradict each other or hold data PostgreSQL refuses."""

    non_retryable = True


class _Problems(PeopleStoreError):
    non_retryable = True

    def __init__(self, what: str, problems: Sequence[PersonProblem]) -> None:
        ids = sorted({p.person_id for p in problems})
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        super().__init__(f"{len(problems)} problem(s): {what} ({shown}).")
        self.problems = list(problems)


class InvalidDirectory(_Problems):
    """The import would break the directory (an unknown manager or deputy, a loop, a role
    reporting to the wrong role); nothing was written. `problems` names each."""

    def __init__(self, problems: Sequence[PersonProblem]) -> None:
        super().__init__("the directory would not hold together", problems)


class PeopleRefused(_Problems):
    """The actor may not add or change some of the people; nothing was written."""

    def __init__(self, refusals: Sequence[PersonProblem]) -> None:
        super().__init__("people this actor may not change", refusals)


class _RolledBack(Exception):
    """Raised inside a dry run's transaction so that it rolls back; carries the counts."""

    def __init__(self, counts: UpsertCounts) -> None:
        super().__init__("dry run")
        self.counts = counts


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Named errors for the driver's: passing failures stay `StoreUnavailable`."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        named = from_postgres(exc)
        text = getattr(exc, "message", None) or str(exc)
        if isinstance(named, StoreUnavailable):
            raise named from exc
        if (exc.sqlstate or "").startswith(("22", "23")):
            raise InvalidPeople(f"PostgreSQL refused the people's data: {text}.") from exc
        raise PeopleStoreError(f"The directory failed: {text} (SQLSTATE {exc.sqlstate}).") from exc
    except (OSError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"PostgreSQL could not be reached: {exc}") from exc


def person_from_row(row: asyncpg.Record | Mapping[str, Any]) -> Person:
    """The `Person` of a `people` row."""
    return Person.model_validate({c: row[c] for c in _COLUMNS})


def _args(person: Person) -> tuple[Any, ...]:
    values = (getattr(person, c) for c in _COLUMNS)
    return tuple(value.value if isinstance(value, StrEnum) else value for value in values)


class PeopleStore:
    """Reads and writes the directory through one asyncpg pool (made with `create_pool`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert_many(
        self,
        people: Iterable[Person],
        *,
        keep_contacts: Collection[str] = (),
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> UpsertCounts:
        """Add new people and update changed ones in one transaction: all or nothing.

        `keep_contacts` names people whose stored contact details stay as they are (their
        file rows gave none). Refuses with `InvalidDirectory` when the directory would not
        hold together (`domain.people.directory_problems`); with `actor`, with `PeopleRefused`
        when someone to add or change is not theirs to write (`domain.people.import_refusals`);
        without, the caller is a trusted backend. `dry_run` does everything, then rolls back.
        """
        batch = list(people)
        repeated = sorted(i for i, n in Counter(p.id for p in batch).items() if n > 1)
        if repeated:
            raise InvalidPeople(f"The import names person(s) {', '.join(repeated)} more than once.")
        try:
            async with _translated(), self.pool.acquire() as conn, conn.transaction():
                counts = await self._upsert(conn, batch, keep_contacts, actor)
                if dry_run:
                    raise _RolledBack(counts)
        except _RolledBack as done:
            return done.counts
        return counts

    async def _upsert(
        self, conn: Connection, batch: list[Person], keep_contacts: Collection[str], actor: Actor | None
    ) -> UpsertCounts:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", DIRECTORY_LOCK)
        # The whole directory: the tree checks and a manager's team need it. FOR UPDATE, so a
        # writer outside imports (which would not take the lock) cannot change it under the checks.
        rows = await conn.fetch(f"{_SELECT} ORDER BY id FOR UPDATE")
        stored = {row["id"]: person_from_row(row) for row in rows}
        added: list[Person] = []
        changed: list[Person] = []
        for person in batch:
            before = stored.get(person.id)
            if before is not None and person.id in keep_contacts:
                person = person.model_copy(update={f: getattr(before, f) for f in CONTACT_FIELDS})
            if before is None:
                added.append(person)
            elif before != person:
                changed.append(person)
        # The tree first: who is in whose team is only meaningful in a directory that holds.
        problems = directory_problems([*added, *changed], stored)
        if problems:
            raise InvalidDirectory(problems)
        if actor is not None:
            refusals = import_refusals(actor, [*added, *changed], stored)
            if refusals:
                raise PeopleRefused(refusals)
        if added:
            await conn.executemany(_INSERT, [_args(p) for p in added])
        if changed:
            await conn.executemany(_UPDATE, [_args(p) for p in changed])
        return UpsertCounts(
            added=len(added), updated=len(changed), unchanged=len(batch) - len(added) - len(changed)
        )

    async def get(self, person_id: str) -> Person | None:
        """The person with this id, contact details included, or None."""
        async with _translated():
            row = await self.pool.fetchrow(f"{_SELECT} WHERE id = $1", person_id)
        return None if row is None else person_from_row(row)

    async def get_many(self, ids: Iterable[str]) -> dict[str, Person]:
        """The people among `ids` who are in the directory, by id (unknown ids are left out)."""
        async with _translated():
            rows = await self.pool.fetch(f"{_SELECT} WHERE id = ANY($1::text[])", sorted(set(ids)))
        return {row["id"]: person_from_row(row) for row in rows}

    async def directors(self) -> list[Person]:
        """The active directors, by id: whom "directors" reaches when the tree names none."""
        return await self.list(role=Role.director, active=True)

    async def active_reps(self) -> list[Person]:
        """The active reps, by id (each month's plan is opened for every one of them)."""
        return await self.list(role=Role.rep, active=True)

    async def lookup(self, ids: Iterable[str]) -> Lookup:
        """A `domain.people.Lookup` holding `ids`, their managers up the tree and their deputies
        (and theirs): everything `domain.people.resolve` asks about those people."""
        async with _translated(), self.pool.acquire() as conn:
            return await _near(conn, ids)

    async def resolve(self, recipient: Actor, on: date, *, manager_id: str | None = None) -> Resolved:
        """Who receives a notification addressed to `recipient` on the local date `on`.

        `domain.people.resolve` on one snapshot of the directory: the recipient, the stream's
        manager (`manager_id`, to find "directors" through the tree), the active directors and
        everyone those lead to. Record the `Resolved` with the delivery.
        """
        async with (
            _translated(),
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(
                f"{_SELECT} WHERE role = 'director' AND active ORDER BY id",
            )
            directors = [person_from_row(row) for row in rows]
            named = [recipient.id, *([manager_id] if manager_id else []), *(d.id for d in directors)]
            lookup = await _near(conn, named)
        return resolve(recipient, lookup, on, manager_id=manager_id, directors=directors)

    async def list(
        self,
        *,
        role: Role | None = None,
        manager_id: str | None = None,
        active: bool | None = None,
    ) -> list[Person]:
        """People matching every filter given (`manager_id`: their direct reports), by id."""
        async with _translated():
            rows = await self.pool.fetch(
                f"""{_SELECT}
                 WHERE ($1::text IS NULL OR role = $1)
                   AND ($2::text IS NULL OR manager_id = $2)
                   AND ($3::boolean IS NULL OR active = $3)
                 ORDER BY id""",
                role.value if role is not None else None,
                manager_id,
                active,
            )
        return [person_from_row(row) for row in rows]


async def _near(conn: Connection, ids: Iterable[str]) -> Lookup:
    rows = await conn.fetch(_NEAR, sorted(set(ids)))
    found = {row["id"]: person_from_row(row) for row in rows}
    return found.get
