"""The customer registry in PostgreSQL (`customers`, migrations/0005_customers.sql).

The store hands out whole records, contacts included: who may read the contacts is decided by
`domain.customers.may_see_contacts`, applied by the callers that show records to people
(`starter.customers`). An import is one transaction: every record is written, or none.
"""

from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict

from activities.db import Connection
from activities.errors import StoreError, StoreUnavailable, from_postgres
from domain.actors import Actor
from domain.customers import CustomerRecord, CustomerRefusal, import_refusals
from domain.models import CustomerTier

REGISTRY_LOCK = 0x7669_7369_7463_7573
"""Advisory-lock key held by imports ("visitcus" in ASCII): two imports never interleave."""

_COLUMNS = ("id", "name", "tier", "grade", "owner_rep_id", "manager_id", "region", "contacts")

_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM customers"

_INSERT = f"""
INSERT INTO customers ({", ".join(_COLUMNS)})
VALUES ({", ".join(f"${n}" for n in range(1, len(_COLUMNS) + 1))})
"""

_UPDATE = f"""
UPDATE customers SET {", ".join(f"{c} = ${n}" for n, c in enumerate(_COLUMNS, start=1) if c != "id")},
       updated_at = now()
 WHERE id = $1
"""


class CustomerStoreError(StoreError):
    """The registry could not do what was asked; the message says why."""


class InvalidCustomers(CustomerStoreError):
    """The records handed to the store contradict each other or hold data PostgreSQL refuses."""

    non_retryable = True


class CustomersRefused(CustomerStoreError):
    """The actor may not add or change some of the customers; nothing was written."""

    non_retryable = True

    def __init__(self, refusals: Sequence[CustomerRefusal]) -> None:
        ids = ", ".join(r.customer_id for r in refusals[:5]) + (", ..." if len(refusals) > 5 else "")
        super().__init__(f"{len(refusals)} customer(s) may not be changed by this actor ({ids}).")
        self.refusals = list(refusals)


class UpsertCounts(BaseModel):
    """What an import did (or, in a dry run, would do)."""

    model_config = ConfigDict(frozen=True)

    added: int = 0
    updated: int = 0
    unchanged: int = 0


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
            raise InvalidCustomers(f"PostgreSQL refused the customer data: {text}.") from exc
        raise CustomerStoreError(f"The customer registry failed: {text} (SQLSTATE {exc.sqlstate}).") from exc
    except (OSError, asyncpg.InterfaceError) as exc:
        raise StoreUnavailable(f"PostgreSQL could not be reached: {exc}") from exc


def record_from_row(row: asyncpg.Record | Mapping[str, Any]) -> CustomerRecord:
    """The `CustomerRecord` of a `customers` row."""
    return CustomerRecord.model_validate({c: row[c] for c in _COLUMNS})


def _args(record: CustomerRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.name,
        record.tier.value,
        record.grade.value if record.grade else None,
        record.owner_rep_id,
        record.manager_id,
        record.region,
        [c.model_dump() for c in record.contacts],
    )


class CustomerStore:
    """Reads and writes the customer registry through one asyncpg pool (made with `create_pool`)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert_many(
        self,
        records: Iterable[CustomerRecord],
        *,
        keep_contacts: Collection[str] = (),
        actor: Actor | None = None,
        dry_run: bool = False,
    ) -> UpsertCounts:
        """Add new customers and update changed ones in one transaction: all or nothing.

        `keep_contacts` names customers whose stored contacts stay as they are (their file
        rows gave none). With `actor`, refuse (`CustomersRefused`) when a record to add or
        change is not theirs to write (`domain.customers.import_refusals`); without, the
        caller is a trusted backend. `dry_run` does everything, then rolls back.
        """
        batch = list(records)
        repeated = sorted(i for i, n in Counter(r.id for r in batch).items() if n > 1)
        if repeated:
            raise InvalidCustomers(f"The import names customer(s) {', '.join(repeated)} more than once.")
        try:
            async with _translated(), self.pool.acquire() as conn, conn.transaction():
                counts = await self._upsert(conn, batch, keep_contacts, actor)
                if dry_run:
                    raise _RolledBack(counts)
        except _RolledBack as done:
            return done.counts
        return counts

    async def _upsert(
        self,
        conn: Connection,
        batch: list[CustomerRecord],
        keep_contacts: Collection[str],
        actor: Actor | None,
    ) -> UpsertCounts:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", REGISTRY_LOCK)
        # FOR UPDATE: a writer outside imports (which would not take the lock) waits for us.
        rows = await conn.fetch(f"{_SELECT} WHERE id = ANY($1::text[]) FOR UPDATE", [r.id for r in batch])
        stored = {row["id"]: record_from_row(row) for row in rows}
        added: list[CustomerRecord] = []
        changed: list[CustomerRecord] = []
        for record in batch:
            before = stored.get(record.id)
            if before is not None and record.id in keep_contacts:
                record = record.model_copy(update={"contacts": before.contacts})
            if before is None:
                added.append(record)
            elif before != record:
                changed.append(record)
        if actor is not None:
            refusals = import_refusals(actor, [*added, *changed], stored)
            if refusals:
                raise CustomersRefused(refusals)
        if added:
            await conn.executemany(_INSERT, [_args(r) for r in added])
        if changed:
            await conn.executemany(_UPDATE, [_args(r) for r in changed])
        return UpsertCounts(
            added=len(added), updated=len(changed), unchanged=len(batch) - len(added) - len(changed)
        )

    async def get(self, customer_id: str) -> CustomerRecord | None:
        """The customer with this id, contacts included, or None."""
        async with _translated():
            row = await self.pool.fetchrow(f"{_SELECT} WHERE id = $1", customer_id)
        return None if row is None else record_from_row(row)

    async def owned_by(self, rep_id: str) -> list[CustomerRecord]:
        """The customers this rep owns, by id."""
        return await self.list(owner_rep_id=rep_id)

    async def list(
        self,
        *,
        owner_rep_id: str | None = None,
        manager_id: str | None = None,
        tier: CustomerTier | None = None,
    ) -> list[CustomerRecord]:
        """Customers matching every filter given, by id."""
        async with _translated():
            rows = await self.pool.fetch(
                f"""{_SELECT}
                 WHERE ($1::text IS NULL OR owner_rep_id = $1)
                   AND ($2::text IS NULL OR manager_id = $2)
                   AND ($3::text IS NULL OR tier = $3)
                 ORDER BY id""",
                owner_rep_id,
                manager_id,
                tier.value if tier is not None else None,
            )
        return [record_from_row(row) for row in rows]
