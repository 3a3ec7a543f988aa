"""A form sent with a CSRF token that no longer holds (it expired, or the session was renewed since the page was
opened) comes back with what was typed and a fresh token; the stale post itself is never acted on.

- htmx: the form is still on the page with everything typed in it. The answer (400, nothing swapped) carries the
  fresh token in an HX-Trigger event, `form-token-refreshed`; static/js/portal.js puts it into every form and
  htmx's header, and the toast says to check and send again.
- A full page: the browser has left the form, so the answer (400) is a page listing what was typed, with the
  same fields as hidden inputs, a fresh token and a "Send again" button posting them to the same address.

Only a post from the portal's own pages is offered again (the Origin, or the Referer, is this site): one sent
from another site, or without any token, gets the plain refusal, so a forged form is never dressed up as the
user's own. Passwords are never written back into a page, and a file cannot be, so those must be given again.
"""
import json
from urllib.parse import urlsplit

from flask import make_response, render_template, request
from flask_wtf.csrf import generate_csrf

# Flask-WTF's messages when a token was sent but no longer holds (not "missing" or "invalid": a forged form).
STALE = ("The CSRF token has expired.", "The CSRF tokens do not match.", "The CSRF session token is missing.")
SECRET_FIELDS = ("password", "new_password", "current_password", "token", "secret")
MESSAGE = ("Your form expired before it was sent (it was open a long time, or you signed in again since). Nothing "
           "was changed. What you typed is kept: check it and send it again.")


def _same_origin():
    here = urlsplit(request.host_url)
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    there = urlsplit(origin)
    return bool(there.netloc) and (there.scheme, there.netloc) == (here.scheme, here.netloc)


def resendable(exc):
    """True when a refused post is a stale form of this site's own, worth offering again."""
    return request.method == "POST" and exc.description in STALE and _same_origin()


def _typed_fields():
    """The posted fields to send again: every value but the old token and secrets, in the order sent."""
    return [(name, value) for name, value in request.form.items(multi=True)
            if name != "csrf_token" and not any(secret in name.lower() for secret in SECRET_FIELDS)]


def response():
    """Answer a stale form: the fresh token for htmx (the form is still on the page), else the page to send again."""
    token = generate_csrf()
    if request.headers.get("HX-Request") == "true":
        body = render_template("errors/_message.html", status=400, title="Form expired", message=MESSAGE)
        answer = make_response(body, 400)
        answer.headers["HX-Trigger"] = json.dumps({"form-token-refreshed": {"token": token}})
    else:
        fields = _typed_fields()
        body = render_template("errors/form_expired.html", message=MESSAGE, fields=fields, token=token,
                               action=request.full_path.rstrip("?"), dropped=bool(request.files)
                               or len(fields) < len([k for k in request.form if k != "csrf_token"]))
        answer = make_response(body, 400)
    answer.vary.add("HX-Request")
    answer.headers["Cache-Control"] = "no-store"  # it holds what was typed
    return answer
