"""The errors clients see: a refused command names its rule and says why in a sentence."""


class CommandRefused(Exception):
    """The engine refused a command. `rule` names the rule; the message is for people."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class VisitNotFound(CommandRefused):
    def __init__(self, visit_id: str) -> None:
        super().__init__("visit.unknown", f"There is no visit {visit_id}.")
