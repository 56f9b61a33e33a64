"""The customer registry on a real PostgreSQL: imports are all or nothing, contacts stay confidential."""

import asyncio

import pytest

from activities.customers import CustomerStore, InvalidCustomers, UpsertCounts
from domain.actors import Actor, Role
from domain.customer_csv import COLUMNS, parse
from domain.customers import Contact, CustomerRecord
from domain.models import CustomerTier
from starter.customers import CustomerFileInvalid, export_csv, import_csv, show, visible
from starter.errors import CommandRefused

pytestmark = pytest.mark.store

HEADER = ",".join(COLUMNS)
DIRECTOR = Actor(id="d-zhao", role=Role.director)
MANAGER = Actor(id="m-li", role=Role.manager)
OTHER_MANAGER = Actor(id="m-zhou", role=Role.manager)
REP = Actor(id="r-wang", role=Role.rep)
OTHER_REP = Actor(id="r-sun", role=Role.rep)
AUDITOR = Actor(id="a-qian", role=Role.auditor)

FILE = f"""{HEADER}
C-1,上海华联超市,core,A,r-wang,m-li,上海,张伟,采购经理,021-6234 5678,zhang@hualian.cn
C-1,上海华联超市,core,A,r-wang,m-li,上海,李娜,店长,138 0000 0000,
C-2,Acme Trading,regular,,r-wang,m-li,,,,,
C-3,Zhou's Store,potential,C,r-sun,m-zhou,江苏,Wu Fang,,139 1111 2222,wu@store.cn
"""


def records(text: str) -> list[CustomerRecord]:
    parsed = parse(text)
    assert parsed.ok, parsed.errors
    return list(parsed.records)


async def test_an_import_adds_customers_that_read_back_whole(own_pool):
    store = CustomerStore(own_pool)
    counts = await import_csv(store, FILE.encode("utf-8-sig"), DIRECTOR)
    assert counts == UpsertCounts(added=3, updated=0, unchanged=0)
    c1 = await store.get("C-1")
    assert c1 is not None and c1.name == "上海华联超市"
    assert [c.name for c in c1.contacts] == ["张伟", "李娜"]
    assert await store.get("C-404") is None
    assert [r.id for r in await store.owned_by("r-wang")] == ["C-1", "C-2"]
    assert [r.id for r in await store.list(manager_id="m-zhou")] == ["C-3"]
    assert [r.id for r in await store.list(tier=CustomerTier.regular)] == ["C-2"]
    assert [r.id for r in await store.list(owner_rep_id="r-wang", tier=CustomerTier.core)] == ["C-1"]
    assert len(await store.list()) == 3


async def test_a_file_with_one_bad_row_loads_nothing(own_pool):
    store = CustomerStore(own_pool)
    bad = FILE + "C-4,Broken,gold,,r-wang,m-li,,,,,\n"
    with pytest.raises(CustomerFileInvalid) as refused:
        await import_csv(store, bad.encode(), DIRECTOR)
    assert [str(e) for e in refused.value.errors] == [
        'line 6, field tier: Unknown tier "gold": must be one of core, potential, regular, assist.'
    ]
    assert await store.list() == []


async def test_a_write_the_database_refuses_midway_rolls_back_the_whole_import(own_pool):
    store = CustomerStore(own_pool)
    good = records(FILE)
    # Built without validation, as a buggy caller might: the table's own CHECK refuses it.
    nameless = CustomerRecord.model_construct(
        id="C-9", name="", tier=CustomerTier.core, grade=None, owner_rep_id="r", manager_id="m", region="",
        contacts=[],
    )  # fmt: skip
    with pytest.raises(InvalidCustomers, match="PostgreSQL refused the customer data"):
        await store.upsert_many([*good, nameless])
    with pytest.raises(InvalidCustomers, match="names customer\\(s\\) C-1 more than once"):
        await store.upsert_many([*good, good[0]])
    assert await store.list() == []


async def test_a_second_import_updates_what_changed_and_counts_the_rest_unchanged(own_pool):
    store = CustomerStore(own_pool)
    await import_csv(store, FILE.encode(), DIRECTOR)
    before = await own_pool.fetchrow("SELECT created_at, updated_at FROM customers WHERE id = 'C-2'")
    changed = FILE.replace("C-2,Acme Trading,regular,,", "C-2,Acme Trading Ltd,core,B,") + (
        "C-4,New Shop,assist,,r-sun,m-zhou,,,,,\n"
    )
    counts = await import_csv(store, changed.encode(), DIRECTOR)
    assert counts == UpsertCounts(added=1, updated=1, unchanged=2)
    c2 = await store.get("C-2")
    assert c2 is not None and (c2.name, c2.tier, c2.grade) == ("Acme Trading Ltd", "core", "B")
    after = await own_pool.fetchrow("SELECT created_at, updated_at FROM customers WHERE id = 'C-2'")
    assert after["created_at"] == before["created_at"] and after["updated_at"] > before["updated_at"]
    assert await import_csv(store, changed.encode(), DIRECTOR) == UpsertCounts(unchanged=4)


async def test_new_contacts_replace_the_stored_ones_and_rows_without_contacts_keep_them(own_pool):
    store = CustomerStore(own_pool)
    await import_csv(store, FILE.encode(), DIRECTOR)
    # A tiers-only file (no contact columns) must not wipe anyone's contacts.
    tiers_only = "id,name,tier,owner_rep_id,manager_id\nC-1,上海华联超市,potential,r-wang,m-li\n"
    assert await import_csv(store, tiers_only.encode(), DIRECTOR) == UpsertCounts(updated=1)
    c1 = await store.get("C-1")
    assert c1 is not None and c1.tier == "potential" and len(c1.contacts) == 2 and c1.grade is None
    one_contact = f"{HEADER}\nC-1,上海华联超市,potential,,r-wang,m-li,上海,赵敏,总经理,,\n"
    assert await import_csv(store, one_contact.encode(), DIRECTOR) == UpsertCounts(updated=1)
    c1 = await store.get("C-1")
    assert c1 is not None and c1.contacts == [Contact(name="赵敏", title="总经理")]


async def test_a_dry_run_counts_the_changes_and_writes_nothing(own_pool):
    store = CustomerStore(own_pool)
    assert await import_csv(store, FILE.encode(), DIRECTOR, dry_run=True) == UpsertCounts(added=3)
    assert await store.list() == []


async def test_concurrent_imports_of_the_same_file_add_each_customer_once(own_pool):
    store = CustomerStore(own_pool)
    first, second = await asyncio.gather(
        import_csv(store, FILE.encode(), DIRECTOR), import_csv(store, FILE.encode(), DIRECTOR)
    )
    assert sorted([first.added, second.added]) == [0, 3]
    assert sorted([first.unchanged, second.unchanged]) == [0, 3]


async def test_only_managers_and_directors_may_import(own_pool):
    store = CustomerStore(own_pool)
    for actor in (REP, AUDITOR):
        with pytest.raises(CommandRefused) as refused:
            await import_csv(store, FILE.encode(), actor)
        assert refused.value.rule == "customers.import"
        assert refused.value.message == (
            f"Only managers and directors may import customers; {actor.id} acts as {actor.role}."
        )
    assert await store.list() == []


async def test_a_manager_imports_only_the_customers_they_manage_and_loses_nothing_when_refused(own_pool):
    store = CustomerStore(own_pool)
    mine = "\n".join(FILE.splitlines()[:4]) + "\n"
    assert await import_csv(store, mine.encode(), MANAGER) == UpsertCounts(added=2)
    with pytest.raises(CustomerFileInvalid) as refused:
        await import_csv(store, FILE.encode(), MANAGER)
    assert [str(e) for e in refused.value.errors] == [
        "line 5, field manager_id: A manager imports only the customers they manage; m-li cannot load a "
        "customer managed by m-zhou."
    ]
    assert [r.id for r in await store.list()] == ["C-1", "C-2"]
    await import_csv(store, FILE.encode(), DIRECTOR)
    # Naming oneself as a colleague's customer's manager would unlock its contacts.
    taken = FILE.replace("r-sun,m-zhou", "r-sun,m-li")
    with pytest.raises(CustomerFileInvalid) as refused:
        await import_csv(store, taken.encode(), MANAGER)
    assert [str(e) for e in refused.value.errors] == [
        "line 5, field id: Customer C-3 is managed by m-zhou; only that manager or a director may change it."
    ]
    # Rows that change nothing pass: a manager may re-import a whole export.
    exported = await export_csv(store, MANAGER)
    assert await import_csv(store, exported.text.encode(), MANAGER) == UpsertCounts(unchanged=3)
    c3 = await store.get("C-3")
    assert c3 is not None and c3.manager_id == "m-zhou" and c3.contacts[0].name == "Wu Fang"


@pytest.mark.parametrize(
    ("actor", "sees"),
    [
        (REP, True),  # the owning rep
        (MANAGER, True),  # the owning rep's manager
        (DIRECTOR, True),
        (OTHER_REP, False),
        (OTHER_MANAGER, False),
        (AUDITOR, False),
    ],
)
async def test_contacts_are_shown_only_to_the_owning_rep_their_manager_and_directors(own_pool, actor, sees):
    store = CustomerStore(own_pool)
    await import_csv(store, FILE.encode(), DIRECTOR)
    shown = await show(store, "C-1", actor)
    assert (len(shown.contacts) == 2) is sees
    assert shown.model_copy(update={"contacts": []}) == visible(shown, AUDITOR)
    exported = await export_csv(store, actor, rep_id="r-wang")
    assert ("张伟" in exported.text) is sees
    assert (exported.customers, exported.contacts_withheld) == (2, 0 if sees else 2)


async def test_an_export_withholds_each_customers_contacts_by_its_own_owner(own_pool):
    store = CustomerStore(own_pool)
    await import_csv(store, FILE.encode(), DIRECTOR)
    exported = await export_csv(store, MANAGER)
    assert (exported.customers, exported.contacts_withheld) == (3, 1)
    by_id = {r.id: r for r in parse(exported.text).records}
    assert len(by_id["C-1"].contacts) == 2 and by_id["C-3"].contacts == []


async def test_auditors_may_read_customers_but_not_their_contacts(own_pool):
    role = await own_pool.fetchval("SELECT true FROM pg_roles WHERE rolname = 'visitflow_auditor'")
    if not role:
        pytest.skip("this server has no visitflow_auditor role (the migration could not create it)")
    privilege = "SELECT has_column_privilege('visitflow_auditor', 'customers', $1, 'SELECT')"
    assert await own_pool.fetchval(privilege, "name") is True
    assert await own_pool.fetchval(privilege, "manager_id") is True
    assert await own_pool.fetchval(privilege, "contacts") is False
