"""The customer registry as CSV: parse a file into records (or every problem in it), write one.

One row per contact: a customer with several contacts takes several rows with the same id
and the same customer fields, each row adding one contact; a customer without contacts takes
one row with the contact columns empty. The header names the columns, in any order; only
`REQUIRED_COLUMNS` must be there. Line numbers are the file's physical lines (the header is
line 1, a quoted value spanning lines counts every line). Pure: text or bytes in, records
or `RowError`s out.
"""

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from domain.csv_files import EMAIL, RowError, by_line, decode, read_table, shown, storable_errors
from domain.csv_files import FILE as FILE  # re-exported: callers name a problem's field by these
from domain.csv_files import ROW as ROW
from domain.customers import Contact, CustomerGrade, CustomerRecord
from domain.models import CustomerTier

COLUMNS = (
    "id",
    "name",
    "tier",
    "grade",
    "owner_rep_id",
    "manager_id",
    "region",
    "contact_name",
    "contact_title",
    "contact_phone",
    "contact_email",
)
"""Every column, in the order `to_csv` writes them."""

REQUIRED_COLUMNS = ("id", "name", "tier", "owner_rep_id", "manager_id")

CUSTOMER_COLUMNS = ("name", "tier", "grade", "owner_rep_id", "manager_id", "region")
"""The columns every row of one customer repeats."""

CONTACT_COLUMNS = {
    "contact_name": "name",
    "contact_title": "title",
    "contact_phone": "phone",
    "contact_email": "email",
}
"""Contact columns and the `Contact` field each fills."""

MAX_LENGTH = {"contact_phone": 50, "contact_email": 320}
"""Longest values the records accept; any other column takes up to `DEFAULT_MAX_LENGTH`."""

DEFAULT_MAX_LENGTH = 200

MAX_CONTACTS = 20

_TIERS = ", ".join(t.value for t in CustomerTier)
_GRADES = ", ".join(g.value for g in CustomerGrade)


@dataclass(frozen=True)
class ParsedCustomers:
    """What a file holds: its records, or every problem found (and then no records)."""

    records: tuple[CustomerRecord, ...] = ()
    errors: tuple[RowError, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)
    """Customer id → the line of its first row."""
    without_contacts: frozenset[str] = frozenset()
    """Ids of the customers whose rows carry no contact (an import leaves their contacts be)."""

    @property
    def ok(self) -> bool:
        return not self.errors


def _failed(*errors: RowError) -> ParsedCustomers:
    return ParsedCustomers(errors=by_line(errors))


def parse_bytes(data: bytes) -> ParsedCustomers:
    """Parse a file's bytes: UTF-8 with or without the byte-order mark Excel writes."""
    text = decode(data)
    if isinstance(text, RowError):
        return _failed(text)
    return parse(text)


def parse(text: str) -> ParsedCustomers:
    """Parse CSV text into customer records, or report every problem with its line and column."""
    table = read_table(text, COLUMNS, REQUIRED_COLUMNS)
    collector = _Collector()
    for line, values in table.rows:
        collector.row(line, values)
    if table.errors or collector.errors:
        return _failed(*table.errors, *collector.errors)
    return collector.records()


@dataclass
class _Customer:
    line: int
    fields: dict[str, str]
    contacts: list[tuple[int, dict[str, str]]] = field(default_factory=list)


class _Collector:
    """Reads the rows after the header, grouping rows by customer id and noting every problem."""

    def __init__(self) -> None:
        self.errors: list[RowError] = []
        self.customers: dict[str, _Customer] = {}

    def error(self, line: int, column: str, reason: str) -> None:
        self.errors.append(RowError(line=line, field=column, reason=reason))

    def row(self, line: int, values: dict[str, str]) -> None:
        self.check_values(line, values)
        customer_fields = {c: _normalised(c, values[c]) for c in CUSTOMER_COLUMNS}
        contact = {c: values[c] for c in CONTACT_COLUMNS}
        customer_id = values["id"]
        if not customer_id:
            return
        first = self.customers.get(customer_id)
        if first is None:
            first = self.customers[customer_id] = _Customer(line, customer_fields)
        else:
            self.check_repeat(line, customer_id, first, customer_fields, contact)
        if any(contact.values()):
            first.contacts.append((line, contact))

    def check_values(self, line: int, values: dict[str, str]) -> None:
        for column in REQUIRED_COLUMNS:
            if not values[column]:
                self.error(line, column, f"Missing {column}: every customer needs one.")
        self.errors += storable_errors(line, values, MAX_LENGTH, DEFAULT_MAX_LENGTH)
        tier, grade = values["tier"], values["grade"]
        if tier and tier.lower() not in CustomerTier.__members__:
            self.error(line, "tier", f"Unknown tier {shown(tier)}: must be one of {_TIERS}.")
        if grade and grade.upper() not in CustomerGrade.__members__:
            self.error(line, "grade", f"Unknown grade {shown(grade)}: must be one of {_GRADES}, or empty.")
        self.check_contact(line, values)

    def check_contact(self, line: int, values: dict[str, str]) -> None:
        email, phone = values["contact_email"], values["contact_phone"]
        if not values["contact_name"] and (values["contact_title"] or phone or email):
            self.error(
                line,
                "contact_name",
                "Missing contact_name: a contact's title, phone or email needs the contact's name.",
            )
        if email and not EMAIL.match(email):
            self.error(
                line,
                "contact_email",
                f"Bad email {shown(email)}: one address per contact, like name@example.com.",
            )
        if phone and not any(ch.isdigit() for ch in phone):
            self.error(line, "contact_phone", f"Bad phone {shown(phone)}: a phone number needs digits.")

    def check_repeat(
        self,
        line: int,
        customer_id: str,
        first: _Customer,
        customer_fields: dict[str, str],
        contact: dict[str, str],
    ) -> None:
        for column in CUSTOMER_COLUMNS:
            there, here = first.fields[column], customer_fields[column]
            if there != here:
                self.error(
                    line,
                    column,
                    f"Duplicate id {shown(customer_id)} with a different {column} than on line "
                    f"{first.line} ({shown(there)} there, {shown(here)} here); the rows of one "
                    "customer repeat its fields and add one contact each.",
                )
        if not any(contact.values()):
            self.error(
                line,
                "contact_name",
                f"Duplicate id {shown(customer_id)} (first on line {first.line}) without a contact; "
                "each further row of a customer adds one contact.",
            )
            return
        for earlier, known in first.contacts:
            if known == contact:
                self.error(
                    line,
                    "contact_name",
                    f"The same contact of customer {shown(customer_id)} is already on line {earlier}.",
                )
                return
        if len(first.contacts) >= MAX_CONTACTS:
            self.error(
                line,
                "contact_name",
                f"Customer {shown(customer_id)} has more than {MAX_CONTACTS} contacts; keep at most "
                f"{MAX_CONTACTS}.",
            )

    def records(self) -> ParsedCustomers:
        records: list[CustomerRecord] = []
        for customer_id, customer in self.customers.items():
            try:
                records.append(_record(customer_id, customer))
            except ValidationError as err:
                # A backstop: the checks above should have named every problem already.
                for problem in err.errors(include_url=False):
                    column = ".".join(str(p) for p in problem["loc"]) or ROW
                    self.error(customer.line, column, f"{problem['msg']}.")
        if self.errors:
            return _failed(*self.errors)
        return ParsedCustomers(
            records=tuple(records),
            lines={customer_id: c.line for customer_id, c in self.customers.items()},
            without_contacts=frozenset(i for i, c in self.customers.items() if not c.contacts),
        )


def _normalised(column: str, value: str) -> str:
    # Tiers and grades are compared and stored in one spelling whatever the case typed.
    if column == "tier":
        return value.lower()
    if column == "grade":
        return value.upper()
    return value


def _record(customer_id: str, customer: _Customer) -> CustomerRecord:
    f = customer.fields
    contacts = [
        Contact(**{CONTACT_COLUMNS[column]: value for column, value in contact.items()})
        for _, contact in customer.contacts
    ]
    return CustomerRecord(
        id=customer_id,
        name=f["name"],
        tier=CustomerTier(f["tier"]),
        grade=CustomerGrade(f["grade"]) if f["grade"] else None,
        owner_rep_id=f["owner_rep_id"],
        manager_id=f["manager_id"],
        region=f["region"],
        contacts=contacts,
    )


def to_csv(records: Iterable[CustomerRecord], *, with_contacts: bool) -> str:
    """The records as CSV text that `parse` reads back: every column, one row per contact.

    Without contacts (or for a customer that has none) each customer is one row whose contact
    columns are empty; importing such a row leaves the stored contacts as they are.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in records:
        customer = [r.id, r.name, r.tier.value, r.grade.value if r.grade else "", r.owner_rep_id]
        customer += [r.manager_id, r.region]
        contacts = [[c.name, c.title, c.phone, c.email] for c in r.contacts] if with_contacts else []
        for contact in contacts or [["", "", "", ""]]:
            writer.writerow(customer + contact)
    return out.getvalue()
