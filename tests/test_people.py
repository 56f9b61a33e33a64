"""The directory of people on a real PostgreSQL: imports are all or nothing and keep the tree whole,
contact details stay confidential, and notifications resolve through it."""

import asyncio
from datetime import date

import asyncpg
import pytest

from activities.people import InvalidPeople, PeopleStore, UpsertCounts
from domain.actors import Actor, Role
from domain.people import DIRECTORS, Channel, Person
from domain.people_csv import COLUMNS, parse
from starter.errors import CommandRefused
from starter.people import PeopleFileInvalid, PersonNotFound, export_csv, import_csv, show

pytestmark = pytest.mark.store

HEADER = ",".join(COLUMNS)
DIRECTOR = Actor(id="d-zhao", role=Role.director)
MANAGER = Actor(id="m-li", role=Role.manager)
OTHER_MANAGER = Actor(id="m-zhou", role=Role.manager)
REP = Actor(id="r-wang", role=Role.rep)
AUDITOR = Actor(id="a-qian", role=Role.auditor)

FILE = f"""{HEADER}
d-zhao,赵强,Zhao Qiang,director,,yes,zhao@corp.cn,139 0000 0001,,,email,zh,,,,,
d-qian,钱芳,,director,,yes,qian@corp.cn,,,,email,zh,,,,,
m-li,李明,Li Ming,manager,d-zhao,yes,li@corp.cn,,ding-li,,dingtalk,zh,22:00,07:00,2026-06-01,2026-06-10,m-zhou
m-zhou,周杰,,manager,d-qian,yes,zhou@corp.cn,,,,email,zh,,,,,
r-wang,王芳,Wang Fang,rep,m-li,yes,wang@corp.cn,138 0000 0000,,,email,zh,,,,,
r-sun,孙丽,,rep,m-zhou,yes,,,,wecom-sun,wecom,en,,,,,
r-old,老张,,rep,m-li,no,,,,,email,zh,,,,,
"""
AWAY = date(2026, 6, 3)


def lines(*rows: str) -> bytes:
    return "\n".join([HEADER, *rows, ""]).encode("utf-8-sig")


def row_of(person_id: str, text: str = FILE) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"{person_id},"))


async def loaded(pool: asyncpg.Pool) -> PeopleStore:
    store = PeopleStore(pool)
    assert await import_csv(store, FILE.encode("utf-8-sig"), DIRECTOR) == UpsertCounts(added=7)
    return store


async def test_an_import_adds_people_that_read_back_whole(own_pool):
    store = await loaded(own_pool)
    li = await store.get("m-li")
    assert li is not None and (li.name_zh, li.channel, li.deputy_id) == ("李明", Channel.dingtalk, "m-zhou")
    assert li.quiet_from is not None and li.quiet_from.isoformat() == "22:00:00"
    assert await store.get("x-404") is None
    assert list(await store.get_many(["r-wang", "m-li", "x-404"])) == ["m-li", "r-wang"]
    assert [p.id for p in await store.list(manager_id="m-li")] == ["r-old", "r-wang"]
    assert [p.id for p in await store.list(role=Role.manager)] == ["m-li", "m-zhou"]
    assert [p.id for p in await store.list(active=False)] == ["r-old"]
    assert [p.id for p in await store.list(role=Role.rep, manager_id="m-li", active=True)] == ["r-wang"]
    assert [p.id for p in await store.directors()] == ["d-qian", "d-zhao"]
    assert [p.id for p in await store.active_reps()] == ["r-sun", "r-wang"]
    assert len(await store.list()) == 7


async def test_a_file_with_one_bad_row_loads_nothing(own_pool):
    store = PeopleStore(own_pool)
    bad = FILE + "r-ma,马林,,rep,m-li,,ma@corp,,,,,,,,,,\n"
    with pytest.raises(PeopleFileInvalid) as refused:
        await import_csv(store, bad.encode(), DIRECTOR)
    assert [str(e) for e in refused.value.errors] == [
        'line 9, field email: Bad email "ma@corp": one address, like name@example.com.'
    ]
    assert await store.list() == []


async def test_a_write_the_database_refuses_midway_rolls_back_the_whole_import(own_pool):
    store = PeopleStore(own_pool)
    good = list(parse(FILE).people)
    # Built without validation, as a buggy caller might: the table's own CHECK refuses it.
    silent = Person.model_construct(**{**good[-1].model_dump(), "id": "r-bad", "channel": "fax"})
    with pytest.raises(InvalidPeople, match="PostgreSQL refused the people's data"):
        await store.upsert_many([*good, silent])
    with pytest.raises(InvalidPeople, match="names person\\(s\\) m-li more than once"):
        await store.upsert_many([*good, good[2]])
    assert await store.list() == []


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO people (id, role) VALUES ('r-x', 'rep')",  # a rep without a manager
        "INSERT INTO people (id, role) VALUES ('x', 'system')",
        "INSERT INTO people (id, role, language) VALUES ('x', 'director', 'fr')",
        "INSERT INTO people (id, role, quiet_from, quiet_to) VALUES ('x', 'director', '22:00', '22:00')",
        "INSERT INTO people (id, role, quiet_from) VALUES ('x', 'director', '22:00')",
        "INSERT INTO people (id, role, away_from, away_to) "
        "VALUES ('x', 'director', '2026-06-01', '2026-06-02')",  # an absence without a deputy
        "INSERT INTO people (id, role, away_from, away_to, deputy_id) "
        "VALUES ('x', 'director', '2026-06-02', '2026-06-01', 'x2')",
        "INSERT INTO people (id, role, manager_id) VALUES ('x', 'director', 'nobody')",
        "INSERT INTO people (id, role, manager_id) VALUES ('x', 'director', 'x')",
    ],
)
async def test_the_table_refuses_by_hand_what_the_model_refuses(own_pool, statement):
    with pytest.raises((asyncpg.CheckViolationError, asyncpg.ForeignKeyViolationError)):
        await own_pool.execute(statement)


async def test_a_second_import_updates_what_changed_and_counts_the_rest_unchanged(own_pool):
    store = await loaded(own_pool)
    before = await own_pool.fetchrow("SELECT created_at, updated_at FROM people WHERE id = 'r-wang'")
    changed = (
        FILE.replace("Wang Fang,rep,m-li,yes", "Wang Fang,rep,m-li,no")
        + "r-ma,马林,,rep,m-zhou,,,,,,,,,,,,\n"
    )
    assert await import_csv(store, changed.encode(), DIRECTOR) == UpsertCounts(
        added=1, updated=1, unchanged=6
    )
    wang = await store.get("r-wang")
    assert wang is not None and wang.active is False
    after = await own_pool.fetchrow("SELECT created_at, updated_at FROM people WHERE id = 'r-wang'")
    assert after["created_at"] == before["created_at"] and after["updated_at"] > before["updated_at"]
    assert await import_csv(store, changed.encode(), DIRECTOR) == UpsertCounts(unchanged=8)


async def test_rows_without_contact_details_keep_the_stored_ones_and_given_ones_replace_them(own_pool):
    store = await loaded(own_pool)
    # A channels-only file (no contact columns) must not wipe anyone's contact details.
    channels = "id,name_zh,role,manager_id,channel\nr-wang,王芳,rep,m-li,dingtalk\n"
    assert await import_csv(store, channels.encode(), DIRECTOR) == UpsertCounts(updated=1)
    wang = await store.get("r-wang")
    assert wang is not None and (wang.channel, wang.email, wang.mobile) == (
        "dingtalk",
        "wang@corp.cn",
        "138 0000 0000",
    )
    assert wang.name_en == ""  # a column left out is empty, like the customers'
    one = "id,name_zh,role,manager_id,dingtalk_id\nr-wang,王芳,rep,m-li,ding-wang\n"
    assert await import_csv(store, one.encode(), DIRECTOR) == UpsertCounts(updated=1)
    wang = await store.get("r-wang")
    assert wang is not None and (wang.dingtalk_id, wang.email, wang.mobile) == ("ding-wang", "", "")


async def test_a_dry_run_counts_the_changes_and_writes_nothing(own_pool):
    store = PeopleStore(own_pool)
    assert await import_csv(store, FILE.encode(), DIRECTOR, dry_run=True) == UpsertCounts(added=7)
    assert await store.list() == []


async def test_concurrent_imports_of_the_same_file_add_each_person_once(own_pool):
    store = PeopleStore(own_pool)
    first, second = await asyncio.gather(
        import_csv(store, FILE.encode(), DIRECTOR), import_csv(store, FILE.encode(), DIRECTOR)
    )
    assert sorted([first.added, second.added]) == [0, 7]


async def test_managers_and_deputies_may_be_in_the_file_or_already_stored_but_must_exist(own_pool):
    store = await loaded(own_pool)
    # Deputy and manager already stored; a new manager and their rep in the same file, rep first.
    newcomers = lines(
        "r-ma,马林,,rep,m-new,,,,,,,,,,2026-07-01,2026-07-05,r-wang",
        "m-new,新经理,,manager,d-qian,,,,,,,,,,,,",
    )
    assert await import_csv(store, newcomers, DIRECTOR) == UpsertCounts(added=2)
    ghosts = lines("r-x,某人,,rep,m-ghost,,,,,,,,,,2026-07-01,2026-07-05,r-ghost")
    with pytest.raises(PeopleFileInvalid) as refused:
        await import_csv(store, ghosts, DIRECTOR)
    assert [str(e) for e in refused.value.errors] == [
        "line 2, field manager_id: The manager m-ghost is not in the directory: add them in this file, or "
        "import them first.",
        "line 2, field deputy_id: The deputy r-ghost is not in the directory: add them in this file, or "
        "import them first.",
    ]
    assert await store.get("r-x") is None


async def test_an_import_that_would_break_the_tree_is_refused_with_the_lines_at_fault(own_pool):
    store = await loaded(own_pool)
    broken = lines(
        "d-zhao,赵强,Zhao Qiang,director,d-qian,yes,,,,,email,zh,,,,,",
        "d-qian,钱芳,,director,d-zhao,yes,,,,,email,zh,,,,,",
        "r-ma,马林,,rep,r-wang,,,,,,,,,,,,",
        "m-new,新经理,,manager,m-zhou,,,,,,,,,,,,",
        row_of("m-zhou").replace(",manager,", ",rep,"),
    )
    with pytest.raises(PeopleFileInvalid) as refused:
        await import_csv(store, broken, DIRECTOR)
    assert [str(e) for e in refused.value.errors] == [
        "line 2, field manager_id: The manager tree loops (d-zhao → d-qian → d-zhao); the top of the tree is "
        "a director without a manager.",
        "line 3, field manager_id: The manager tree loops (d-qian → d-zhao → d-qian); the top of the tree is "
        "a director without a manager.",
        "line 4, field manager_id: r-ma is a rep, who reports to a manager or a director; their manager "
        "r-wang is a rep.",
        "line 5, field manager_id: m-new is a manager, who reports to a director; their manager m-zhou is a "
        "rep.",
        "line 6, field role: m-zhou cannot be a rep while reps report to them (r-sun): a rep reports to a "
        "manager or a director; give them another manager first.",
    ]
    assert [p.manager_id for p in await store.directors()] == [None, None]


async def test_only_managers_and_directors_may_import(own_pool):
    store = PeopleStore(own_pool)
    for actor in (REP, AUDITOR):
        with pytest.raises(CommandRefused) as refused:
            await import_csv(store, FILE.encode(), actor)
        assert refused.value.rule == "people.import"
        assert refused.value.message == (
            f"Only managers and directors may import people; {actor.id} acts as {actor.role}."
        )
    assert await store.list() == []


async def test_a_manager_imports_only_their_own_team_and_loses_nothing_when_refused(own_pool):
    store = await loaded(own_pool)
    mine = lines(
        row_of("r-wang").replace("138 0000 0000", "138 1111 1111"), "r-ma,马林,,rep,m-li,,,,,,,,,,,,"
    )
    assert await import_csv(store, mine, MANAGER) == UpsertCounts(added=1, updated=1)
    theirs = lines(
        "r-mb,马博,,rep,m-li,,,,,,,,,,,,",
        row_of("r-sun").replace("wecom-sun", "wecom-sun2"),
        row_of("r-wang").replace(",m-li,", ",m-zhou,"),
    )
    with pytest.raises(PeopleFileInvalid) as refused:
        await import_csv(store, theirs, MANAGER)
    assert [str(e) for e in refused.value.errors] == [
        "line 3, field id: r-sun is not in m-li's team; only their managers up the tree or a director may "
        "change them.",
        "line 4, field manager_id: A manager imports only the people of their own team; r-wang would report "
        "to m-zhou, outside m-li's team.",
    ]
    assert await store.get("r-mb") is None
    # Their own absence and deputy are theirs to set; their role is not.
    back = row_of("m-li").replace("2026-06-01,2026-06-10,m-zhou", ",,m-zhou")
    assert await import_csv(store, lines(back), MANAGER) == UpsertCounts(updated=1)
    with pytest.raises(PeopleFileInvalid) as refused:
        await import_csv(store, lines(back.replace(",manager,", ",director,")), MANAGER)
    assert [str(e) for e in refused.value.errors] == [
        "line 2, field role: A manager changes their own contact details, quiet hours and absence, not their "
        "role: that is for a director."
    ]
    # Rows that change nothing pass, so a whole export goes back in (withheld contacts kept).
    exported = await export_csv(store, MANAGER)
    assert await import_csv(store, exported.text.encode(), MANAGER) == UpsertCounts(unchanged=8)
    sun = await store.get("r-sun")
    assert sun is not None and sun.wecom_id == "wecom-sun"


@pytest.mark.parametrize(
    ("actor", "sees"),
    [
        (REP, True),  # the person themself
        (MANAGER, True),  # their manager
        (DIRECTOR, True),  # the director above
        (Actor(id="d-qian", role=Role.director), True),  # any director
        (OTHER_MANAGER, False),
        (Actor(id="r-sun", role=Role.rep), False),
        (AUDITOR, False),
        (None, False),
    ],
)
async def test_contact_details_are_shown_only_to_the_person_their_managers_and_directors(
    own_pool, actor, sees
):
    store = await loaded(own_pool)
    view = await show(store, "r-wang", actor, AWAY)
    assert (view.person.email == "wang@corp.cn") is sees and view.contacts_confidential is not sees
    assert all(not p.email for p in [*view.managers, *view.told])  # the people around: names only
    exported = await export_csv(store, actor)
    assert ("wang@corp.cn" in exported.text) is sees


async def test_an_export_withholds_each_persons_contact_details_by_their_own_tree(own_pool):
    store = await loaded(own_pool)
    exported = await export_csv(store, MANAGER)
    assert (exported.people, exported.contacts_withheld) == (7, 4)  # m-li, r-wang, r-old are theirs
    by_id = {p.id: p for p in parse(exported.text).people}
    assert by_id["r-wang"].mobile == "138 0000 0000" and by_id["r-sun"].wecom_id == ""
    assert by_id["m-li"].dingtalk_id == "ding-li"
    assert (await export_csv(store, None)).contacts_withheld == 7


async def test_show_gives_the_chain_the_team_the_deputy_and_whom_notifications_reach(own_pool):
    store = await loaded(own_pool)
    li = await show(store, "m-li", MANAGER, AWAY)
    assert [m.id for m in li.managers] == ["d-zhao"]
    assert ([p.id for p in li.team], li.team_size) == (["r-old", "r-wang"], 2)
    assert li.deputy is not None and li.deputy.id == "m-zhou"
    assert li.resolved.person_ids == ["m-zhou"] and [p.id for p in li.told] == ["m-zhou"]
    assert (await show(store, "m-li", MANAGER, date(2026, 6, 11))).resolved.person_ids == ["m-li"]
    zhou = await show(store, "m-zhou", None, AWAY)
    assert [p.id for p in zhou.deputy_for] == ["m-li"]
    zhao = await show(store, "d-zhao", None, AWAY)
    assert ([p.id for p in zhao.team], zhao.team_size) == (["m-li"], 3)
    old = await show(store, "r-old", None, AWAY)
    assert old.resolved.problem == "r-old is no longer active" and old.told == []
    with pytest.raises(PersonNotFound):
        await show(store, "x-404", None, AWAY)


async def test_notifications_resolve_through_the_stored_directory(own_pool):
    store = await loaded(own_pool)
    manager = Actor(id="m-li", role=Role.manager)
    assert (await store.resolve(manager, AWAY)).person_ids == ["m-zhou"]
    assert (await store.resolve(manager, date(2026, 6, 11))).person_ids == ["m-li"]
    group = Actor(id=DIRECTORS, role=Role.director)
    tree = await store.resolve(group, AWAY, manager_id="m-li")
    assert (tree.person_ids, tree.steps) == (
        ["d-zhao"],
        ["directors: d-zhao, the director above manager m-li"],
    )
    assert (await store.resolve(group, AWAY)).person_ids == ["d-qian", "d-zhao"]
    assert (
        await store.resolve(Actor(id="r-x", role=Role.rep), AWAY)
    ).problem == "r-x is not in the directory."
    lookup = await store.lookup(["r-wang"])  # with the managers up the tree and their deputies
    assert [lookup(i) is not None for i in ("r-wang", "m-li", "d-zhao", "m-zhou", "d-qian", "r-sun")] == [
        True, True, True, True, True, False,
    ]  # fmt: skip


async def test_auditors_may_read_people_but_not_their_contact_details(own_pool):
    role = await own_pool.fetchval("SELECT true FROM pg_roles WHERE rolname = 'visitflow_auditor'")
    if not role:
        pytest.skip("this server has no visitflow_auditor role (the migration could not create it)")
    privilege = "SELECT has_column_privilege('visitflow_auditor', 'people', $1, 'SELECT')"
    for column in ("name_zh", "role", "manager_id", "away_from", "deputy_id"):
        assert await own_pool.fetchval(privilege, column) is True, column
    for column in ("email", "mobile", "dingtalk_id", "wecom_id"):
        assert await own_pool.fetchval(privilege, column) is False, column
