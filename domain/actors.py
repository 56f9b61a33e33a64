"""Who acts on a stream: every command and event names one actor, and every command its id."""

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.models import Frozen


class Role(StrEnum):
    """The roles of DOMAIN.md. `system` is the engine itself (reminders, escalations);
    `service` a backend system (the CRM, the "135" system) acting with an API key's scopes."""

    rep = "rep"
    manager = "manager"
    director = "director"
    auditor = "auditor"
    system = "system"
    service = "service"


class Actor(BaseModel):
    """A person (or the engine) acting on a visit, named by id and role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    role: Role


SYSTEM = Actor(id="visitflow", role=Role.system)


CommandId = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=2_000)]


class CommandAuth(Frozen):
    """Who vouched for a command: the door that authenticated its sender, and its signature.

    `issuer` and `subject` name the verified identity (an identity provider's token, an API
    key, the operator of the `visits` tool); `via` the service or tool that sent it; `key_id`
    the signing key; `signature` the Ed25519 signature (base64url) over the command's
    canonical JSON without the signature itself (`domain.signing`).
    """

    key_id: Annotated[str, Field(min_length=1, max_length=200)]
    signature: Annotated[str, Field(min_length=1, max_length=200)]
    issuer: Annotated[str, Field(min_length=1, max_length=500)]
    subject: Annotated[str, Field(min_length=1, max_length=500)]
    via: Annotated[str, Field(min_length=1, max_length=200)]


class CommandBase(Frozen):
    """What every command carries: a client-chosen id (the idempotency key) and who acts.

    `on_behalf_of` names the absent manager a deputy stands in for (代理): the deputy acts
    with that manager's authority while the directory says they are away, and the log
    records the act as the deputy's, for that manager.
    """

    command_id: CommandId
    actor: Actor
    on_behalf_of: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    auth: CommandAuth | None = None
