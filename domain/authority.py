"""Who may act on a stream: the rules of authority every stream shares (审批权限).

A stream (a visit, a monthly plan) names its rep, its manager and, optionally, its
director. Only they open it; only its manager or a director approves; auditors read and
never change; the engine (`visitflow`/`system`) records only its own alarms. Each rule
refuses with a `RuleViolation` whose sentence names who may act and who tried.
"""

from domain.actors import Actor, Role
from domain.errors import RuleViolation


def refuse_auditor(actor: Actor, streams: str) -> None:
    """Auditors change nothing (`role.auditor`); `streams` names what they read ("visits")."""
    if actor.role is Role.auditor:
        raise RuleViolation("role.auditor", f"Auditors read {streams}; they never change them.")


def refuse_own_manager(rep_id: str, manager_id: str) -> None:
    """A rep cannot approve their own plan (`plan.own_manager`)."""
    if rep_id == manager_id:
        raise RuleViolation("plan.own_manager", "A rep cannot be the manager who approves their own plan.")


def is_approver(
    actor: Actor, manager_id: str, director_id: str | None, on_behalf_of: str | None = None
) -> bool:
    """The stream's manager (or the deputy standing in for them), or its director (any
    director when it names none)."""
    if on_behalf_of is not None:
        return actor.role is Role.manager and on_behalf_of == manager_id
    if actor.role is Role.director:
        return director_id is None or actor.id == director_id
    return actor.role is Role.manager and actor.id == manager_id


def check_deputy(actor: Actor, on_behalf_of: str | None, manager_id: str) -> None:
    """A deputy stands in only for the stream's own manager, and only as a manager (`role.deputy`).

    Whether the directory names them that manager's deputy on the day is checked where the
    directory is read, before the command is decided.
    """
    if on_behalf_of is None:
        return
    if actor.role is not Role.manager or on_behalf_of != manager_id:
        raise RuleViolation(
            "role.deputy",
            f"{actor.id} ({actor.role}) cannot act for {on_behalf_of}: a deputy is a manager who stands "
            f"in for the absent manager of this stream ({manager_id}).",
        )


def approvers(whose: str, manager_id: str, director_id: str | None) -> str:
    """Who may approve, in words: "the visit's manager (m-li) or a director"."""
    director = f"its director ({director_id})" if director_id else "a director"
    return f"the {whose} manager ({manager_id}) or {director}"


def require_approver(
    actor: Actor,
    manager_id: str,
    director_id: str | None,
    *,
    whose: str,
    action: str,
    kind: str,
    on_behalf_of: str | None = None,
) -> None:
    """Only the manager (or their deputy) or a director may `action` (`role.<kind>`); `whose` is
    "visit's", "plan's"."""
    if not is_approver(actor, manager_id, director_id, on_behalf_of):
        raise RuleViolation(
            f"role.{kind}",
            f"Only {approvers(whose, manager_id, director_id)} may {action}; "
            f"{actor.id} acts as {actor.role}.",
        )


def may_open(actor: Actor, rep_id: str, manager_id: str) -> bool:
    """A stream is opened by its rep, its manager or a director."""
    return (actor.role, actor.id) in {(Role.rep, rep_id), (Role.manager, manager_id)} or (
        actor.role is Role.director
    )


def require_engine(actor: Actor, rule: str, message: str) -> None:
    """What only the engine's timers record (reminders, escalations, started visits)."""
    if actor.role is not Role.system:
        raise RuleViolation(rule, message)


def refuse_engine(actor: Actor, engine_only: bool, message: str) -> None:
    """The engine records only its own commands (`role.system`)."""
    if actor.role is Role.system and not engine_only:
        raise RuleViolation("role.system", message)
