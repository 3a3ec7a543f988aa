"""A CSV download streamed row by row: started only once its first rows are read, ended clearly if it fails.

Once streaming starts the status line and headers are gone, so an error can no longer become an error page;
an exception escaping the stream would cut the connection, and the browser would keep a truncated file that
looks whole. So the header and first row are read inside the request (where bad input or an unreachable
database still gets a proper error page), and a later failure is logged and ends the file with one line
saying it is incomplete.
"""
import csv
import io
import itertools
import logging
import re
import unicodedata
from urllib.parse import quote

from flask import Response, current_app

log = logging.getLogger(__name__)
FLUSH_ROWS = 500  # rows per chunk sent
INCOMPLETE = ("EXPORT INCOMPLETE: an error on our side stopped this export early and rows are missing; "
              "please download it again.")


def download_name(stem, day, filters=()):
    """Return a file name saying what a download holds: accounts-2026-12-01-status-suspended-q-bakery.csv.

    Args:
        stem: what the rows are ("accounts").
        day: the date of the download.
        filters: (name, value) pairs; empty values are left out. Each part keeps only a-z, 0-9 and "-"
            (other characters become "-", letters lose their accents where they can), 40 characters at most,
            and the whole name 150 at most.
    """
    parts = [stem, day.isoformat()]
    for name, value in filters:
        value = _slug(value)
        if value:
            parts += [_slug(name), value]
    return "-".join(parts)[:146].rstrip("-") + ".csv"


def _slug(text):
    plain = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:40].strip("-")


def content_disposition(filename):
    """Return the attachment header with both forms of the name: a plain ASCII one and RFC 6266's filename*."""
    ascii_name = re.sub(r'[^A-Za-z0-9._-]+', "-", filename) or "download.csv"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def csv_download(rows, filename, what):
    """Return a streamed CSV response of rows (header first), reading the first two now.

    Args:
        rows: an iterable of row tuples, read lazily (each chunk its own query).
        filename: the download's file name.
        what: what the file is, for the log ("export of accounts").
    """
    rows = iter(rows)
    first = list(itertools.islice(rows, 2))  # the header and the first account: the first queries run here
    app = current_app._get_current_object()

    def generate():  # its own app context: the request's is gone once streaming starts
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows(first)
        count = len(first)
        with app.app_context():
            try:
                for count, values in enumerate(rows, count + 1):
                    writer.writerow(values)
                    if count % FLUSH_ROWS == 0:
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
            except Exception as exc:  # noqa: BLE001 - the response has started: say so in the file, and log it
                log.exception("%s failed after %d lines: %s", what, count, exc)
                writer.writerow([INCOMPLETE])
        yield buffer.getvalue()

    return Response(generate(), mimetype="text/csv",
                    headers={"Content-Disposition": content_disposition(filename)})
