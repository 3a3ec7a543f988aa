"""Sign-in throttling: failed sign-ins are limited per client address and per email typed.

Only failures count (Flask-Limiter's deduct_when), so an office whose people sign in many times a
minute from one address is never locked out by its own successful sign-ins. The per-email limit
holds for any email typed, known or not, with the same message and no password check while it
holds, so it tells no one whether an account exists. The client address is the connection's, or
behind PORTAL_TRUSTED_PROXIES reverse proxies the one they forward (ProxyFix, see create_app).

When the limiter's Redis is unreachable, Flask-Limiter counts in this process's memory instead
(RATELIMIT_IN_MEMORY_FALLBACK_ENABLED; it logs "falling back to in-memory storage") and goes back
to Redis once Redis answers again.
"""
import hashlib
import math
import time
from datetime import datetime, timezone

from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from portal.extensions import limiter
from portal.plurals import count
from portal.web.helpers import render
from portal.web.words import local_time


def record_failure():
    """Count this sign-in against the limits (a wrong email or password)."""
    g.sign_in_failed = True


def _failed(response):  # noqa: ARG001 - Flask-Limiter passes the response
    return bool(g.get("sign_in_failed"))


def _email_key():
    """The limit key of the email typed: a digest, so Redis holds no addresses."""
    email = (request.form.get("email") or "").strip().lower()
    return "email:" + hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()[:32]


def wait_text(seconds):
    """Say how long to wait: '40 seconds', '1 minute', '12 minutes'."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 90:
        return count(seconds, "second")
    minutes = math.ceil(seconds / 60)
    return count(minutes, "minute")


def _refused(request_limit):
    """Answer a throttled sign-in with the form, saying which limit held, how long to wait and until when (429)."""
    reset = request_limit.window.reset_time
    wait = wait_text(reset - time.time())
    until = local_time(datetime.fromtimestamp(math.ceil(reset), timezone.utc).replace(tzinfo=None), "%H:%M:%S")
    whose = "for this email" if str(request_limit.key).find("email:") >= 0 else "from your network address"
    return render("auth/login.html", block="login_form", status=429, email=request.form.get("email", ""),
                  errors={}, form_error=f"Too many attempts: too many failed sign-ins {whose}. Please wait {wait} "
                                        f"and try again (from {until}). Only failed sign-ins count.")


def limit_failed_sign_ins(view):
    """Limit the failed sign-ins of a view per client address (LOGIN_RATE_LIMIT) and per email."""
    per_email = limiter.limit(lambda: current_app.config["LOGIN_EMAIL_RATE_LIMIT"], key_func=_email_key,
                              methods=["POST"], deduct_when=_failed, on_breach=_refused)
    per_address = limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], key_func=get_remote_address,
                                methods=["POST"], deduct_when=_failed, on_breach=_refused)
    return per_address(per_email(view))
