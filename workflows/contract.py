"""The public contract of the visit workflow, shared by the worker and every client.

Kept stable: clients in any language call these names with these JSON shapes.
"""

import typing

from pydantic import BaseModel, ConfigDict

from domain.actors import CommandBase
from domain.commands import Command
from domain.state import VisitStatus

WORKFLOW_TYPE = "VisitWorkflow"
WORKFLOW_ID_PREFIX = "visit-"

OPENED = "opened"
STATE = "state"

#: Update name for each command kind (they are the same words).
UPDATES = (
    "revise_plan",
    "approve_plan",
    "reject_plan",
    "return_plan",
    "reschedule",
    "cancel",
    "check_in",
    "submit_report",
    "accept_report",
    "return_report",
    "complete_item",
    "waive_report",
)


def commands_by_name(union: object, names: tuple[str, ...]) -> dict[str, type[CommandBase]]:
    """The command model each update name takes: the member of `union` whose `kind` it is."""
    members = typing.get_args(typing.get_args(union)[0])
    found = {model.model_fields["kind"].default: model for model in members}
    return {name: found[name] for name in names}


COMMANDS = commands_by_name(Command, UPDATES)
"""The command model of each update."""


def workflow_id(visit_id: str) -> str:
    """The workflow id of a visit: one workflow per visit, derived from its id."""
    return f"{WORKFLOW_ID_PREFIX}{visit_id}"


class RecordedRef(BaseModel):
    """Where one event of a command's outcome sits in the visit's log."""

    model_config = ConfigDict(frozen=True)

    seq: int
    type: str
    event_id: str


class CommandResult(BaseModel):
    """The outcome of an accepted command, returned once its events are committed."""

    model_config = ConfigDict(frozen=True)

    visit_id: str
    command_id: str
    kind: str
    status: VisitStatus
    events: list[RecordedRef]
    duplicate: bool = False
