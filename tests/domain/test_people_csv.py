"""People CSV files: every problem is named with its line, column and a sentence; good files round-trip."""

from datetime import date, time

import pytest

from domain.actors import Role
from domain.people import Channel, Language, Person
from domain.people_csv import COLUMNS, FILE, ROW, parse, parse_bytes, to_csv

HEADER = ",".join(COLUMNS)


def csv_of(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def errors_of(text: str) -> list[tuple[int, str, str]]:
    parsed = parse(text)
    assert parsed.people == ()
    return [(e.line, e.field, e.reason) for e in parsed.errors]


DIRECTOR = "d-zhao,赵强,Zhao Qiang,director,,yes,zhao@corp.cn,139 0000 0001,,,email,zh,,,,,"
MANAGER = (
    "m-li,李明,Li Ming,manager,d-zhao,yes,li@corp.cn,,ding-li,,dingtalk,zh,"
    "22:00,07:00,2026-06-01,2026-06-10,d-zhao"
)
REP = "r-wang,王芳,,rep,m-li,,,,,,,,,,,,"


def test_each_row_is_one_person_with_chinese_names_and_every_field():
    parsed = parse(csv_of(DIRECTOR, MANAGER, REP))
    assert parsed.ok
    director, manager, rep = parsed.people
    assert manager == Person(
        id="m-li",
        name_zh="李明",
        name_en="Li Ming",
        role=Role.manager,
        manager_id="d-zhao",
        email="li@corp.cn",
        dingtalk_id="ding-li",
        channel=Channel.dingtalk,
        language=Language.zh,
        quiet_from=time(22, 0),
        quiet_to=time(7, 0),
        away_from=date(2026, 6, 1),
        away_to=date(2026, 6, 10),
        deputy_id="d-zhao",
    )
    assert (director.manager_id, director.mobile, director.display_name) == (
        None,
        "139 0000 0001",
        "赵强 (Zhao Qiang)",
    )
    # Empty cells take the defaults: active, reached by email, in Chinese.
    assert rep == Person(id="r-wang", name_zh="王芳", role=Role.rep, manager_id="m-li")
    assert parsed.lines == {"d-zhao": 2, "m-li": 3, "r-wang": 4}
    assert parsed.without_contacts == {"r-wang"}


def test_columns_may_come_in_any_order_and_only_id_and_role_must_be_there():
    parsed = parse("Role, ID ,name_en,manager_id\nREP,r-wang,Wang Fang,m-li\nDirector,d-zhao,Zhao,\n")
    assert parsed.ok
    rep, director = parsed.people
    assert (rep.id, rep.role, rep.name_en, rep.manager_id) == ("r-wang", Role.rep, "Wang Fang", "m-li")
    assert director.role is Role.director and director.manager_id is None
    assert parsed.without_contacts == {"r-wang", "d-zhao"}


def test_excel_utf8_with_a_byte_order_mark_crlf_lines_and_excels_dates_and_times_is_read():
    row = "m-li,李明,,manager,,是,,,,,WeCom,EN,7:00,9:30:00,2026/6/1,2026/6/10,d-zhao"
    text = csv_of(DIRECTOR, row).replace("\n", "\r\n")
    parsed = parse_bytes(text.encode("utf-8-sig"))
    assert parsed.ok, parsed.errors
    manager = parsed.people[1]
    assert (manager.name_zh, manager.channel, manager.language) == ("李明", Channel.wecom, Language.en)
    assert (manager.quiet_from, manager.quiet_to) == (time(7, 0), time(9, 30))
    assert (manager.away_from, manager.away_to) == (date(2026, 6, 1), date(2026, 6, 10))
    assert parse(text.encode("utf-8-sig").decode("utf-8")).ok  # a BOM left in the text too


@pytest.mark.parametrize(
    ("cell", "active"),
    [("", True), ("yes", True), ("TRUE", True), ("1", True), ("是", True), ("No", False), ("false", False),
     ("0", False), ("否", False)],
)  # fmt: skip
def test_active_is_yes_or_no_in_several_spellings(cell, active):
    parsed = parse(f"id,name_zh,role,manager_id,active\nr-wang,王芳,rep,m-li,{cell}\n")
    assert parsed.people[0].active is active


def test_a_file_that_is_not_utf8_names_the_line_and_how_to_save_it():
    data = csv_of(DIRECTOR, REP).encode("gbk")
    (error,) = parse_bytes(data).errors
    assert (error.line, error.field) == (2, FILE)
    assert error.reason.startswith("The file is not UTF-8 text (byte 0xd5 on this line)")
    assert "CSV UTF-8" in error.reason


def test_an_empty_file_and_a_bad_header_are_refused_on_line_1():
    reason = f"The file is empty; it needs a header line naming the columns ({', '.join(COLUMNS)})."
    assert errors_of("\ufeff") == [(1, FILE, reason)]
    assert errors_of("id,name,email,email\n") == [
        (1, "name", f'Unknown column "name": the columns are {", ".join(COLUMNS)}.'),
        (1, "email", 'Column "email" appears twice in the header (columns 3 and 4).'),
        (1, "role", 'Missing required column "role": the header must name id, role.'),
    ]


def test_every_bad_value_of_every_row_is_reported_with_its_line_and_column():
    text = csv_of(
        DIRECTOR,
        ",,,boss,,maybe,x@y,phone,,,fax,fr,,,,,",
        "m-li,李明,,manager,m-li,,li@corp.cn;wu@corp.cn,,,,,,25:00,7:60,2026-02-30,2026-6-1x,m-li",
        "r-wang,王芳,,rep,m-li,,,,,,,,22:00,,,2026-06-10,",
        "r-sun,孙丽,,rep,m-li,,,,,,,,08:00,8:00,2026-06-10,2026-06-01,",
    )
    assert errors_of(text) == [
        (3, "id", "Missing id: every person needs one."),
        (3, "name_zh", "Missing name: every person needs name_zh or name_en (or both)."),
        (3, "role", 'Unknown role "boss": must be one of rep, manager, director, auditor.'),
        (3, "active", 'Bad active "maybe": write yes or no (true/false, 1/0 and 是/否 work too).'),
        (3, "email", 'Bad email "x@y": one address, like name@example.com.'),
        (3, "mobile", 'Bad mobile "phone": a phone number needs digits.'),
        (3, "channel", 'Unknown channel "fax": must be one of email, dingtalk, wecom, webhook.'),
        (3, "language", 'Unknown language "fr": must be one of zh, en.'),
        (4, "manager_id", "A person cannot be their own manager."),
        (4, "email", 'Bad email "li@corp.cn;wu@corp.cn": one address, like name@example.com.'),
        (4, "quiet_from", 'Bad time "25:00": write it as HH:MM on the 24-hour clock, like 22:00.'),
        (4, "quiet_to", 'Bad time "7:60": write it as HH:MM on the 24-hour clock, like 22:00.'),
        (4, "away_from", 'Bad date "2026-02-30": write it as YYYY-MM-DD, like 2026-06-01.'),
        (4, "away_to", 'Bad date "2026-6-1x": write it as YYYY-MM-DD, like 2026-06-01.'),
        (4, "deputy_id", "A person cannot be their own deputy."),
        (5, "quiet_to", "Missing quiet_to: quiet hours take both quiet_from and quiet_to, or neither."),
        (5, "away_from", "Missing away_from: an absence takes both away_from and away_to, or neither."),
        (6, "quiet_to", "Quiet hours start and end at 08:00; leave both empty for no quiet hours."),
        (6, "away_to", "away_to 2026-06-01 is before away_from 2026-06-10."),
        (6, "deputy_id", "Missing deputy_id: an absence names the deputy who stands in meanwhile."),
    ]


def test_a_person_takes_one_row():
    assert errors_of(csv_of(DIRECTOR, REP, REP.replace("王芳", "王芳芳"))) == [
        (4, "id", 'Duplicate id "r-wang" (first on line 3): one row per person.')
    ]


def test_too_long_values_nul_characters_and_rows_of_the_wrong_width_are_refused():
    text = csv_of(
        f"r-wang,{'王' * 201},,rep,m-li,,,{'1' * 51},,,,,,,,,",
        "r-sun,孙\x00丽,,rep,m-li,,,,,,,,,,,,",
        "r-ma,Ma, Lin,,rep,m-li,,,,,,,,,,,,",
    )
    assert errors_of(text) == [
        (2, "name_zh", "This value is 201 characters long; at most 200 fit."),
        (2, "mobile", "This value is 51 characters long; at most 50 fit."),
        (3, "name_zh", "This value holds a NUL character, which cannot be stored."),
        (
            4,
            ROW,
            "This row has 18 values but the header names 17 columns; a value holding a comma must be in "
            "double quotes.",
        ),
    ]


def test_an_unclosed_quote_is_reported_where_its_value_starts():
    ((line, field, reason),) = errors_of(csv_of(DIRECTOR, 'r-wang,"王芳,,rep,m-li,,,,,,,,,,,,', REP))
    assert (line, field) == (3, ROW)
    assert reason.startswith("This line cannot be read as CSV (unexpected end of data)")


PEOPLE = [
    Person(
        id="m-li",
        name_zh="李明",
        name_en='Li "Ming", Jr.',
        role=Role.manager,
        manager_id="d-zhao",
        active=False,
        email="li@corp.cn",
        mobile="+86 138 0000 0000",
        dingtalk_id="ding-li",
        wecom_id="wecom-li",
        channel=Channel.webhook,
        language=Language.en,
        quiet_from=time(22, 30),
        quiet_to=time(6, 45),
        away_from=date(2026, 6, 1),
        away_to=date(2026, 6, 1),
        deputy_id="d-zhao",
    ),
    Person(id="d-zhao", name_zh="赵强", role=Role.director),
    Person(id="a-qian", name_en="Qian", role=Role.auditor, manager_id="d-zhao"),
]


def test_to_csv_then_parse_gives_the_same_people():
    text = to_csv(PEOPLE)
    assert text.splitlines()[0] == HEADER
    assert text.splitlines()[2] == "d-zhao,赵强,,director,,yes,,,,,email,zh,,,,,"
    parsed = parse(text)
    assert parsed.ok and list(parsed.people) == PEOPLE
    assert parsed.without_contacts == {"d-zhao", "a-qian"}
