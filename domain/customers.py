"""The customer registry's records: who the customer is, its tier, who owns it, whom to call.

Contact details are confidential (DOMAIN.md, data rules): `may_see_contacts` says who may
read them; every reader outside `domain/` goes through it. `import_refusals` says who may
write them.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import Field

from domain.actors import Actor, Role
from domain.errors import RuleViolation
from domain.models import CustomerTier, Frozen, Name


class CustomerGrade(StrEnum):
    """The optional A–D grade by value and difficulty that some policies use."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


class Contact(Frozen):
    """A person to reach at the customer (confidential)."""

    name: Name
    title: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=50)
    email: str = Field(default="", max_length=320)


class CustomerRecord(Frozen):
    """One customer of the registry. `manager_id` is the owning rep's manager."""

    id: Name
    name: Name
    tier: CustomerTier
    grade: CustomerGrade | None = None
    owner_rep_id: Name
    manager_id: Name
    region: str = Field(default="", max_length=200)
    contacts: list[Contact] = Field(default_factory=list, max_length=20)


def may_see_contacts(actor: Actor, customer: CustomerRecord) -> bool:
    """Contacts are shown only to the owning rep, the rep's manager and directors."""
    if actor.role is Role.director:
        return True
    if actor.role is Role.rep:
        return actor.id == customer.owner_rep_id
    if actor.role is Role.manager:
        return actor.id == customer.manager_id
    return False


IMPORT_RULE = "customers.import"
"""The rule that names who may load customers into the registry."""


class CustomerRefusal(Frozen):
    """One customer of an import that the actor may not add or change, and why."""

    customer_id: str
    field: str
    reason: str


def check_may_import(actor: Actor) -> None:
    """Only managers and directors load customers; anyone else is refused by `IMPORT_RULE`."""
    if actor.role not in (Role.manager, Role.director):
        raise RuleViolation(
            IMPORT_RULE,
            f"Only managers and directors may import customers; {actor.id} acts as {actor.role}.",
        )


def import_refusals(
    actor: Actor, changes: Iterable[CustomerRecord], stored: Mapping[str, CustomerRecord]
) -> list[CustomerRefusal]:
    """The customers among `changes` (records that would be added or changed) `actor` may not write.

    A director writes any customer. A manager writes only customers they manage, before and
    after the change: otherwise naming oneself as manager would unlock a colleague's
    confidential contacts.
    """
    check_may_import(actor)
    if actor.role is Role.director:
        return []
    refusals: list[CustomerRefusal] = []
    for record in changes:
        before = stored.get(record.id)
        if before is not None and before.manager_id != actor.id:
            refusals.append(
                CustomerRefusal(
                    customer_id=record.id,
                    field="id",
                    reason=f"Customer {record.id} is managed by {before.manager_id}; only that manager "
                    "or a director may change it.",
                )
            )
        elif record.manager_id != actor.id:
            refusals.append(
                CustomerRefusal(
                    customer_id=record.id,
                    field="manager_id",
                    reason=f"A manager imports only the customers they manage; {actor.id} cannot "
                    f"load a customer managed by {record.manager_id}.",
                )
            )
    return refusals
