"""Settings, read from the environment (PORTAL_* and the usual DATABASE_URL / REDIS_URL)."""
import os
from datetime import timedelta

import click


class ConfigError(click.ClickException, RuntimeError):
    """Raised when the portal cannot start with the configuration it was given.

    A ClickException, so `flask ...` commands print the message alone (no traceback) and exit 1.
    """


def _env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    """Defaults shared by every environment."""

    ENV_NAME = "production"
    SECRET_KEY = os.environ.get("SECRET_KEY") or os.environ.get("PORTAL_SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")  # None: SQLite in the instance folder
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI")  # None: REDIS_URL
    # Sign-in throttling counts failed sign-ins only: per client address, and per email typed.
    LOGIN_RATE_LIMIT = os.environ.get("PORTAL_LOGIN_RATE_LIMIT", "10 per minute;50 per hour")
    LOGIN_EMAIL_RATE_LIMIT = os.environ.get("PORTAL_LOGIN_EMAIL_RATE_LIMIT", "5 per minute;20 per hour")
    # Redis down: count in this process's memory (Flask-Limiter logs the fall-back) instead of a 500.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
    TRUSTED_PROXIES = os.environ.get("PORTAL_TRUSTED_PROXIES", "0")  # reverse proxies in front (ProxyFix)

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = True
    REMEMBER_COOKIE_DURATION = timedelta(days=14)
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    STAFF_IDLE_MINUTES = os.environ.get("PORTAL_STAFF_IDLE_MINUTES", "30")  # staff signed out when idle this long
    STAFF_SESSION_HOURS = os.environ.get("PORTAL_STAFF_SESSION_HOURS", "12")  # and this long after sign-in
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    # A larger request body is refused with 413 before any view reads it (room for a 5 MB spreadsheet import);
    # Flask's MAX_FORM_MEMORY_SIZE (500 kB) bounds each non-file field of a multipart form the same way.
    MAX_CONTENT_LENGTH = int(os.environ.get("PORTAL_MAX_REQUEST_BYTES", str(6 * 1024 * 1024)))

    BILLING_CONTACT = os.environ.get("PORTAL_BILLING_CONTACT", "billing@example.com")
    MAIL_FROM = os.environ.get("PORTAL_MAIL_FROM", "Account Suspension Portal <no-reply@example.com>")
    SMTP_HOST = os.environ.get("PORTAL_SMTP_HOST", "127.0.0.1")
    SMTP_PORT = int(os.environ.get("PORTAL_SMTP_PORT", "1025"))
    SMTP_TIMEOUT = float(os.environ.get("PORTAL_SMTP_TIMEOUT", "10"))
    SMTP_STARTTLS = os.environ.get("PORTAL_SMTP_STARTTLS", "") in ("1", "true", "yes")  # upgrade, checking the cert
    SMTP_USER = os.environ.get("PORTAL_SMTP_USER", "")  # sign in to the relay when set
    SMTP_PASSWORD = os.environ.get("PORTAL_SMTP_PASSWORD", "")
    BULK_ASYNC_THRESHOLD = int(os.environ.get("PORTAL_BULK_ASYNC_THRESHOLD", "300"))
    CLEANUP_CONFIRM_THRESHOLD = int(os.environ.get("PORTAL_CLEANUP_CONFIRM_THRESHOLD", "1000"))
    SWEEP_CHUNK_SIZE = int(os.environ.get("PORTAL_SWEEP_CHUNK_SIZE", "50000"))
    SWEEP_SQLITE_WAL_AUTOCHECKPOINT = int(os.environ.get("PORTAL_SWEEP_SQLITE_WAL_AUTOCHECKPOINT", "250000"))  # pages
    SWEEP_SQLITE_CACHE_KIB = int(os.environ.get("PORTAL_SWEEP_SQLITE_CACHE_KIB", "32768"))  # page cache of a run
    SWEEP_CONNECTIONS = int(os.environ.get("PORTAL_SWEEP_CONNECTIONS", "2"))  # PostgreSQL; SQLite always 1
    SWEEP_CHUNK_STALE_SECONDS = float(os.environ.get("PORTAL_SWEEP_CHUNK_STALE_SECONDS", "120"))
    SWEEP_CHUNK_PAUSE_SECONDS = float(os.environ.get("PORTAL_SWEEP_CHUNK_PAUSE_SECONDS", "0"))  # throttle
    SWEEP_PARALLEL_JOBS = int(os.environ.get("PORTAL_SWEEP_PARALLEL_JOBS", "2"))
    SCHEDULER_TICK_SECONDS = float(os.environ.get("PORTAL_SCHEDULER_TICK_SECONDS", "30"))
    PAGE_SIZE = 50
    HOLIDAY_COUNTRY = os.environ.get("PORTAL_HOLIDAY_COUNTRY", "US")  # business days of a lift's "2 business days"
    PHONE_REGION = os.environ.get("PORTAL_PHONE_REGION", "US")  # phone numbers typed without +country
    LIFT_MAX_DAYS = int(os.environ.get("PORTAL_LIFT_MAX_DAYS", "30"))  # how far ahead a lift may go
    DISPLAY_TIMEZONE = os.environ.get("PORTAL_TIMEZONE", "UTC")  # the zone pages show times in (stored: UTC)


class DevelopmentConfig(Config):
    """Local development: insecure cookies over plain HTTP and a fixed fallback key."""

    ENV_NAME = "development"
    SECRET_KEY = Config.SECRET_KEY or "dev-only-secret-key-change-me"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_SECURE = False


class TestingConfig(DevelopmentConfig):
    """Test runs: the test fixtures fill in the database and Redis."""

    ENV_NAME = "testing"
    TESTING = True


CONFIGS = {"production": Config, "development": DevelopmentConfig, "testing": TestingConfig}


def load_config(app, overrides=None):
    """Load the settings class chosen by PORTAL_ENV, then the overrides; check the secret key."""
    name = (overrides or {}).get("ENV_NAME") or os.environ.get("PORTAL_ENV", "production")
    if name not in CONFIGS:
        raise ConfigError(f"PORTAL_ENV must be one of {', '.join(CONFIGS)}; got {name!r}.")
    app.config.from_object(CONFIGS[name])
    if overrides:
        app.config.update(overrides)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "portal.sqlite3")
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://") or uri.startswith("postgresql://"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri.split("://", 1)[1]
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        app.config["RATELIMIT_STORAGE_URI"] = app.config["REDIS_URL"]
    _check_trusted_proxies(app)
    _check_holiday_country(app)
    _check_display_timezone(app)
    if not app.config.get("SECRET_KEY"):
        raise ConfigError(
            "SECRET_KEY is not set. Set it in the environment, for example:\n"
            "  export SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')\n"
            "or run with PORTAL_ENV=development for local use."
        )


def _check_trusted_proxies(app):
    """TRUSTED_PROXIES must be a whole number of proxies, 0 or more; store it as an int."""
    raw = str(app.config.get("TRUSTED_PROXIES", 0)).strip()
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 10:
        raise ConfigError(f"PORTAL_TRUSTED_PROXIES must be the number of reverse proxies in front of the portal "
                          f"(0 to 10); got {raw!r}.")
    app.config["TRUSTED_PROXIES"] = int(raw)


def _check_holiday_country(app):
    """HOLIDAY_COUNTRY must name a holiday calendar the holidays library has; store it upper-case."""
    import holidays

    country = str(app.config.get("HOLIDAY_COUNTRY") or "US").strip().upper()
    if country not in holidays.list_supported_countries():
        raise ConfigError(f"PORTAL_HOLIDAY_COUNTRY must be a country code the holidays library has a calendar for, "
                          f"like US, GB or DE; got {country!r}.")
    app.config["HOLIDAY_COUNTRY"] = country


def _check_display_timezone(app):
    """DISPLAY_TIMEZONE must name a time zone zoneinfo knows ("UTC", "Europe/Berlin"); store the name as given."""
    from portal.timeutil import zone_named

    name = str(app.config.get("DISPLAY_TIMEZONE") or "UTC").strip()
    try:
        zone_named(name)
    except ValueError:
        raise ConfigError(f"PORTAL_TIMEZONE must be a time zone name from the IANA database, like UTC, "
                          f"Europe/Berlin or America/New_York; got {name!r}.") from None
    app.config["DISPLAY_TIMEZONE"] = name
