"""Importing the team's old spreadsheet (.xlsx or .csv): preview every row, then create them in one transaction.

Columns may come in any order and their headers are matched loosely ("Date of Cancellation", "date",
"Cancellation date" all mean the date). A row names its account by an account number column, or else by
the account's exact name or contact phone. Each created request keeps a digest of its values
(import_key), so importing the same file twice creates nothing new.
"""
import csv
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.domain import audit
from portal.domain.cancellations import fields
from portal.domain.cancellations.choices import CHANNELS, OUTCOMES, REASON_CODES
from portal.domain.dunning.account_state import day_of, moment_of
from portal.domain.errors import Conflict, ValidationFailed
from portal.domain.gate import require
from portal.domain.parsing import InvalidValue, whole_number
from portal.extensions import db
from portal.models import Account, CancellationRequest

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
HEADER_SEARCH_ROWS = 10
# Normalised header -> column; a header also matches when it starts with one of these.
HEADERS = {
    "account": ("accountnumber", "accountno", "account", "acct", "number"),
    "name": ("name", "contactname", "contact", "customername", "customer", "client"),
    "phone": ("phone", "phonenumber", "telephone", "tel", "mobile", "cell"),
    "date": ("dateofcancellation", "cancellationdate", "datecancelled", "requestdate", "date"),
    "collected": ("totalamountcollected", "amountcollected", "totalcollected", "collected", "total", "amount"),
    "months": ("monthsinprogram", "monthsinprogramme", "monthsintheprogram", "months", "tenure"),
    "reason": ("reasonforcancellation", "cancellationreason", "reason", "why"),
    "channel": ("channel", "via", "source"),
    "outcome": ("outcome", "result", "status"),
}
REQUIRED = ("name", "date")
KEYWORDS = (("competitor", "competitor"), ("expensive", "too_expensive"), ("price", "too_expensive"),
            ("cost", "too_expensive"), ("not using", "not_using"), ("not use", "not_using"),
            ("feature", "missing_feature"), ("service", "service_problem"), ("support", "service_problem"),
            ("pause", "temporary_pause"), ("season", "temporary_pause"))
_US_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})", re.ASCII)


@dataclass
class ImportPlan:
    """What an upload holds: rows to create (with their row number), rows refused, rows already imported."""

    creates: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # (row number, message)
    duplicates: list = field(default_factory=list)  # row numbers already imported (or repeated in the file)
    columns: dict = field(default_factory=dict)  # column -> header as written
    created: int = 0


def _refuse(message):
    raise ValidationFailed({"file": message})


def _norm(text):
    return re.sub(r"[^a-z0-9]", "", str(text or "").lower())


def _xlsx_rows(data):
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a damaged or foreign file
        _refuse("This file is not a spreadsheet the portal can read: upload the sheet as .xlsx or .csv.")
    sheet = book.worksheets[0] if book.worksheets else None
    rows = [list(row) for row in sheet.iter_rows(values_only=True)] if sheet is not None else []
    book.close()
    return rows


def _csv_rows(data):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            _refuse("This file is not a spreadsheet the portal can read: upload the sheet as .xlsx or .csv.")
    if "\x00" in text:
        _refuse("This file is not a spreadsheet the portal can read: upload the sheet as .xlsx or .csv.")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        return [row for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error:
        _refuse("This file is not a spreadsheet the portal can read: upload the sheet as .xlsx or .csv.")


def read_sheet(filename, data):
    """Return the rows of an uploaded sheet as lists of cell values.

    Raises:
        ValidationFailed(file): empty, over 5 MB, not .xlsx or .csv, or unreadable.
    """
    name = (filename or "").lower()
    if not data:
        _refuse("The file is empty.")
    if len(data) > MAX_BYTES:
        _refuse(f"The file is over 5 MB ({len(data) / 1024 / 1024:.1f} MB). Split it and upload each part.")
    if name.endswith(".xlsx"):
        if not zipfile.is_zipfile(io.BytesIO(data)):
            _refuse("This file is not a spreadsheet the portal can read: upload the sheet as .xlsx or .csv.")
        rows = _xlsx_rows(data)
    elif name.endswith(".csv") or name.endswith(".txt"):
        rows = _csv_rows(data)
    else:
        _refuse("Upload the sheet as .xlsx or .csv.")
    rows = [row for row in rows if any(str(v).strip() for v in row if v is not None)]
    if not rows:
        _refuse("The file is empty.")
    if len(rows) > MAX_ROWS + 1:
        _refuse(f"The sheet has more than {MAX_ROWS:,} rows; split it and upload each part.")
    return rows


def _match_header(cell):
    text = _norm(cell)
    if not text:
        return None
    for column, names in HEADERS.items():
        if text in names:
            return column
    for column, names in HEADERS.items():
        if any(text.startswith(n) for n in names if len(n) > 3):
            return column
    return None


def find_header(rows):
    """Return (row index, {column: cell index}) of the header row, or refuse the file."""
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        columns = {}
        for position, cell in enumerate(row):
            column = _match_header(cell)
            if column and column not in columns:
                columns[column] = position
        if all(c in columns for c in REQUIRED) and len(columns) >= 3:
            return index, columns
    _refuse("No recognisable header: the first row should name the columns, such as Name, Phone, Date of "
            "cancellation, Total amount collected, Months in program, Reason (and Account number).")


def _cell_text(value):
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _date(value, today):
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        text = _cell_text(value)
        match = _US_DATE.fullmatch(text)
        if match:
            try:
                month, day = whole_number(match.group(1), 1, 12), whole_number(match.group(2), 1, 31)
                value = date(whole_number(match.group(3), 1900, 2200), month, day)
            except (InvalidValue, ValueError):
                raise InvalidValue(f"bad date {text[:30]!r} (use YYYY-MM-DD or MM/DD/YYYY)") from None
        else:
            try:
                value = fields.request_day(text[:10] if len(text) > 10 and text[10:11] in " T" else text, today)
            except InvalidValue:
                raise InvalidValue(f"bad date {text[:30]!r} (use YYYY-MM-DD or MM/DD/YYYY)") from None
    if value > today:
        raise InvalidValue(f"the date {value.isoformat()} is in the future")
    return value


def _amount(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = f"{value:.2f}"
    text = _cell_text(value)
    try:
        return fields.collected_cents(text)
    except InvalidValue:
        raise InvalidValue(f"bad amount {text[:30]!r}") from None


def _months(value):
    text = _cell_text(value)
    try:
        return fields.months(text)
    except InvalidValue:
        raise InvalidValue(f"bad month count {text[:30]!r}") from None


def reason_code_for(text):
    """Guess the reason from the sheet's free text (a code or label as written, else keywords, else other)."""
    lowered = (text or "").lower()
    for code, name in REASON_CODES.items():
        if lowered.strip() in (code, name.lower()):
            return code
    return next((code for word, code in KEYWORDS if word in lowered), "other")


def _account_for(values, accounts_by_number):
    number = values.get("account", "").upper()
    if number:
        found = accounts_by_number.get(number) or db.session.scalar(select(Account).where(Account.number == number))
        if found is None:
            raise InvalidValue(f"unknown account {number[:30]!r}")
        return found
    name = values.get("name", "")
    matches = list(db.session.scalars(select(Account).where(func.lower(Account.name) == name.lower()).limit(2)))
    if not matches and values.get("phone"):
        matches = list(db.session.scalars(select(Account).where(Account.contact_phone == values["phone"]).limit(2)))
    if len(matches) != 1:
        which = "several accounts match" if matches else "unknown account"
        raise InvalidValue(f"{which} {name[:60]!r}: add an Account number column")
    return matches[0]


def _read_row(row, columns, today, cache):
    raw = {c: (row[i] if i < len(row) else None) for c, i in columns.items()}
    values = {c: _cell_text(v) for c, v in raw.items()}
    name = values.get("name", "")
    if not name:
        raise InvalidValue("no contact name")
    if len(name) > fields.NAME_MAX:
        raise InvalidValue(f"the name is over {fields.NAME_MAX} characters")
    try:
        values["phone"] = fields.normal_phone(values.get("phone"))
    except InvalidValue:
        raise InvalidValue(f"bad phone number {values.get('phone', '')[:30]!r}") from None
    account = _account_for(values, cache)
    reason = values.get("reason", "")[:fields.REASON_MAX]
    channel = values.get("channel", "").lower()
    outcome = values.get("outcome", "").lower()
    return {"account": account, "contact_name": name, "phone": values["phone"],
            "request_date": _date(raw.get("date"), today), "collected": _amount(raw.get("collected")),
            "months": _months(raw.get("months")), "reason": reason, "reason_code": reason_code_for(reason),
            "channel": channel if channel in CHANNELS else "call",
            "outcome": outcome if outcome in OUTCOMES else "open"}


def _key(v):
    parts = (v["account"].id, v["request_date"].isoformat(), v["contact_name"].lower(), v["phone"] or "",
             v["collected"], v["months"], v["reason"].lower())
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def plan_import(filename, data, as_of=None):
    """Read an upload and say what importing it would do; nothing is written.

    Returns:
        ImportPlan: creates (row, values, key), problems (row number, message), duplicates (row numbers).

    Raises:
        ValidationFailed(file): not a spreadsheet, empty, over 5 MB, or no recognisable header.
    """
    rows = read_sheet(filename, data)
    header_index, columns = find_header(rows)
    plan = ImportPlan(columns={c: _cell_text(rows[header_index][i]) for c, i in columns.items()})
    today, seen, cache = day_of(as_of), set(), {}
    for offset, row in enumerate(rows[header_index + 1:], header_index + 2):
        try:
            values = _read_row(row, columns, today, cache)
        except InvalidValue as exc:
            plan.problems.append((offset, exc.message))
            continue
        key = _key(values)
        if key in seen:
            plan.duplicates.append(offset)
            continue
        seen.add(key)
        plan.creates.append((offset, values, key))
    if seen:
        existing = set(db.session.scalars(select(CancellationRequest.import_key)
                                          .where(CancellationRequest.import_key.in_(seen))))
        plan.duplicates += [row for row, _v, key in plan.creates if key in existing]
        plan.creates = [c for c in plan.creates if c[2] not in existing]
    plan.duplicates.sort()
    return plan


def run_import(actor, filename, data, as_of=None):
    """Import the rows an upload can create, in one transaction (audited once per account touched).

    Rows that cannot be created are left out (the preview lists them); rows already imported are
    skipped, so importing the same file twice creates nothing new.

    Returns:
        ImportPlan with `created` set.

    Raises:
        PermissionDenied (the actor may not log requests), ValidationFailed(file) as plan_import,
        Conflict (the same rows imported at the same moment by someone else; nothing is imported).
    """
    require(actor, "log_cancellation_request", None)
    plan = plan_import(filename, data, as_of)
    now = moment_of(as_of)
    for _row, v, key in plan.creates:
        decided = v["outcome"] != "open"
        db.session.add(CancellationRequest(
            account_id=v["account"].id, contact_name=v["contact_name"], phone=v["phone"], channel=v["channel"],
            request_date=v["request_date"], amount_collected_cents=v["collected"], months_in_program=v["months"],
            reason_code=v["reason_code"], reason=v["reason"], created_by_id=getattr(actor, "id", None),
            created_at=now, outcome=v["outcome"], import_key=key,
            resolved_at=now if decided else None, outcome_note="Imported from the spreadsheet." if decided else None))
    for account_id in sorted({v["account"].id for _r, v, _k in plan.creates}):
        audit.record("cancellation_requests_imported", account_id, actor,
                     data={"file": (filename or "")[:100],
                           "rows": [r for r, v, _k in plan.creates if v["account"].id == account_id]}, now=now)
    try:
        db.session.commit()
    except IntegrityError:  # the same rows imported by someone else at the same moment (unique import_key)
        db.session.rollback()
        raise Conflict("These rows were imported by someone else at the same moment. Nothing was imported; "
                       "preview the file again.") from None
    plan.created = len(plan.creates)
    return plan
