"""The errors clients see: a refused command names its rule and says why in a sentence."""

from temporalio.exceptions import ApplicationError


class CommandRefused(Exception):
    """The engine refused a command. `rule` names the rule; the message is for people."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class VisitNotFound(CommandRefused):
    def __init__(self, visit_id: str) -> None:
        super().__init__("visit.unknown", f"There is no visit {visit_id}.")


def refusal_in(err: BaseException) -> CommandRefused | None:
    """The rule and sentence of the refusal behind a Temporal error, if it carries one."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            return CommandRefused(cause.type, cause.message)
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return None
