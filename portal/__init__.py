"""Account Suspension Portal: application factory."""
import logging
import os

from flask import Flask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(config=None):
    """Create and configure the portal; config overrides settings (tests pass their own)."""
    app = Flask(__name__, template_folder=os.path.join(ROOT, "templates"),
                static_folder=os.path.join(ROOT, "static"),
                instance_path=os.environ.get("PORTAL_INSTANCE_PATH") or os.path.join(ROOT, "instance"))
    from portal.config import load_config

    load_config(app, config)
    logging.basicConfig(level=logging.INFO)
    from portal.web import timing

    timing.init_app(app)  # first, so the Server-Timing header spans every other hook
    register_proxies(app)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    return app


def register_proxies(app):
    """Behind TRUSTED_PROXIES reverse proxies, read the client address and scheme from X-Forwarded-*."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)


def register_extensions(app):
    """Bind the unbound extensions to this app."""
    from portal import models  # noqa: F401  (registers the tables)
    from portal.extensions import csrf, db, limiter, login_manager, migrate

    from portal.db_setup import init_engine_events

    init_engine_events(app)
    db.init_app(app)
    from portal.models.search_objects import include_name

    migrate.init_app(app, db, directory=os.path.join(ROOT, "migrations"), render_as_batch=True,
                     include_name=include_name)  # the search index's own tables (SQLite) are no model's
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
    login_manager.init_app(app)
    from portal.web import session as web_session

    web_session.init_app(app)


def register_blueprints(app):
    """Register the page blueprints, the JSON API and the error handlers."""
    from portal.web import converters, errors, headers, helpers
    from portal.web.blueprints import BLUEPRINTS

    converters.init_app(app)  # before the routes: `<int:…>` ids are bound when a rule is added
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    from portal import api

    api.init_app(app)  # the JSON API's blueprints under /api/v1 (flask-smorest)
    errors.init_app(app)
    headers.init_app(app)
    helpers.init_app(app)


def register_commands(app):
    """Register the `flask ...` commands."""
    from portal.cli import COMMANDS

    for command in COMMANDS:
        app.cli.add_command(command)
