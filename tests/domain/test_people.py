"""The directory's rules: whom a notification reaches, who sees contact details, what an import may do."""

from datetime import date, datetime, time

import pytest
from pydantic import ValidationError

from domain.actors import Actor, Role
from domain.errors import RuleViolation
from domain.people import (
    DIRECTORS,
    Channel,
    Person,
    PersonProblem,
    deputy_may_act,
    directory_problems,
    import_refusals,
    in_team,
    managers_of,
    may_see_contacts,
    resolve,
)

ZHAO = Person(id="d-zhao", name_zh="赵强", role=Role.director, email="zhao@corp.cn")
QIAN = Person(id="d-qian", name_zh="钱芳", role=Role.director, email="qian@corp.cn")
LI = Person(
    id="m-li",
    name_zh="李明",
    name_en="Li Ming",
    role=Role.manager,
    manager_id="d-zhao",
    email="li@corp.cn",
    away_from=date(2026, 6, 1),
    away_to=date(2026, 6, 10),
    deputy_id="m-zhou",
)
ZHOU = Person(id="m-zhou", name_zh="周杰", role=Role.manager, manager_id="d-qian", email="zhou@corp.cn")
WANG = Person(id="r-wang", name_zh="王芳", role=Role.rep, manager_id="m-li", mobile="138 0000 0000")
SUN = Person(id="r-sun", name_zh="孙丽", role=Role.rep, manager_id="m-zhou")
PEOPLE = {p.id: p for p in (ZHAO, QIAN, LI, ZHOU, WANG, SUN)}
lookup = PEOPLE.get

AWAY = date(2026, 6, 3)
BACK = date(2026, 6, 11)


def to(person_id: str, role: Role = Role.manager) -> Actor:
    return Actor(id=person_id, role=role)


# --- resolve ------------------------------------------------------------------------------


def test_a_person_at_work_receives_their_own_notifications():
    resolved = resolve(to("r-wang", Role.rep), lookup, AWAY)
    assert (resolved.person_ids, resolved.steps, resolved.problem) == (["r-wang"], [], None)


def test_a_manager_away_with_a_deputy_is_stood_in_for_on_the_days_of_the_absence_only():
    for day in (date(2026, 6, 1), AWAY, date(2026, 6, 10)):  # both ends included
        resolved = resolve(to("m-li"), lookup, day)
        assert resolved.person_ids == ["m-zhou"], day
        assert resolved.steps == ["m-li is away 2026-06-01 to 2026-06-10; deputy m-zhou stands in"]
    for day in (date(2026, 5, 31), BACK):
        assert resolve(to("m-li"), lookup, day).person_ids == ["m-li"], day


def test_a_deputy_who_cannot_be_reached_leaves_the_notification_with_the_absent_person():
    gone = {**PEOPLE, "m-zhou": ZHOU.model_copy(update={"active": False})}
    resolved = resolve(to("m-li"), gone.get, AWAY)
    assert resolved.person_ids == ["m-li"]
    assert "deputy m-zhou cannot be reached through the directory" in resolved.steps[0]


def test_a_deputys_own_deputy_is_not_followed():
    chained = {
        **PEOPLE,
        "m-zhou": ZHOU.model_copy(
            update={"away_from": date(2026, 6, 1), "away_to": date(2026, 6, 30), "deputy_id": "d-qian"}
        ),
    }
    assert resolve(to("m-li"), chained.get, AWAY).person_ids == ["m-zhou"]


def test_directors_are_found_through_the_tree_above_the_streams_manager():
    resolved = resolve(to(DIRECTORS, Role.director), lookup, AWAY, manager_id="m-li", directors=[ZHAO, QIAN])
    assert resolved.person_ids == ["d-zhao"]
    assert resolved.steps == ["directors: d-zhao, the director above manager m-li"]


def test_directors_are_the_whole_group_when_the_tree_names_none():
    resolved = resolve(to(DIRECTORS, Role.director), lookup, AWAY, directors=[QIAN, ZHAO])
    assert resolved.person_ids == ["d-qian", "d-zhao"]
    assert resolved.steps == ["directors: every active director (d-qian, d-zhao)"]
    # A manager without a director above (or an unknown one) falls back to the group too.
    orphan = {**PEOPLE, "m-ma": Person(id="m-ma", role=Role.manager)}
    resolved = resolve(to(DIRECTORS, Role.director), orphan.get, AWAY, manager_id="m-ma", directors=[ZHAO])
    assert resolved.person_ids == ["d-zhao"]
    resolved = resolve(to(DIRECTORS, Role.director), lookup, AWAY, directors=[])
    assert resolved.problem == "The directory has no active director to tell." and resolved.person_ids == []


def test_an_inactive_director_is_left_out_of_the_group_and_the_tree():
    retired = ZHAO.model_copy(update={"active": False})
    people = {**PEOPLE, "d-zhao": retired}
    resolved = resolve(
        to(DIRECTORS, Role.director), people.get, AWAY, manager_id="m-li", directors=[retired, QIAN]
    )
    assert resolved.person_ids == ["d-qian"]


def test_an_inactive_person_is_told_nothing_and_the_resolution_says_why():
    people = {**PEOPLE, "r-wang": WANG.model_copy(update={"active": False})}
    resolved = resolve(to("r-wang", Role.rep), people.get, AWAY)
    assert resolved.person_ids == []
    assert resolved.problem == "r-wang is no longer active"


def test_a_person_not_in_the_directory_cannot_be_told():
    resolved = resolve(to("r-nobody", Role.rep), lookup, AWAY)
    assert (resolved.person_ids, resolved.problem) == ([], "r-nobody is not in the directory.")


def test_a_deputy_may_act_for_the_absent_person_only_while_they_are_away():
    assert deputy_may_act(ZHOU, LI, AWAY)
    assert not deputy_may_act(ZHOU, LI, BACK)
    assert not deputy_may_act(SUN, LI, AWAY)  # not the named deputy
    assert not deputy_may_act(ZHOU.model_copy(update={"active": False}), LI, AWAY)


# --- quiet hours --------------------------------------------------------------------------

SHANGHAI = "Asia/Shanghai"
NIGHT_OWL = WANG.model_copy(update={"quiet_from": time(22, 0), "quiet_to": time(7, 0)})


def test_quiet_hours_over_midnight_hold_a_notification_until_the_morning():
    morning = datetime.fromisoformat("2026-06-04T07:00+08:00")
    assert NIGHT_OWL.quiet_until(datetime.fromisoformat("2026-06-03T23:30+08:00"), SHANGHAI) == morning
    assert NIGHT_OWL.quiet_until(datetime.fromisoformat("2026-06-04T06:59+08:00"), SHANGHAI) == morning
    assert NIGHT_OWL.quiet_until(datetime.fromisoformat("2026-06-03T22:00+08:00"), SHANGHAI) == morning
    for awake in ("2026-06-04T07:00+08:00", "2026-06-03T12:00+08:00", "2026-06-03T21:59+08:00"):
        assert NIGHT_OWL.quiet_until(datetime.fromisoformat(awake), SHANGHAI) is None, awake


def test_quiet_hours_within_a_day_and_none_at_all():
    lunch = WANG.model_copy(update={"quiet_from": time(12, 0), "quiet_to": time(13, 30)})
    assert lunch.quiet_until(datetime.fromisoformat("2026-06-03T04:15Z"), SHANGHAI) == datetime.fromisoformat(
        "2026-06-03T13:30+08:00"
    )
    assert lunch.quiet_until(datetime.fromisoformat("2026-06-03T13:30+08:00"), SHANGHAI) is None
    assert WANG.quiet_until(datetime.fromisoformat("2026-06-03T03:00+08:00"), SHANGHAI) is None


# --- the model ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"away_from": date(2026, 6, 1), "deputy_id": "m-zhou"}, "both away_from and away_to"),
        ({"away_from": date(2026, 6, 2), "away_to": date(2026, 6, 1), "deputy_id": "m-zhou"}, "before"),
        ({"away_from": date(2026, 6, 1), "away_to": date(2026, 6, 2)}, "names the deputy"),
        ({"deputy_id": "m-li"}, "their own deputy"),
        ({"manager_id": "m-li"}, "their own manager"),
        ({"manager_id": ""}, "at least 1 character"),
        ({"quiet_from": time(22, 0)}, "both quiet_from and quiet_to"),
        ({"quiet_from": time(22, 0), "quiet_to": time(22, 0)}, "the same time"),
        ({"role": Role.system}, "not a person of the directory"),
        ({"channel": "fax"}, "Input should be"),
    ],
)
def test_a_person_the_rules_refuse_cannot_be_made(fields, message):
    with pytest.raises(ValidationError, match=message):
        Person.model_validate({"id": "m-li", "role": "manager", **fields})


def test_a_person_is_reached_at_the_address_of_their_channel():
    assert LI.address(Channel.email) == "li@corp.cn" and LI.address(Channel.wecom) == ""
    assert LI.address(Channel.webhook) == "m-li"
    assert (LI.display_name, WANG.display_name, Person(id="x", role=Role.rep).display_name) == (
        "李明 (Li Ming)",
        "王芳",
        "x",
    )


# --- the tree and contact details ---------------------------------------------------------


def test_managers_up_the_tree_nearest_first_and_a_loop_ends_the_walk():
    assert [m.id for m in managers_of(WANG, lookup)] == ["m-li", "d-zhao"]
    assert managers_of(ZHAO, lookup) == []
    looped = {
        "d-a": Person(id="d-a", role=Role.director, manager_id="d-b"),
        "d-b": Person(id="d-b", role=Role.director, manager_id="d-a"),
    }
    assert [m.id for m in managers_of(looped["d-a"], looped.get)] == ["d-b"]
    assert in_team(WANG, "d-zhao", lookup) and not in_team(WANG, "m-zhou", lookup)


@pytest.mark.parametrize(
    ("viewer", "sees"),
    [
        (to("r-wang", Role.rep), True),  # the person themself
        (to("m-li"), True),  # their manager
        (to("d-zhao", Role.director), True),  # the director above
        (to("d-qian", Role.director), True),  # any director
        (to("m-zhou"), False),  # another manager
        (to("r-sun", Role.rep), False),  # a colleague
        (to("a-qian", Role.auditor), False),
        (to("m-li", Role.rep), False),  # a manager's id with another role
    ],
)
def test_contact_details_are_for_the_person_their_managers_up_the_tree_and_directors(viewer, sees):
    assert may_see_contacts(viewer, WANG, lookup) is sees


# --- imports: the directory as a whole ----------------------------------------------------


def problems(changes: list[Person], stored: dict[str, Person] = PEOPLE) -> list[tuple[str, str, str]]:
    return [(p.person_id, p.field, p.reason) for p in directory_problems(changes, stored)]


def test_a_consistent_import_has_no_problems():
    new = Person(id="r-ma", role=Role.rep, manager_id="m-new")
    manager = Person(id="m-new", role=Role.manager, manager_id="d-zhao")
    assert problems([new, manager]) == []  # a manager in the same file counts
    assert problems(list(PEOPLE.values()), {}) == []


def test_managers_and_deputies_must_be_in_the_directory():
    ghost = Person(id="r-ma", role=Role.rep, manager_id="m-ghost", deputy_id="r-ghost")
    assert problems([ghost]) == [
        (
            "r-ma",
            "manager_id",
            "The manager m-ghost is not in the directory: add them in this file, or import them first.",
        ),
        (
            "r-ma",
            "deputy_id",
            "The deputy r-ghost is not in the directory: add them in this file, or import them first.",
        ),
    ]


def test_a_rep_needs_a_manager():
    assert problems([Person(id="r-ma", role=Role.rep)]) == [
        (
            "r-ma",
            "manager_id",
            "Missing manager_id: a rep reports to a manager or a director, who hears their escalations.",
        )
    ]


def test_the_manager_tree_must_not_loop():
    a = Person(id="d-a", role=Role.director, manager_id="d-b")
    b = Person(id="d-b", role=Role.director, manager_id="d-a")
    reason = "The manager tree loops ({}); the top of the tree is a director without a manager."
    assert problems([a, b]) == [
        ("d-a", "manager_id", reason.format("d-a → d-b → d-a")),
        ("d-b", "manager_id", reason.format("d-b → d-a → d-b")),
    ]
    # A loop closed by one changed person through stored ones is told on that person only.
    stored = {**PEOPLE, "d-a": a, "d-b": Person(id="d-b", role=Role.director)}
    assert [(p, f) for p, f, _ in problems([b], stored)] == [("d-b", "manager_id")]


def test_a_rep_reports_to_a_manager_or_director_and_a_manager_to_a_director():
    to_rep = Person(id="r-ma", role=Role.rep, manager_id="r-wang")
    to_manager = Person(id="m-ma", role=Role.manager, manager_id="m-li")
    assert problems([to_rep, to_manager]) == [
        (
            "r-ma",
            "manager_id",
            "r-ma is a rep, who reports to a manager or a director; their manager r-wang is a rep.",
        ),
        (
            "m-ma",
            "manager_id",
            "m-ma is a manager, who reports to a director; their manager m-li is a manager.",
        ),
    ]
    assert problems([Person(id="r-ma", role=Role.rep, manager_id="d-zhao")]) == []


def test_a_manager_whose_reps_stay_cannot_become_a_rep():
    demoted = LI.model_copy(update={"role": Role.rep})
    assert problems([demoted]) == [
        (
            "m-li",
            "role",
            "m-li cannot be a rep while reps report to them (r-wang): a rep reports to a manager or a "
            "director; give them another manager first.",
        )
    ]
    moved = WANG.model_copy(update={"manager_id": "m-zhou"})
    assert problems([demoted, moved]) == []


# --- imports: who may write whom ----------------------------------------------------------


def refusals(actor: Actor, changes: list[Person]) -> list[tuple[str, str]]:
    return [(p.person_id, p.field) for p in import_refusals(actor, changes, PEOPLE)]


def test_only_managers_and_directors_may_import_people():
    for actor in (to("r-wang", Role.rep), to("a-qian", Role.auditor)):
        with pytest.raises(RuleViolation) as refused:
            import_refusals(actor, [], PEOPLE)
        assert refused.value.rule == "people.import"
        assert refused.value.message == (
            f"Only managers and directors may import people; {actor.id} acts as {actor.role}."
        )


def test_a_director_writes_anyone():
    everyone = [p.model_copy(update={"name_en": "changed"}) for p in PEOPLE.values()]
    assert refusals(to("d-qian", Role.director), everyone) == []


def test_a_manager_writes_their_own_team_before_and_after_the_change():
    li = to("m-li")
    assert refusals(li, [WANG.model_copy(update={"mobile": "139"})]) == []
    assert refusals(li, [Person(id="r-new", role=Role.rep, manager_id="m-li")]) == []
    assert refusals(li, [SUN.model_copy(update={"mobile": "139"})]) == [("r-sun", "id")]
    # Taking a colleague's rep by naming oneself as manager is refused, and so is giving one away.
    assert refusals(li, [SUN.model_copy(update={"manager_id": "m-li"})]) == [("r-sun", "id")]
    assert refusals(li, [WANG.model_copy(update={"manager_id": "m-zhou"})]) == [("r-wang", "manager_id")]
    assert refusals(li, [Person(id="r-new", role=Role.rep, manager_id="m-zhou")]) == [("r-new", "manager_id")]
    (refusal,) = import_refusals(li, [SUN.model_copy(update={"mobile": "139"})], PEOPLE)
    assert refusal == PersonProblem(
        person_id="r-sun",
        field="id",
        reason="r-sun is not in m-li's team; only their managers up the tree or a director may change them.",
    )


def test_a_manager_names_their_own_deputy_but_not_their_own_role_manager_or_standing():
    li = to("m-li")
    assert (
        refusals(li, [LI.model_copy(update={"away_from": date(2026, 7, 1), "away_to": date(2026, 7, 2)})])
        == []
    )
    assert refusals(li, [LI.model_copy(update={"role": Role.director, "manager_id": None})]) == [
        ("m-li", "role")
    ]
    assert refusals(li, [LI.model_copy(update={"manager_id": "d-qian"})]) == [("m-li", "manager_id")]
    assert refusals(li, [LI.model_copy(update={"active": False})]) == [("m-li", "active")]
