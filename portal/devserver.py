"""The development web server that `run.py --dev` starts: werkzeug's, without its Server header.

    python -m portal.devserver [--host 127.0.0.1] [--port 5000] [--reload]

`flask run` would announce "Server: Werkzeug/<version> Python/<version>" on every response; this
serves the same app with the same server and says nothing about it. --reload restarts it when a source
file changes. Production (and `python3 run.py` without --dev) uses gunicorn, whose Server header names
no version.
"""
import argparse
import sys

from werkzeug.serving import WSGIRequestHandler, run_simple


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, sending no Server header."""

    def send_response(self, code, message=None):
        """Send the status line and Date, as http.server does, without Server."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())


def main(argv=None):
    """Serve the portal until stopped."""
    from portal import create_app
    from portal.config import ConfigError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--reload", action="store_true", help="restart when a source file changes")
    args = parser.parse_args(argv)
    try:
        app = create_app()
    except ConfigError as exc:
        sys.stderr.write(f"web: {exc}\n")
        return 2
    run_simple(args.host, args.port, app, threaded=True, request_handler=QuietRequestHandler,
               use_reloader=args.reload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
