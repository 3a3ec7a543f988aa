"""Reading an uploaded CSV of transactions into rows, or refusing the whole file with the reason.

The file must be UTF-8 text (a byte-order mark is fine) whose first line names the columns: name, email,
visited_at, external_id, in any order and any case ("Visited At" and "visited-at" also mean visited_at).
email and visited_at are required; other columns are ignored but kept with the row. The delimiter may be a
comma, a semicolon or a tab (whichever the header line uses). A file-level problem refuses the whole file;
a problem in one row only rejects that row (portal.domain.features.ingestion decides).
"""
import csv
import io
import re
from typing import NamedTuple

from portal.domain.errors import ValidationFailed

COLUMNS = ("name", "email", "visited_at", "external_id")
REQUIRED = ("email", "visited_at")
DELIMITERS = (",", ";", "\t")
HEADER_HELP = "The first line must name the columns: name, email, visited_at, external_id (email and visited_at " \
              "are required)."
_BINARY_STARTS = {b"PK\x03\x04": "an Excel workbook or another zip file", b"\xd0\xcf\x11\xe0": "an old Excel file",
                  b"%PDF": "a PDF"}


class CsvRow(NamedTuple):
    """One data row: the line it starts on, the known columns' text, every cell by header, cells beyond the header."""

    line: int
    values: dict
    received: dict
    extra_cells: int


def _refuse(message):
    raise ValidationFailed({"file": message})


def _header_key(cell):
    return re.sub(r"[\s\-]+", "_", (cell or "").strip().lower())


def _decode(data):
    for start, what in _BINARY_STARTS.items():
        if data.startswith(start):
            _refuse(f"This file is {what}, not CSV. Save it as 'CSV UTF-8' and upload that file.")
    if b"\x00" in data:
        _refuse("This is a binary file, not CSV text. Save the sheet as 'CSV UTF-8' and upload that file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        _refuse(f"The file is not UTF-8 text (line {line} has a byte that isn't). Save it as 'CSV UTF-8' "
                "and upload it again.")


def _delimiter(first_line):
    """The delimiter that splits the header line into the most known column names."""
    def known(delimiter):
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        return sum(1 for cell in cells if _header_key(cell) in COLUMNS)

    return max(DELIMITERS, key=known)


def _columns(header):
    """Map each known column to its position, or refuse a header without the required ones."""
    positions = {}
    for position, cell in enumerate(header):
        key = _header_key(cell)
        if key in COLUMNS:
            if key in positions:
                _refuse(f"The column {key} appears twice in the header; keep one.")
            positions[key] = position
    if not positions:
        _refuse(f"No header found. {HEADER_HELP}")
    missing = [c for c in REQUIRED if c not in positions]
    if missing:
        _refuse(f"The header has no {' and no '.join(missing)} column. {HEADER_HELP}")
    return positions


def read_rows(data, max_rows):
    """Return the rows of an uploaded CSV, each a CsvRow (blank lines are skipped).

    Args:
        data: the file's bytes.
        max_rows: the most data rows a file may have.

    Raises:
        ValidationFailed(file): empty, binary, not UTF-8, not valid CSV, no header or no required column,
            no rows, or more than max_rows rows.
    """
    text = _decode(data or b"")
    if not text.strip():
        _refuse("The file is empty.")
    delimiter = _delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = []
    try:
        header = next(reader)
        columns = _columns(header)
        names = [cell.strip() or f"column {i + 1}" for i, cell in enumerate(header)]
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):  # blank lines are not rows
                if len(rows) >= max_rows:
                    _refuse(f"The file has more than {max_rows:,} rows; split it and upload each part.")
                values = {c: (cells[i] if i < len(cells) else "") for c, i in columns.items()}
                rows.append(CsvRow(line, values, dict(zip(names, cells)), max(0, len(cells) - len(header))))
            line = reader.line_num + 1
    except csv.Error as exc:
        _refuse(f"The file is not valid CSV near line {reader.line_num}: {exc}. Check the quotes on that line.")
    if not rows:
        _refuse("The file has a header but no rows.")
    return rows
