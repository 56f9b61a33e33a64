"""Who acts on a visit: every command and event names one actor."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    """The roles of DOMAIN.md. `system` is the engine itself (reminders, escalations)."""

    rep = "rep"
    manager = "manager"
    director = "director"
    auditor = "auditor"
    system = "system"


class Actor(BaseModel):
    """A person (or the engine) acting on a visit, named by id and role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    role: Role


SYSTEM = Actor(id="visitflow", role=Role.system)
