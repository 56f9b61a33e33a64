"""The one error the domain raises: a command that a business rule refuses."""


class RuleViolation(Exception):
    """A command refused by a named business rule.

    `rule` is a stable code clients branch on (``role.approve``, ``state.check_in``...);
    `message` is the sentence a manager reads.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message

    def __str__(self) -> str:
        return self.message
