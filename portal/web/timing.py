"""The server's own time for each request, in a `Server-Timing: app;dur=…` header (milliseconds).

Measured from the first before_request hook to the last after_request hook: the sign-in and session
checks, the gate, the queries and the template, but not gunicorn's parsing or the socket. Benchmarks
read it to tell the portal's time from the network's and the client's (bench/bench_account_list.py
--http); browsers show it in their developer tools. It carries a duration only, nothing about the data.
"""
import time

from flask import g


def start_timer():
    """Note when the request reached the portal."""
    g.request_started = time.perf_counter()


def add_server_timing(response):
    """Say how long the portal took, if the request went through start_timer."""
    started = g.get("request_started")
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def init_app(app):
    """Time every request; call first, so the timer starts before and stops after the other hooks."""
    app.before_request(start_timer)
    app.after_request(add_server_timing)  # after_request hooks run last-registered first: this one ends last
