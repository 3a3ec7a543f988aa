"""Security headers on every response: a Content-Security-Policy with no inline script or style, no
framing, no MIME sniffing, a strict referrer, HSTS in production, and no caching of anything but
static files (every other page or download may hold personal data, or a session's CSRF token).

A small after_request hook rather than flask-talisman (last released in 2023): the portal needs a
fixed set of headers and nothing else that extension does. The pages follow the policy: scripts are
static files, htmx's inline indicator style is configured away (htmx-config in base.html), and no
hx-trigger uses an event filter (htmx evaluates filters as script).
"""
from flask import current_app, request

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
])
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def add_security_headers(response):
    """Set the security headers on a response (HSTS in production; no-store on everything but static files)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config.get("ENV_NAME") == "production":
        response.headers["Strict-Transport-Security"] = HSTS
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app):
    """Add the headers to every response of app."""
    app.after_request(add_security_headers)
