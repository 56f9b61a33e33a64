"""The directory of people as CSV: parse a file into people (or every problem in it), write one.

One row per person. The header names the columns, in any order; only `REQUIRED_COLUMNS`
must be there, and a column left out is empty on every row (its default: active, email,
Chinese, no quiet hours, no absence). A row whose contact columns (`CONTACT_FIELDS`) are all
empty keeps the contact details stored for that person, so an export with confidential
details left out can be imported back without wiping them. Dates are `YYYY-MM-DD` (Excel's
`YYYY/M/D` too), times `HH:MM`, `active` yes/no, true/false, 1/0 or 是/否. The file's own
problems are found here; what it would break in the directory as a whole (a manager who is
not there, a loop in the tree) is `domain.people.directory_problems`, checked at import.
Pure: text or bytes in, people or `RowError`s out.
"""

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time

from pydantic import ValidationError

from domain.actors import Role
from domain.csv_files import EMAIL, RowError, by_line, decode, read_table, shown, storable_errors
from domain.csv_files import FILE as FILE  # re-exported: callers name a problem's field by these
from domain.csv_files import ROW as ROW
from domain.people import CONTACT_FIELDS, Channel, Language, Person

COLUMNS = (
    "id",
    "name_zh",
    "name_en",
    "role",
    "manager_id",
    "active",
    "email",
    "mobile",
    "dingtalk_id",
    "wecom_id",
    "channel",
    "language",
    "quiet_from",
    "quiet_to",
    "away_from",
    "away_to",
    "deputy_id",
)
"""Every column, in the order `to_csv` writes them."""

REQUIRED_COLUMNS = ("id", "role")

MAX_LENGTH = {"email": 320, "mobile": 50}
"""Longest values a person takes; any other column takes up to `DEFAULT_MAX_LENGTH`."""

DEFAULT_MAX_LENGTH = 200

ROLES = (Role.rep, Role.manager, Role.director, Role.auditor)
"""The roles a person of the directory may have (`system` is the engine itself)."""

_ACTIVE = {
    "yes": True,
    "true": True,
    "1": True,
    "是": True,
    "no": False,
    "false": False,
    "0": False,
    "否": False,
}
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::00)?")
_DATE = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})")


@dataclass(frozen=True)
class ParsedPeople:
    """What a file holds: its people, or every problem found (and then no people)."""

    people: tuple[Person, ...] = ()
    errors: tuple[RowError, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)
    """Person id → the line of their row."""
    without_contacts: frozenset[str] = frozenset()
    """Ids of the people whose rows carry no contact detail (an import leaves theirs be)."""

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_bytes(data: bytes) -> ParsedPeople:
    """Parse a file's bytes: UTF-8 with or without the byte-order mark Excel writes."""
    text = decode(data)
    if isinstance(text, RowError):
        return ParsedPeople(errors=(text,))
    return parse(text)


def parse(text: str) -> ParsedPeople:
    """Parse CSV text into people, or report every problem with its line and column."""
    table = read_table(text, COLUMNS, REQUIRED_COLUMNS)
    rows = _Rows()
    for line, values in table.rows:
        rows.read(line, values)
    if table.errors or rows.errors:
        return ParsedPeople(errors=by_line([*table.errors, *rows.errors]))
    return ParsedPeople(
        people=tuple(rows.people),
        lines=dict(rows.lines),
        without_contacts=frozenset(rows.without_contacts),
    )


def _one_of(words: Iterable[str]) -> str:
    return ", ".join(words)


class _Rows:
    """Reads each row into a person, noting every problem of every row."""

    def __init__(self) -> None:
        self.errors: list[RowError] = []
        self.people: list[Person] = []
        self.lines: dict[str, int] = {}
        self.without_contacts: set[str] = set()

    def error(self, line: int, column: str, reason: str) -> None:
        self.errors.append(RowError(line=line, field=column, reason=reason))

    def read(self, line: int, values: dict[str, str]) -> None:
        before = len(self.errors)
        for column in REQUIRED_COLUMNS:
            if not values[column]:
                self.error(line, column, f"Missing {column}: every person needs one.")
        self.errors += storable_errors(line, values, MAX_LENGTH, DEFAULT_MAX_LENGTH)
        if not values["name_zh"] and not values["name_en"]:
            self.error(line, "name_zh", "Missing name: every person needs name_zh or name_en (or both).")
        person_id = values["id"]
        role = self.choice(line, values, "role", [r.value for r in ROLES], None)
        if person_id and values["manager_id"] == person_id:
            self.error(line, "manager_id", "A person cannot be their own manager.")
        active = self.active(line, values["active"])
        self.check_contacts(line, values)
        channel = self.choice(line, values, "channel", [c.value for c in Channel], Channel.email)
        language = self.choice(line, values, "language", [lang.value for lang in Language], Language.zh)
        quiet = self.quiet_hours(line, values)
        away = self.absence(line, values)
        if person_id and values["deputy_id"] == person_id:
            self.error(line, "deputy_id", "A person cannot be their own deputy.")
        if person_id in self.lines:
            first = self.lines[person_id]
            reason = f"Duplicate id {shown(person_id)} (first on line {first}): one row per person."
            self.error(line, "id", reason)
        elif person_id:
            self.lines[person_id] = line
        if len(self.errors) > before:
            return
        fields = {
            **{column: values[column] for column in ("id", "name_zh", "name_en", *CONTACT_FIELDS)},
            "role": role,
            "manager_id": values["manager_id"] or None,
            "active": active,
            "channel": channel,
            "language": language,
            "deputy_id": values["deputy_id"] or None,
            **quiet,
            **away,
        }
        try:
            person = Person.model_validate(fields)
        except ValidationError as err:
            # A backstop: the checks above should have named every problem already.
            for problem in err.errors(include_url=False):
                column = ".".join(str(p) for p in problem["loc"]) or ROW
                self.error(line, column, f"{problem['msg']}.")
            return
        self.people.append(person)
        if not any(values[column] for column in CONTACT_FIELDS):
            self.without_contacts.add(person_id)

    def choice(
        self, line: int, values: dict[str, str], column: str, allowed: list[str], default: str | None
    ) -> str | None:
        """The column's value in lower case when it is one of `allowed`; `default` when empty."""
        value = values[column]
        if not value:
            return default
        if value.lower() not in allowed:
            self.error(line, column, f"Unknown {column} {shown(value)}: must be one of {_one_of(allowed)}.")
            return default
        return value.lower()

    def active(self, line: int, value: str) -> bool:
        if not value:
            return True
        if value.lower() not in _ACTIVE:
            self.error(
                line,
                "active",
                f"Bad active {shown(value)}: write yes or no (true/false, 1/0 and 是/否 work too).",
            )
            return True
        return _ACTIVE[value.lower()]

    def check_contacts(self, line: int, values: dict[str, str]) -> None:
        email, mobile = values["email"], values["mobile"]
        if email and not EMAIL.fullmatch(email):
            self.error(line, "email", f"Bad email {shown(email)}: one address, like name@example.com.")
        if mobile and not any(ch.isdigit() for ch in mobile):
            self.error(line, "mobile", f"Bad mobile {shown(mobile)}: a phone number needs digits.")

    def clock_time(self, line: int, column: str, value: str) -> time | None:
        found = _TIME.fullmatch(value)
        if found is not None and int(found[1]) < 24 and int(found[2]) < 60:
            return time(int(found[1]), int(found[2]))
        self.error(
            line, column, f"Bad time {shown(value)}: write it as HH:MM on the 24-hour clock, like 22:00."
        )
        return None

    def day(self, line: int, column: str, value: str) -> date | None:
        found = _DATE.fullmatch(value)
        if found is not None:
            try:
                return date(int(found[1]), int(found[2]), int(found[3]))
            except ValueError:
                pass
        self.error(line, column, f"Bad date {shown(value)}: write it as YYYY-MM-DD, like 2026-06-01.")
        return None

    def pair(self, line: int, values: dict[str, str], first: str, second: str, what: str) -> bool:
        """Whether both or neither of two columns are given; names the missing one otherwise."""
        if bool(values[first]) == bool(values[second]):
            return True
        missing = second if values[first] else first
        self.error(line, missing, f"Missing {missing}: {what} both {first} and {second}, or neither.")
        return False

    def quiet_hours(self, line: int, values: dict[str, str]) -> dict[str, time | None]:
        start = self.clock_time(line, "quiet_from", values["quiet_from"]) if values["quiet_from"] else None
        end = self.clock_time(line, "quiet_to", values["quiet_to"]) if values["quiet_to"] else None
        if self.pair(line, values, "quiet_from", "quiet_to", "quiet hours take") and start is not None:
            if start == end:
                reason = f"Quiet hours start and end at {start:%H:%M}; leave both empty for no quiet hours."
                self.error(line, "quiet_to", reason)
        return {"quiet_from": start, "quiet_to": end}

    def absence(self, line: int, values: dict[str, str]) -> dict[str, date | None]:
        start = self.day(line, "away_from", values["away_from"]) if values["away_from"] else None
        end = self.day(line, "away_to", values["away_to"]) if values["away_to"] else None
        if self.pair(line, values, "away_from", "away_to", "an absence takes") and start is not None:
            if end is not None and end < start:
                self.error(line, "away_to", f"away_to {end} is before away_from {start}.")
            if not values["deputy_id"]:
                reason = "Missing deputy_id: an absence names the deputy who stands in meanwhile."
                self.error(line, "deputy_id", reason)
        return {"away_from": start, "away_to": end}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def to_csv(people: Iterable[Person]) -> str:
    """The people as CSV text that `parse` reads back: every column, one row per person."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for person in people:
        writer.writerow([_cell(getattr(person, column)) for column in COLUMNS])
    return out.getvalue()
