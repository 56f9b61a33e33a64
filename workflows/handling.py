"""How every workflow of the engine takes a command: parsed in the workflow, refused in one line.

Shared by the visit and the monthly plan workflows, so a client sees the same error types
(`command.invalid`, a rule code) whichever it talks to.
"""

import hashlib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError

from domain.errors import RuleViolation

C = TypeVar("C", bound=BaseModel)


def refusal(violation: RuleViolation) -> ApplicationError:
    """A refused command as the error clients see: the sentence, typed by its rule."""
    return ApplicationError(violation.message, type=violation.rule, non_retryable=True)


def parse_command(model: type[C], raw: dict[str, Any]) -> C:
    """Validate a command's JSON in the workflow, so a malformed one is refused in one clear line.

    Updates take plain JSON objects rather than models: a payload the converter cannot
    decode would otherwise fail as a retryable decoding error with a multi-line dump.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "command"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ApplicationError(
            f"The command is malformed: {where}: {first['msg']}{more}.",
            type="command.invalid",
            non_retryable=True,
        ) from None


def fingerprint(command: BaseModel) -> str:
    """What tells a repeated command from another one sent under the same command id."""
    return hashlib.sha256(command.model_dump_json().encode()).hexdigest()
