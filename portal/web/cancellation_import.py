"""Importing the old spreadsheet: upload, preview every row, then import in one transaction.

The uploaded file is kept in the instance folder between the preview and the import (named by a random
token and the uploader's id, removed once imported or after a day), so the import reads exactly the
file that was previewed.
"""
import os
import re
import secrets
import time

from flask import current_app, flash, request
from flask_login import current_user

from portal.domain.cancellations import importing
from portal.domain.errors import Conflict, ValidationFailed
from portal.plurals import count
from portal.web.access import STAFF, roles_required
from portal.web.cancellations import bp
from portal.web.helpers import redirect_after_post, render

KEEP_SECONDS = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}", re.ASCII)
_EXTENSIONS = (".xlsx", ".csv")


def _folder():
    folder = os.path.join(current_app.instance_path, "imports")
    os.makedirs(folder, exist_ok=True)
    return folder


def _forget_old(folder):
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and time.time() - os.path.getmtime(path) > KEEP_SECONDS:
            os.remove(path)


def _kept_path(token, extension):
    if not _TOKEN.fullmatch(token or "") or extension not in _EXTENSIONS:
        return None
    return os.path.join(_folder(), f"{current_user.id}-{token}{extension}")


def _page(status=200, errors=None, plan=None, token=None, extension=None, filename=None):
    return render("cancellations/import.html", status=status, errors=errors or {}, plan=plan, token=token,
                  extension=extension, filename=filename, max_mb=importing.MAX_BYTES // (1024 * 1024))


@bp.route("/import")
@roles_required(STAFF)
def import_form():
    """Show the upload form for the old spreadsheet."""
    return _page()


def _uploaded():
    """Return (filename, bytes) of the upload, or raise ValidationFailed(file)."""
    if (request.content_length or 0) > importing.MAX_BYTES + 64 * 1024:
        raise ValidationFailed({"file": "The file is over 5 MB. Split it and upload each part."})
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed({"file": "Choose the spreadsheet to upload (.xlsx or .csv)."})
    return upload.filename, upload.stream.read(importing.MAX_BYTES + 1)


@bp.route("/import/preview", methods=["POST"])
@roles_required(STAFF)
def import_preview():
    """Read the upload and show what importing it would create and every row it cannot."""
    try:
        filename, data = _uploaded()
        plan = importing.plan_import(filename, data)
    except ValidationFailed as exc:
        return _page(422, exc.field_errors)
    extension = os.path.splitext(filename.lower())[1]
    token = secrets.token_urlsafe(24)
    _forget_old(_folder())
    with open(_kept_path(token, extension), "wb") as handle:
        handle.write(data)
    return _page(plan=plan, token=token, extension=extension, filename=os.path.basename(filename)[:100])


@bp.route("/import", methods=["POST"])
@roles_required(STAFF)
def import_run():
    """Import the previewed file: every row it can create, in one transaction."""
    path = _kept_path(request.form.get("token"), request.form.get("extension"))
    if path is None or not os.path.exists(path):
        return _page(422, {"file": "That preview has expired or was already imported; upload the file again."})
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        plan = importing.run_import(current_user._get_current_object(), os.path.basename(path), data)
    except ValidationFailed as exc:
        return _page(422, exc.field_errors)
    except Conflict as exc:
        return _page(409, {"file": exc.message})
    os.remove(path)
    flash(f"Imported {count(plan.created, 'request')}; {len(plan.duplicates):,} already "
          f"imported, {count(len(plan.problems), 'row')} refused.", "success")
    return redirect_after_post("cancellations.index")
