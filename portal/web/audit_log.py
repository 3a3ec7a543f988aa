"""The audit log (super admins and support): every event across accounts, newest first, filters, pages, CSV."""
from flask import Blueprint, abort, request, url_for
from flask_login import current_user

from portal.domain import audit_log
from portal.domain.suspension import REASON_LABELS
from portal.web.access import STAFF, SUPER_ADMIN, roles_required
from portal.web.csv_download import csv_download
from portal.web.helpers import render

bp = Blueprint("audit_log", __name__, url_prefix="/audit")


@bp.route("")
@roles_required(STAFF)
def index():
    """List events, newest first, by the filters (the results block alone for htmx); 422 at a bad filter."""
    f = audit_log.parse_filters(request.args)
    rows, after = ([], None) if f.problems else audit_log.events_page(f)
    actions = audit_log.action_choices()
    if f.action and not f.action.endswith("_*") and f.action not in actions:
        actions = sorted(actions + [f.action])  # asked for by a link before any such event: kept, lists none
    return render("audit_log/index.html", block="audit_log", status=422 if f.problems else 200,
                  filters=f, rows=rows, actions=actions, action_groups=audit_log.action_groups(actions),
                  reasons_all=REASON_LABELS,
                  action_label=audit_log.action_label, run_kinds=audit_log.run_kinds(r[0].actor_run_id for r in rows),
                  can_open_runs=current_user.role in SUPER_ADMIN,
                  next_url=url_for("audit_log.index", **f.args(after)) if after else None,
                  first_url=url_for("audit_log.index", **f.args()),
                  export_url=url_for("audit_log.export", **f.args()))


@bp.route("/export.csv")
@roles_required(STAFF)
def export():
    """Download the events matching the filters as CSV, newest first (refused if a filter names nothing)."""
    f = audit_log.parse_filters(request.args)
    if f.problems:  # a download cannot show what was wrong: it would hold other events than asked for
        abort(422, "Nothing was exported: " + " ".join(f.problems.values()))
    return csv_download(audit_log.csv_rows(f), "audit-log.csv", "export of the audit log")
