"""Reading registry files as CSV: what the customer and people files share.

A file is UTF-8 (with or without the byte-order mark Excel writes), a header line naming the
columns in any order, then one record per row. Every problem is a `RowError` with the file's
physical line (the header is line 1; a quoted value spanning lines counts every line), the
column (or `FILE`/`ROW`) and a sentence. Each file kind checks its own values; this module
reads the rows and checks what does not depend on the kind: encoding, quoting, the header,
the number of values, NUL characters and lengths. Pure: text or bytes in, rows or errors out.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

# `RowError.field` of a problem with the whole file, or with a whole row.
FILE = "(file)"
ROW = "(row)"

EXCEL_UTF8 = 'in Excel, save it as "CSV UTF-8 (Comma delimited)" / "CSV UTF-8(逗号分隔)"'
"""How to save a file this module reads, said to whoever sent another encoding."""

EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
"""One email address (a loose check: an @, a dot after it, no spaces or list separators)."""


class RowError(BaseModel):
    """One problem of a file: its physical line, the column (or `FILE`/`ROW`) and a sentence."""

    model_config = ConfigDict(frozen=True)

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field}: {self.reason}"


def shown(value: str) -> str:
    """`value` quoted for a sentence, so a blank or a stray space is visible; cut when long."""
    short = value if len(value) <= 40 else value[:39] + "…"
    return f'"{short}"'


def count(number: int, noun: str) -> str:
    """`1 value`, `3 values`."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def by_line(errors: Iterable[RowError]) -> tuple[RowError, ...]:
    """`errors` in line order; the problems of one line keep the order they were found in."""
    return tuple(sorted(errors, key=lambda e: e.line))


def decode(data: bytes) -> str | RowError:
    """A file's bytes as text (UTF-8, Excel's byte-order mark dropped), or the line that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        return RowError(
            line=line,
            field=FILE,
            reason=f"The file is not UTF-8 text (byte 0x{data[err.start]:02x} on this line); {EXCEL_UTF8}.",
        )


@dataclass(frozen=True)
class Table:
    """The rows of a file under its header, and the problems met while reading them.

    Each row is (its first physical line, column → stripped value), every column of the kind
    present (empty when the header leaves it out). A row with the wrong number of values is
    not among them; its problem is. When the header is bad, no row is read at all.
    """

    rows: tuple[tuple[int, dict[str, str]], ...] = ()
    errors: tuple[RowError, ...] = ()


def read_table(text: str, columns: Sequence[str], required: Sequence[str]) -> Table:
    """Read CSV `text` whose header names some of `columns` (all of `required`), in any order."""
    text = text.removeprefix("\ufeff")
    records = _records(text)
    try:
        first = next(records, None)
    except _Unreadable as err:
        return Table(errors=(err.error,))
    if first is None:
        reason = f"The file is empty; it needs a header line naming the columns ({', '.join(columns)})."
        return Table(errors=(RowError(line=1, field=FILE, reason=reason),))
    header_line, header = first
    names = [cell.strip().lower() for cell in header]
    header_errors = _header_errors(header_line, names, columns, required)
    if header_errors:
        return Table(errors=tuple(header_errors))
    rows: list[tuple[int, dict[str, str]]] = []
    errors: list[RowError] = []
    try:
        for line, cells in records:
            if len(cells) != len(names):
                errors.append(
                    RowError(
                        line=line,
                        field=ROW,
                        reason=f"This row has {count(len(cells), 'value')} but the header names "
                        f"{len(names)} columns; a value holding a comma must be in double quotes.",
                    )
                )
                continue
            values = {name: cell.strip() for name, cell in zip(names, cells, strict=True)}
            rows.append((line, {column: values.get(column, "") for column in columns}))
    except _Unreadable as err:
        errors.append(err.error)
    return Table(rows=tuple(rows), errors=tuple(errors))


def storable_errors(
    line: int, values: Mapping[str, str], max_length: Mapping[str, int], default_max_length: int
) -> list[RowError]:
    """NUL characters and values longer than their column takes (`max_length`, else the default)."""
    errors: list[RowError] = []
    for column, value in values.items():
        limit = max_length.get(column, default_max_length)
        if "\x00" in value:
            reason = "This value holds a NUL character, which cannot be stored."
            errors.append(RowError(line=line, field=column, reason=reason))
        elif len(value) > limit:
            errors.append(
                RowError(
                    line=line,
                    field=column,
                    reason=f"This value is {len(value)} characters long; at most {limit} fit.",
                )
            )
    return errors


class _Unreadable(Exception):
    def __init__(self, error: RowError) -> None:
        super().__init__(error.reason)
        self.error = error


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) of each record that is not blank."""
    # newline="" keeps quoted line breaks inside their value and counts \r\n as one line.
    # strict: a stray or unclosed quote is reported here rather than read as some other value.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            reason = (
                f"This line cannot be read as CSV ({err}): a value in double quotes must end with a "
                'double quote, and a double quote inside it is written twice ("").'
            )
            raise _Unreadable(RowError(line=line, field=ROW, reason=reason)) from None
        if any(cell.strip() for cell in cells):
            yield line, cells


def _header_errors(
    line: int, names: list[str], columns: Sequence[str], required: Sequence[str]
) -> list[RowError]:
    if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
        return [
            RowError(
                line=line,
                field=FILE,
                reason="The header is a single column: the columns must be separated by commas, "
                "not semicolons or tabs.",
            )
        ]
    every = ", ".join(columns)
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if not name:
            errors.append(
                RowError(
                    line=line,
                    field=f"column {number}",
                    reason=f"Column {number} has no name; name it or delete it (the columns are {every}).",
                )
            )
        elif name not in columns:
            reason = f"Unknown column {shown(name)}: the columns are {every}."
            errors.append(RowError(line=line, field=name, reason=reason))
        elif name in seen:
            errors.append(
                RowError(
                    line=line,
                    field=name,
                    reason=f"Column {shown(name)} appears twice in the header (columns {seen[name]} "
                    f"and {number}).",
                )
            )
        else:
            seen[name] = number
    for name in required:
        if name not in seen:
            errors.append(
                RowError(
                    line=line,
                    field=name,
                    reason=f"Missing required column {shown(name)}: the header must name "
                    f"{', '.join(required)}.",
                )
            )
    return errors
