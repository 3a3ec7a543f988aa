"""The Data page: upload a CSV of transactions, the latest records, and the account's ingestion keys.

An upload answers with its report, row by row (the full page, or for htmx the upload block), instead of
redirecting: the report is the result and has nowhere to wait across a redirect. Sending the same file
again is harmless (every row reports as a duplicate). A new key is shown the same way, once.
"""
from flask import Blueprint, flash, request
from flask_login import current_user

from portal.domain.errors import Conflict, PermissionDenied, ValidationFailed
from portal.domain.features import ingestion, ingestion_keys
from portal.domain.gate import may
from portal.web.access import roles_required
from portal.web.helpers import redirect_after_post, render

bp = Blueprint("ingestion", __name__, url_prefix="/data")
MANAGERS = ("account_manager",)
PAGE_SIZE = 50


def _page(status=200, block=None, headers=None, **context):
    account = current_user.account
    after = ingestion.parse_cursor(request.args.get("after"))
    records, next_after = ingestion.list_records(account.id, after, PAGE_SIZE)
    keys = ingestion_keys.list_keys(account.id)
    context.setdefault("errors", {})
    return render("ingestion/index.html", block=block, status=status, headers=headers, account=account,
                  records=records, next_after=next_after, paged=after is not None, keys=keys,
                  key_prefixes={key.id: key.prefix for key in keys},
                  uploading=may(current_user, "import_data", account),
                  creating_keys=may(current_user, "create_key", account),
                  revoking_keys=may(current_user, "revoke_key", account),
                  max_rows=ingestion.setting("INGEST_UPLOAD_MAX_ROWS"),
                  max_size=ingestion.size_text(ingestion.setting("INGEST_UPLOAD_MAX_BYTES")), **context)


@bp.route("")
@roles_required(MANAGERS)
def index():
    """Show the upload form, the account's keys and its latest records (htmx: the records' block)."""
    return _page(block="records")


@bp.route("/upload", methods=["POST"])
@roles_required(MANAGERS)
def upload():
    """Ingest an uploaded CSV and show what became of each row."""
    limit = ingestion.setting("INGEST_UPLOAD_MAX_BYTES")
    upload_file = request.files.get("file")
    try:
        if (request.content_length or 0) > limit + 64 * 1024:
            raise ValidationFailed({"file": f"The file is over {ingestion.size_text(limit)}; split it and upload "
                                            "each part."})
        if upload_file is None or not upload_file.filename:
            raise ValidationFailed({"file": "Choose the CSV file to upload."})
        result = ingestion.ingest_upload(current_user, upload_file.stream.read(limit + 1))
    except ValidationFailed as exc:
        return _page(422, "upload", errors=exc.field_errors)
    except (PermissionDenied, Conflict) as exc:  # nothing was inserted; say why in place of the form
        return _page(422, "upload", refusal=exc.message)
    return _page(200, "upload", {"HX-Trigger": "data-ingested"}, result=result,
                 filename=upload_file.filename[:100])


@bp.route("/keys", methods=["POST"])
@roles_required(MANAGERS)
def create_key():
    """Create an ingestion key and show it, this once."""
    try:
        key, text = ingestion_keys.create_key(current_user, current_user.account_id, request.form.get("name"))
    except ValidationFailed as exc:
        return _page(422, "keys", errors=exc.field_errors, form=request.form.to_dict())
    except PermissionDenied as exc:
        return _page(422, "keys", key_refusal=exc.message)
    return _page(200, "keys", {"HX-Trigger": "ingestion-key-created"}, new_key=key, new_key_text=text)


@bp.route("/keys/<int:key_id>/revoke", methods=["POST"])
@roles_required(MANAGERS)
def revoke_key(key_id):
    """Revoke an ingestion key: requests with it are refused from now on."""
    try:
        key = ingestion_keys.revoke_key(current_user, key_id)
    except (PermissionDenied, Conflict) as exc:
        return _page(422, "keys", key_refusal=exc.message)
    flash(f"The key {key.prefix}… ({key.name}) is revoked; requests with it are refused from now on.", "success")
    return redirect_after_post("ingestion.index")
