"""`visits people`, run as a director, a manager and a rep would, against a real PostgreSQL."""

import asyncio
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activities.people import PeopleStore
from domain.people_csv import COLUMNS, parse
from settings import Settings
from starter.cli import app
from starter.cli.common import CliContext

pytestmark = pytest.mark.store

HEADER = ",".join(COLUMNS)
FILE = f"""{HEADER}
d-zhao,赵强,Zhao Qiang,director,,yes,zhao@corp.cn,139 0000 0001,,,email,zh,,,,,
d-qian,钱芳,,director,,yes,qian@corp.cn,,,,email,zh,,,,,
m-li,李明,Li Ming,manager,d-zhao,yes,li@corp.cn,,ding-li,,dingtalk,zh,22:00,07:00,2026-06-01,2026-06-10,m-zhou
m-zhou,周杰,,manager,d-qian,yes,zhou@corp.cn,,,,email,zh,,,,,
r-wang,王芳,Wang Fang,rep,m-li,yes,wang@corp.cn,138 0000 0000,,,email,zh,,,,,
r-sun,孙丽,,rep,m-zhou,yes,,,,,wecom,en,,,,,
r-old,老张,,rep,m-li,no,,,,,email,zh,,,,,
"""


async def visits(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "data")
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), obj=CliContext(settings=settings))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str, name: str = "people.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8-sig"))  # as Excel saves "CSV UTF-8"
    return str(path)


async def load(database_url: str, tmp_path: Path) -> None:
    code, _, err = await visits(
        database_url, tmp_path, "people", "import", write(tmp_path, FILE), "--as", "director:d-zhao"
    )
    assert code == 0, err


async def test_import_prints_the_counts_and_a_manager_is_held_to_their_team(own_database, tmp_path):
    path = write(tmp_path, FILE)
    code, out, err = await visits(own_database, tmp_path, "people", "import", path, "--as", "director:d-zhao")
    assert code == 0, err
    assert out == f"Imported {path}: 7 added, 0 updated, 0 unchanged.\n"
    path = write(tmp_path, FILE.replace("r-sun,孙丽,,rep,m-zhou,yes", "r-sun,孙丽,,rep,m-zhou,no"))
    code, out, err = await visits(own_database, tmp_path, "people", "import", path, "--as", "manager:m-li")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "line 7, field id: r-sun is not in m-li's team; only their managers up the tree or a director may "
        "change them.",
        f"Nothing was loaded: 1 problem(s) in {path}.",
    ]
    code, out, err = await visits(own_database, tmp_path, "people", "import", path, "--as", "manager:m-zhou")
    assert code == 0, err
    assert out == f"Imported {path}: 0 added, 1 updated, 6 unchanged.\n"


async def test_import_with_errors_prints_every_one_and_loads_nothing(own_database, own_pool, tmp_path):
    bad = FILE + "r-ma,,,rep,m-li,,ma@corp,,,,fax,,,,2026-07-01,,\n" + "r-mb,马博,,rep,m-ghost,,,,,,,,,,,,\n"
    path = write(tmp_path, bad)
    code, out, err = await visits(own_database, tmp_path, "people", "import", path, "--as", "director:d-zhao")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "line 9, field name_zh: Missing name: every person needs name_zh or name_en (or both).",
        'line 9, field email: Bad email "ma@corp": one address, like name@example.com.',
        'line 9, field channel: Unknown channel "fax": must be one of email, dingtalk, wecom, webhook.',
        "line 9, field away_to: Missing away_to: an absence takes both away_from and away_to, or neither.",
        f"Nothing was loaded: 4 problem(s) in {path}.",
    ]
    # Once the file is clean, the checks against the directory speak.
    path = write(tmp_path, FILE + "r-mb,马博,,rep,m-ghost,,,,,,,,,,,,\n")
    code, out, err = await visits(own_database, tmp_path, "people", "import", path, "--as", "director:d-zhao")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "line 9, field manager_id: The manager m-ghost is not in the directory: add them in this file, or "
        "import them first.",
        f"Nothing was loaded: 1 problem(s) in {path}.",
    ]
    assert await PeopleStore(own_pool).list() == []


async def test_import_dry_run_checks_against_the_directory_and_loads_nothing(
    own_database, own_pool, tmp_path
):
    path = write(tmp_path, FILE)
    code, out, err = await visits(
        own_database, tmp_path, "people", "import", path, "--as", "director:d-zhao", "--dry-run"
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"{path} is valid: 7 would be added, 0 would be updated, 0 unchanged. Nothing was loaded (--dry-run)."
    ]
    assert await PeopleStore(own_pool).list() == []


async def test_reps_and_auditors_may_not_import(own_database, own_pool, tmp_path):
    path = write(tmp_path, FILE)
    for actor, message in [
        ("rep:r-wang", "Only managers and directors may import people; r-wang acts as rep."),
        ("auditor:a-qian", "Only managers and directors may import people; a-qian acts as auditor."),
    ]:
        code, out, err = await visits(own_database, tmp_path, "people", "import", path, "--as", actor)
        assert (code, out) == (1, "")
        assert err == f"refused (people.import): {message}\n"
    assert await PeopleStore(own_pool).list() == []


async def test_export_gives_contact_details_only_of_the_people_the_actor_may_see(own_database, tmp_path):
    await load(own_database, tmp_path)
    code, out, err = await visits(own_database, tmp_path, "people", "export", "--as", "manager:m-li")
    assert code == 0, err
    by_id = {p.id: p for p in parse(out).people}
    assert by_id["r-wang"].email == "wang@corp.cn" and by_id["m-zhou"].email == ""
    assert err == (
        "Contact columns left empty for 4 of 7 person(s): contact details are shown only to the person, "
        "their managers and directors. Importing the file back keeps the stored ones.\n"
    )
    code, out, err = await visits(own_database, tmp_path, "people", "export", "-", "--as", "director:d-qian")
    assert code == 0 and err == "" and "zhou@corp.cn" in out
    code, out, err = await visits(own_database, tmp_path, "people", "export")
    assert code == 0 and "@corp.cn" not in out and "for 7 of 7 person(s)" in err


async def test_export_to_a_file_writes_excel_utf8_and_reimports_unchanged(own_database, tmp_path):
    await load(own_database, tmp_path)
    target = tmp_path / "out.csv"
    args = ("people", "export", str(target), "--as", "manager:m-li")
    code, out, err = await visits(own_database, tmp_path, *args)
    assert code == 0, err
    assert out == f"Exported 7 person(s) to {target}.\n"
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "李明".encode() in data
    code, _, err = await visits(own_database, tmp_path, *args)
    assert code == 2 and err == f"{target} exists; name another file, or add --force to replace it.\n"
    code, out, err = await visits(
        own_database, tmp_path, "people", "import", str(target), "--as", "manager:m-li"
    )
    assert code == 0, err
    assert out == f"Imported {target}: 0 added, 0 updated, 7 unchanged.\n"


async def test_show_prints_the_person_their_tree_their_deputy_and_whom_notifications_reach(
    own_database, tmp_path
):
    await load(own_database, tmp_path)
    code, out, err = await visits(
        own_database, tmp_path, "people", "show", "m-li", "--as", "manager:m-li", "--on", "2026-06-03"
    )
    assert code == 0, err
    assert out.splitlines() == [
        "Person m-li: 李明 (Li Ming)",
        "  Role       manager, active",
        "  Managers   d-zhao 赵强 (Zhao Qiang)",
        "  Team       r-old 老张, r-wang 王芳 (Wang Fang); 2 in all",
        "  Contacts   email li@corp.cn · DingTalk ding-li",
        "  Channel    dingtalk, in zh",
        "  Quiet      22:00–07:00",
        "  Away       2026-06-01 to 2026-06-10; deputy m-zhou 周杰",
        "  Notified   on 2026-06-03: m-zhou 周杰",
        "             m-li is away 2026-06-01 to 2026-06-10; deputy m-zhou stands in",
    ]
    code, out, err = await visits(own_database, tmp_path, "people", "show", "m-li", "--on", "2026-06-11")
    assert code == 0, err
    assert "  Contacts   (confidential)" in out.splitlines()
    assert out.splitlines()[-1] == "  Notified   on 2026-06-11: m-li 李明 (Li Ming)"
    code, out, err = await visits(own_database, tmp_path, "people", "show", "m-zhou")
    assert code == 0, err
    assert "  Deputy for m-li 李明 (Li Ming), away 2026-06-01 to 2026-06-10" in out.splitlines()
    code, out, _ = await visits(own_database, tmp_path, "people", "show", "r-sun", "--as", "rep:r-sun")
    assert (
        "  Contacts   (none)" in out
        and "  Channel    wecom, in en (no wecom address: their notifications cannot be delivered)" in out
    )
    code, out, _ = await visits(own_database, tmp_path, "people", "show", "r-old", "--on", "2026-06-03")
    assert out.splitlines()[-1] == "  Notified   on 2026-06-03: nobody (r-old is no longer active)"


@pytest.mark.parametrize(
    ("actor", "sees"),
    [("rep:r-wang", True), ("manager:m-li", True), ("director:d-qian", True), ("manager:m-zhou", False),
     ("rep:r-sun", False), ("auditor:a-qian", False)],
)  # fmt: skip
async def test_show_json_gives_contact_details_or_confidential_by_viewer(own_database, tmp_path, actor, sees):
    await load(own_database, tmp_path)
    code, out, err = await visits(
        own_database, tmp_path, "people", "show", "r-wang", "--as", actor, "--on", "2026-06-03", "--json"
    )
    assert code == 0, err
    body = json.loads(out)
    assert body["contacts_confidential"] is not sees and (body["email"] == "wang@corp.cn") is sees
    assert (body["managers"], body["team"], body["team_size"]) == (["m-li", "d-zhao"], [], 0)
    assert body["notified"] == {"on": "2026-06-03", "person_ids": ["r-wang"], "steps": [], "problem": None}


async def test_list_filters_and_never_prints_contact_details(own_database, tmp_path):
    await load(own_database, tmp_path)
    code, out, err = await visits(own_database, tmp_path, "people", "list", "--manager", "m-li", "--json")
    assert code == 0, err
    body = json.loads(out)
    assert [p["id"] for p in body] == ["r-old", "r-wang"] and all("email" not in p for p in body)
    code, out, _ = await visits(own_database, tmp_path, "people", "list", "--role", "director")
    assert code == 0 and "赵强 (Zhao Qiang)" in out and "m-li" not in out and "@corp.cn" not in out
    code, out, _ = await visits(own_database, tmp_path, "people", "list", "--inactive", "--json")
    assert [p["id"] for p in json.loads(out)] == ["r-old"]
    code, out, _ = await visits(own_database, tmp_path, "people", "list", "--role", "auditor")
    assert (code, out) == (0, "No people match.\n")


async def test_people_input_errors_are_one_line(own_database, tmp_path):
    missing = str(tmp_path / "nope.csv")
    cases = [
        (("people", "import", write(tmp_path, FILE)), 2, "say who imports: --as ROLE:ID"),
        (("people", "import", missing, "--as", "manager:m-li"), 2, f"cannot read {missing}"),
        (("people", "export", "--as", "boss"), 2, "--as takes ROLE:ID"),
        (("people", "show", "m-li", "--as", "boss:b"), 2, "invalid Actor: role: Input should be"),
        (("people", "show", "m-li", "--on", "2026-13-01"), 2, "--on takes a date as YYYY-MM-DD"),
        (("people", "show", "x-404"), 1, "There is no person x-404 in the directory."),
    ]
    for args, code, message in cases:
        ran = await visits(own_database, tmp_path, *args)
        assert ran[0] == code, (args, ran)
        assert message in ran[2], (args, ran[2])
        assert len(ran[2].strip().splitlines()) == 1, ran[2]


async def test_the_people_page_example_file_commands_and_output_are_real(own_database, tmp_path, monkeypatch):
    page = (Path(__file__).resolve().parent.parent / "docs" / "people.md").read_text(encoding="utf-8")
    example, shown = re.findall(r"```text\n(.*?)```", page, flags=re.DOTALL)
    (commands,) = re.findall(r"```bash\n(.*?)```", page, flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "people.csv").write_bytes(example.encode("utf-8-sig"))  # as Excel saves it
    for line in commands.splitlines():
        args = shlex.split(line, comments=True)
        assert args[:2] == ["visits", "people"], line
        code, out, err = await visits(own_database, tmp_path, *args[1:])
        assert code == 0, (line, out, err)
    command, *expected = shown.splitlines()
    code, out, err = await visits(own_database, tmp_path, *shlex.split(command.removeprefix("$ visits ")))
    assert code == 0, err
    assert out.splitlines() == expected
