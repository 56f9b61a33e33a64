"""The customer registry's records: who the customer is, its tier, who owns it, whom to call.

Contact details are confidential (DOMAIN.md, data rules): `may_see_contacts` says who may
read them; every reader outside `domain/` goes through it.
"""

from enum import StrEnum

from pydantic import Field

from domain.actors import Actor, Role
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
