"""`visits customers`, run as a manager, a director and a rep would, against a real PostgreSQL."""

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.customers import CustomerStore
from domain.customer_csv import COLUMNS, parse
from settings import Settings
from starter.cli import app
from starter.cli.common import CliContext

pytestmark = pytest.mark.store

HEADER = ",".join(COLUMNS)
FILE = f"""{HEADER}
C-1,上海华联超市,core,A,r-wang,m-li,上海,张伟,采购经理,021-6234 5678,zhang@hualian.cn
C-1,上海华联超市,core,A,r-wang,m-li,上海,李娜,店长,138 0000 0000,
C-2,Acme Trading,regular,,r-wang,m-li,,,,,
C-3,Zhou's Store,potential,C,r-sun,m-zhou,江苏,Wu Fang,,139 1111 2222,wu@store.cn
"""


async def visits(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=CliContext(settings=settings))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str, name: str = "customers.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8-sig"))  # as Excel saves "CSV UTF-8"
    return str(path)


async def test_import_prints_the_counts_and_a_second_import_updates(own_database, own_pool, tmp_path):
    path = write(tmp_path, FILE)
    code, out, err = await visits(
        own_database, tmp_path, "customers", "import", path, "--as", "director:d-zhao"
    )
    assert code == 0, err
    assert out == f"Imported {path}: 3 added, 0 updated, 0 unchanged.\n"
    path = write(tmp_path, FILE.replace("Acme Trading,regular", "Acme Trading,core"))
    code, out, err = await visits(
        own_database, tmp_path, "customers", "import", path, "--as", "manager:m-zhou"
    )
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "line 4, field id: Customer C-2 is managed by m-li; only that manager or a director may change it.",
        f"Nothing was loaded: 1 problem(s) in {path}.",
    ]
    code, out, err = await visits(own_database, tmp_path, "customers", "import", path, "--as", "manager:m-li")
    assert code == 0, err
    assert out == f"Imported {path}: 0 added, 1 updated, 2 unchanged.\n"


async def test_import_with_errors_prints_every_one_and_loads_nothing(own_database, own_pool, tmp_path):
    bad = FILE + "C-4,,gold,,r-wang,m-li,,,,,x@y\n"
    path = write(tmp_path, bad)
    code, out, err = await visits(own_database, tmp_path, "customers", "import", path, "--as", "manager:m-li")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "line 6, field name: Missing name: every customer needs one.",
        'line 6, field tier: Unknown tier "gold": must be one of core, potential, regular, assist.',
        "line 6, field contact_name: Missing contact_name: a contact's title, phone or email needs the "
        "contact's name.",
        'line 6, field contact_email: Bad email "x@y": one address per contact, like name@example.com.',
        f"Nothing was loaded: 4 problem(s) in {path}.",
    ]
    assert await CustomerStore(own_pool).list() == []


async def test_import_dry_run_checks_against_the_registry_and_loads_nothing(own_database, own_pool, tmp_path):
    path = write(tmp_path, FILE)
    code, out, err = await visits(
        own_database, tmp_path, "customers", "import", path, "--as", "director:d-zhao", "--dry-run"
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"{path} is valid: 3 would be added, 0 would be updated, 0 unchanged. Nothing was loaded (--dry-run)."
    ]
    assert await CustomerStore(own_pool).list() == []


async def test_reps_and_auditors_may_not_import(own_database, own_pool, tmp_path):
    path = write(tmp_path, FILE)
    for actor, message in [
        ("rep:r-wang", "Only managers and directors may import customers; r-wang acts as rep."),
        ("auditor:a-qian", "Only managers and directors may import customers; a-qian acts as auditor."),
    ]:
        code, out, err = await visits(own_database, tmp_path, "customers", "import", path, "--as", actor)
        assert (code, out) == (1, "")
        assert err == f"refused (customers.import): {message}\n"
    assert await CustomerStore(own_pool).list() == []


async def test_export_gives_contacts_only_of_the_customers_the_actor_may_see(own_database, tmp_path):
    await visits(
        own_database, tmp_path, "customers", "import", write(tmp_path, FILE), "--as", "director:d-zhao"
    )
    code, out, err = await visits(own_database, tmp_path, "customers", "export", "--as", "manager:m-li")
    assert code == 0, err
    by_id = {r.id: r for r in parse(out).records}
    assert [c.name for c in by_id["C-1"].contacts] == ["张伟", "李娜"] and by_id["C-3"].contacts == []
    assert err == (
        "Contact columns left empty for 1 of 3 customer(s): contacts are shown only to the owning rep, "
        "the rep's manager and directors.\n"
    )
    code, out, err = await visits(
        own_database, tmp_path, "customers", "export", "-", "--as", "director:d-zhao"
    )
    assert code == 0 and err == "" and "Wu Fang" in out


async def test_export_to_a_file_writes_excel_utf8_and_never_overwrites_by_accident(own_database, tmp_path):
    await visits(
        own_database, tmp_path, "customers", "import", write(tmp_path, FILE), "--as", "director:d-zhao"
    )
    target = tmp_path / "out.csv"
    args = ("customers", "export", str(target), "--as", "rep:r-wang", "--rep", "r-wang")
    code, out, err = await visits(own_database, tmp_path, *args)
    assert code == 0, err
    assert out == f"Exported 2 customer(s) to {target}.\n" and err == ""
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "张伟".encode() in data
    code, _, err = await visits(own_database, tmp_path, *args)
    assert code == 2 and err == f"{target} exists; name another file, or add --force to replace it.\n"
    code, _, err = await visits(own_database, tmp_path, *args, "--as", "rep:r-sun", "--force")
    assert code == 0, err
    assert "张伟" not in target.read_text(encoding="utf-8-sig")
    assert err.startswith("Contact columns left empty for 2 of 2 customer(s)")


@pytest.mark.parametrize(
    ("actor", "sees"),
    [
        ("rep:r-wang", True),
        ("manager:m-li", True),
        ("director:d-zhao", True),
        ("rep:r-sun", False),
        ("manager:m-zhou", False),
        ("auditor:a-qian", False),
    ],
)
async def test_show_prints_contacts_or_confidential_by_role(own_database, tmp_path, actor, sees):
    await visits(
        own_database, tmp_path, "customers", "import", write(tmp_path, FILE), "--as", "director:d-zhao"
    )
    code, out, err = await visits(own_database, tmp_path, "customers", "show", "C-1", "--as", actor)
    assert code == 0, err
    assert out.splitlines()[:4] == [
        "Customer C-1: 上海华联超市",
        "  Tier      core (grade A)",
        "  Owner     rep r-wang · manager m-li",
        "  Region    上海",
    ]
    if sees:
        assert out.splitlines()[4:] == [
            "  Contacts  张伟, 采购经理, 021-6234 5678, zhang@hualian.cn",
            "            李娜, 店长, 138 0000 0000",
        ]
    else:
        assert out.splitlines()[4:] == ["  Contacts  (confidential)"]
    code, out, _ = await visits(own_database, tmp_path, "customers", "show", "C-1", "--as", actor, "--json")
    body = json.loads(out)
    assert body["contacts_confidential"] is not sees and (len(body["contacts"]) == 2) is sees


async def test_list_filters_and_never_prints_contacts(own_database, tmp_path):
    await visits(
        own_database, tmp_path, "customers", "import", write(tmp_path, FILE), "--as", "director:d-zhao"
    )
    code, out, err = await visits(own_database, tmp_path, "customers", "list", "--rep", "r-wang", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert [c["id"] for c in body] == ["C-1", "C-2"] and all("contacts" not in c for c in body)
    code, out, _ = await visits(
        own_database, tmp_path, "customers", "list", "--manager", "m-zhou", "--tier", "potential"
    )
    assert code == 0 and "Zhou's Store" in out and "C-1" not in out and "Wu Fang" not in out
    code, out, _ = await visits(own_database, tmp_path, "customers", "list", "--tier", "assist")
    assert (code, out) == (0, "No customers match.\n")
    odd = f"{HEADER}\nC-9,Shop [/b] & [red]Co,assist,,r-wang,m-li,,,,,\n"
    await visits(own_database, tmp_path, "customers", "import", write(tmp_path, odd), "--as", "manager:m-li")
    code, out, _ = await visits(own_database, tmp_path, "customers", "list", "--tier", "assist")
    assert code == 0 and "Shop [/b] & [red]Co" in out  # the name as typed, not read as markup


async def test_customer_input_errors_are_one_line(own_database, tmp_path):
    missing = str(tmp_path / "nope.csv")
    cases = [
        (("customers", "import", write(tmp_path, FILE)), 2, "say who imports: --as ROLE:ID"),
        (("customers", "import", missing, "--as", "manager:m-li"), 2, f"cannot read {missing}"),
        (("customers", "export", "--as", "boss"), 2, "--as takes ROLE:ID"),
        (("customers", "export", "--as", "boss:b"), 2, "invalid Actor: role: Input should be"),
        (("customers", "show", "C-404", "--as", "director:d-zhao"), 1, "There is no customer C-404."),
        (("customers", "list", "--tier", "gold"), 2, "'gold' is not one of"),
    ]
    for args, code, message in cases:
        ran = await visits(own_database, tmp_path, *args)
        assert ran[0] == code, (args, ran)
        assert message in ran[2], (args, ran[2])
        if code == 1 or "--tier" not in args:
            assert len(ran[2].strip().splitlines()) == 1, ran[2]
