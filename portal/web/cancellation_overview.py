"""The retention overview: requests per week, save rate, reasons and monthly revenue kept, as charts, a table
and the same figures in CSV. The charts are SVG drawn on the server (no script, nothing inline for the CSP)."""
from flask import request, url_for

from portal.domain.cancellations import overview as figures
from portal.domain.errors import ValidationFailed
from portal.timeutil import utcnow
from portal.web.access import STAFF, roles_required
from portal.web.cancellations import bp
from portal.web.csv_download import csv_download
from portal.web.helpers import render

CHART_HEIGHT = 120


def _read_period():
    return figures.period(request.args.get("date_from"), request.args.get("date_to"), utcnow().date())


def _bars(values, width=28):
    """Return [(x, y, w, h, value)] bars for an SVG chart of values, scaled to CHART_HEIGHT."""
    top = max([v for v in values if v] or [1])
    return [(i * (width + 6), CHART_HEIGHT - round(v * CHART_HEIGHT / top), width, round(v * CHART_HEIGHT / top), v)
            for i, v in enumerate(values)]


@bp.route("/overview")
@roles_required(STAFF)
def overview():
    """Show the retention overview over a chosen period (default the last 12 weeks)."""
    try:
        start, end = _read_period()
    except ValidationFailed as exc:
        return render("cancellations/overview.html", status=422, errors=exc.field_errors, view=None,
                      args=request.args)
    view = figures.overview(start, end)
    reasons = sorted(view.reasons.items(), key=lambda item: -item[1])
    return render("cancellations/overview.html", view=view, errors={}, args=request.args,
                  week_bars=_bars([w.requests for w in view.weeks]),
                  rate_bars=_bars([round((w.save_rate or 0) * 100) for w in view.weeks]),
                  reason_bars=_bars([count for _code, count in reasons], 40), reasons=reasons,
                  csv_url=url_for("cancellations.overview_csv", date_from=start.isoformat(), date_to=end.isoformat()))


@bp.route("/overview.csv")
@roles_required(STAFF)
def overview_csv():
    """Download the overview's figures as CSV, one row per week and the totals."""
    start, end = _read_period()
    return csv_download(figures.csv_rows(figures.overview(start, end)),
                        f"retention-{start.isoformat()}-{end.isoformat()}.csv", "export of the retention overview")
