"""Customer CSV files: every problem is named with its line, column and a sentence; good files round-trip."""

import pytest

from domain.customer_csv import COLUMNS, FILE, ROW, RowError, parse, parse_bytes, to_csv
from domain.customers import Contact, CustomerGrade, CustomerRecord
from domain.models import CustomerTier

HEADER = ",".join(COLUMNS)


def csv_of(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def errors_of(text: str) -> list[tuple[int, str, str]]:
    parsed = parse(text)
    assert parsed.records == ()
    return [(e.line, e.field, e.reason) for e in parsed.errors]


def test_a_customer_with_two_contacts_takes_two_rows_with_the_same_fields():
    parsed = parse(
        csv_of(
            "C-1,上海华联超市,core,A,r-wang,m-li,上海,张伟,采购经理,021-6234 5678,zhang@hualian.cn",
            "C-1,上海华联超市,core,A,r-wang,m-li,上海,李娜,店长,138 0000 0000,",
            "C-2,Acme Trading,regular,,r-zhou,m-li,,,,,",
        )
    )
    assert parsed.ok
    first, second = parsed.records
    assert first == CustomerRecord(
        id="C-1",
        name="上海华联超市",
        tier=CustomerTier.core,
        grade=CustomerGrade.A,
        owner_rep_id="r-wang",
        manager_id="m-li",
        region="上海",
        contacts=[
            Contact(name="张伟", title="采购经理", phone="021-6234 5678", email="zhang@hualian.cn"),
            Contact(name="李娜", title="店长", phone="138 0000 0000"),
        ],
    )
    assert second.contacts == [] and second.grade is None and second.region == ""
    assert parsed.lines == {"C-1": 2, "C-2": 4}
    assert parsed.without_contacts == {"C-2"}


def test_columns_may_come_in_any_order_and_only_the_required_ones_must_be_there():
    parsed = parse("Manager_ID, id ,name,tier,owner_rep_id\nm-li,C-1,Acme,Potential,r-wang\n")
    assert parsed.ok
    (record,) = parsed.records
    assert (record.manager_id, record.tier, record.contacts) == ("m-li", CustomerTier.potential, [])


def test_excel_utf8_with_a_byte_order_mark_and_crlf_lines_is_read():
    text = csv_of("C-1,华联,core,b,r-wang,m-li,江苏,王芳,,,").replace("\n", "\r\n")
    parsed = parse_bytes(text.encode("utf-8-sig"))
    assert parsed.ok
    assert parsed.records[0].name == "华联" and parsed.records[0].grade is CustomerGrade.B
    assert parse(text.encode("utf-8-sig").decode("utf-8")).ok  # a BOM left in the text too


def test_blank_lines_are_skipped_and_lines_stay_physical():
    text = csv_of(
        "",
        "C-1,Acme,core,,r-wang,m-li,,,,,",
        "",
        '"C-2",Beta,core,,r-wang,m-li,"two',
        'lines",,,,',
        "C-3,,core,,r,m,,,,,",
    )
    assert errors_of(text) == [(7, "name", "Missing name: every customer needs one.")]


def test_an_empty_file_is_refused():
    reason = f"The file is empty; it needs a header line naming the columns ({', '.join(COLUMNS)})."
    for text in ("", "\ufeff", " \n\n", ",,,\n"):
        assert errors_of(text) == [(1, FILE, reason)]
    assert parse_bytes(b"\xef\xbb\xbf").errors == (RowError(line=1, field=FILE, reason=reason),)


def test_a_file_that_is_not_utf8_names_the_line_and_how_to_save_it():
    data = (HEADER + "\nC-1,华联超市,core,,r-wang,m-li,,,,,\n").encode("gbk")
    (error,) = parse_bytes(data).errors
    assert (error.line, error.field) == (2, FILE)
    assert error.reason.startswith("The file is not UTF-8 text (byte 0xbb on this line)")
    assert "CSV UTF-8" in error.reason


def test_unknown_missing_unnamed_and_repeated_columns_are_all_named_on_line_1():
    assert errors_of("id,name,tier,phone,name,,owner_rep_id\n") == [
        (1, "phone", f'Unknown column "phone": the columns are {", ".join(COLUMNS)}.'),
        (1, "name", 'Column "name" appears twice in the header (columns 2 and 5).'),
        (
            1,
            "column 6",
            f"Column 6 has no name; name it or delete it (the columns are {', '.join(COLUMNS)}).",
        ),
        (
            1,
            "manager_id",
            'Missing required column "manager_id": the header must name id, name, tier, owner_rep_id, '
            "manager_id.",
        ),
    ]


def test_a_semicolon_separated_file_is_told_to_use_commas():
    assert errors_of("id;name;tier;owner_rep_id;manager_id\nC-1;A;core;r;m\n") == [
        (
            1,
            FILE,
            "The header is a single column: the columns must be separated by commas, not semicolons or tabs.",
        )
    ]


def test_every_bad_value_of_every_row_is_reported_with_its_line_and_column():
    text = csv_of(
        "C-1,Acme,gold,E,r-wang,m-li,,,,,",
        ",Beta,core,,,m-li,,,,,",
        "C-3,Gamma,core,,r-wang,,,,Buyer,,x@y",
        "C-4,Delta,assist,,r-wang,m-li,,Zhao,,phone,zhao@delta.cn;li@delta.cn",
    )
    assert errors_of(text) == [
        (2, "tier", 'Unknown tier "gold": must be one of core, potential, regular, assist.'),
        (2, "grade", 'Unknown grade "E": must be one of A, B, C, D, or empty.'),
        (3, "id", "Missing id: every customer needs one."),
        (3, "owner_rep_id", "Missing owner_rep_id: every customer needs one."),
        (4, "manager_id", "Missing manager_id: every customer needs one."),
        (
            4,
            "contact_name",
            "Missing contact_name: a contact's title, phone or email needs the contact's name.",
        ),
        (4, "contact_email", 'Bad email "x@y": one address per contact, like name@example.com.'),
        (
            5,
            "contact_email",
            'Bad email "zhao@delta.cn;li@delta.cn": one address per contact, like name@example.com.',
        ),
        (5, "contact_phone", 'Bad phone "phone": a phone number needs digits.'),
    ]


def test_too_long_values_and_nul_characters_are_refused():
    text = csv_of(
        f"C-1,{'x' * 201},core,,r-wang,m-li,,Li,,{'1' * 51},", "C-2,B\x00eta,core,,r-wang,m-li,,,,,"
    )
    assert errors_of(text) == [
        (2, "name", "This value is 201 characters long; at most 200 fit."),
        (2, "contact_phone", "This value is 51 characters long; at most 50 fit."),
        (3, "name", "This value holds a NUL character, which cannot be stored."),
    ]


def test_a_row_with_the_wrong_number_of_values_is_refused():
    text = csv_of("C-1,Acme, Ltd,core,,r-wang,m-li,,,,,", "C-2,Beta,core")
    quote = "a value holding a comma must be in double quotes."
    assert errors_of(text) == [
        (2, ROW, f"This row has 12 values but the header names 11 columns; {quote}"),
        (3, ROW, f"This row has 3 values but the header names 11 columns; {quote}"),
    ]


def test_an_unclosed_quote_is_reported_where_its_value_starts():
    text = csv_of(
        "C-1,Acme,core,,r-wang,m-li,,,,,", 'C-2,"Beta,core,,r-wang,m-li,,,,,', "C-3,Gamma,core,,r,m,,,,,"
    )
    ((line, field, reason),) = errors_of(text)
    assert (line, field) == (3, ROW)
    assert reason.startswith(
        "This line cannot be read as CSV (unexpected end of data): a value in double quotes"
    )


def test_a_repeated_id_must_repeat_the_customer_fields_and_add_a_new_contact():
    text = csv_of(
        "C-1,Acme,core,A,r-wang,m-li,East,Li,,,",
        "C-1,Acme Ltd,CORE,a,r-wang,m-zhou,East,Wu,,,",
        "C-1,Acme,core,A,r-wang,m-li,East,,,,",
        "C-1,Acme,core,A,r-wang,m-li,East,Li,,,",
    )
    assert errors_of(text) == [
        (
            3,
            "name",
            'Duplicate id "C-1" with a different name than on line 2 ("Acme" there, "Acme Ltd" here); '
            "the rows of one customer repeat its fields and add one contact each.",
        ),
        (
            3,
            "manager_id",
            'Duplicate id "C-1" with a different manager_id than on line 2 ("m-li" there, "m-zhou" here); '
            "the rows of one customer repeat its fields and add one contact each.",
        ),
        (
            4,
            "contact_name",
            'Duplicate id "C-1" (first on line 2) without a contact; each further row of a customer adds one '
            "contact.",
        ),
        (5, "contact_name", 'The same contact of customer "C-1" is already on line 2.'),
    ]


def test_a_customer_takes_at_most_20_contacts():
    rows = [f"C-1,Acme,core,,r-wang,m-li,,Person {n},,," for n in range(21)]
    assert errors_of(csv_of(*rows)) == [
        (22, "contact_name", 'Customer "C-1" has more than 20 contacts; keep at most 20.')
    ]


RECORDS = [
    CustomerRecord(
        id="C-1",
        name='Acme, "the" trading co.',
        tier=CustomerTier.core,
        grade=CustomerGrade.A,
        owner_rep_id="r-wang",
        manager_id="m-li",
        region="上海\n浦东",
        contacts=[
            Contact(name="张伟", title="采购经理", phone="+86 21 6234 5678", email="zhang@acme.cn"),
            Contact(name="Li Na"),
        ],
    ),
    CustomerRecord(
        id="C-2", name="帮扶小店", tier=CustomerTier.assist, owner_rep_id="r-zhou", manager_id="m-li"
    ),
]


def test_to_csv_then_parse_gives_the_same_records():
    text = to_csv(RECORDS, with_contacts=True)
    assert text.splitlines()[0] == HEADER
    parsed = parse(text)
    assert parsed.ok and list(parsed.records) == RECORDS
    assert parsed.without_contacts == {"C-2"}


def test_to_csv_without_contacts_writes_one_row_per_customer_with_empty_contact_columns():
    text = to_csv(RECORDS, with_contacts=False)
    parsed = parse(text)
    assert [r.contacts for r in parsed.records] == [[], []]
    assert parsed.without_contacts == {"C-1", "C-2"}
    assert [r.model_copy(update={"contacts": []}) for r in RECORDS] == list(parsed.records)
    assert "张伟" not in text


@pytest.mark.parametrize("tier", ["core", "Potential", " REGULAR ", "assist"])
def test_tiers_are_read_in_any_case(tier):
    parsed = parse(csv_of(f"C-1,Acme,{tier},,r-wang,m-li,,,,,"))
    assert parsed.records[0].tier == tier.strip().lower()


def test_a_row_error_prints_as_line_field_reason():
    assert str(RowError(line=3, field="tier", reason="Unknown tier.")) == "line 3, field tier: Unknown tier."
