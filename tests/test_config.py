"""Settings: the secret key is required outside development; session cookies are locked down."""
import os
import subprocess
import sys
from http.cookies import SimpleCookie

import pytest

from portal import create_app
from portal.config import ConfigError
from tests.conftest import CSRF_RE, PASSWORD, ROOT, SECRET, _config


def _cookie_attributes(response, name):
    """Return the attributes of the Set-Cookie header for name, lower-cased, e.g. {'httponly', 'samesite=lax'}."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(f"{name}="):
            return {part.strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.getlist('Set-Cookie')}")


def _sign_in(client, email, remember=False, base_url="http://localhost"):
    page = client.get("/login", base_url=base_url)
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    data = {"email": email, "password": PASSWORD, "csrf_token": token}
    if remember:
        data["remember"] = "1"
    # Over HTTPS, CSRF protection also checks that the Referer is this site.
    return client.post("/login", data=data, base_url=base_url, headers={"Referer": f"{base_url}/login"})


# ---------------------------------------------------------------- the secret key

def test_production_without_secret_key_refuses_to_start(tmp_path):
    config = _config(f"sqlite:///{tmp_path}/x.sqlite3", "redis://127.0.0.1:1/0", ENV_NAME="production",
                     SECRET_KEY=None)
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    message = str(caught.value.message)
    assert "SECRET_KEY is not set" in message
    assert "export SECRET_KEY=" in message


def test_flask_command_without_secret_key_prints_how_to_set_it_and_exits(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "PORTAL_SECRET_KEY")}
    env.update(PORTAL_ENV="production", FLASK_APP="portal", PORTAL_INSTANCE_PATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "flask", "routes"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "SECRET_KEY is not set" in result.stderr
    assert "export SECRET_KEY=" in result.stderr
    assert "Traceback" not in result.stderr


def test_development_starts_without_a_secret_key(tmp_path):
    config = _config(f"sqlite:///{tmp_path}/x.sqlite3", "redis://127.0.0.1:1/0", ENV_NAME="development")
    del config["SECRET_KEY"]
    app = create_app(config)
    assert app.config["SECRET_KEY"]
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_unknown_environment_name_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="PORTAL_ENV must be one of"):
        create_app(_config(f"sqlite:///{tmp_path}/x.sqlite3", "redis://127.0.0.1:1/0", ENV_NAME="staging"))


def test_postgres_urls_use_the_psycopg_driver(tmp_path):
    app = create_app(_config("postgres://u:p@db.example:5432/portal", "redis://127.0.0.1:1/0"))
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.example:5432/portal"


def test_without_database_url_the_database_is_sqlite_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path / "inst"))
    app = create_app(_config(None, "redis://127.0.0.1:1/0"))
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/inst/portal.sqlite3"


def test_rate_limits_are_stored_in_redis_by_default(tmp_path):
    config = _config(f"sqlite:///{tmp_path}/x.sqlite3", "redis://127.0.0.1:6390/3")
    del config["RATELIMIT_STORAGE_URI"]
    app = create_app(config)
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6390/3"


# ---------------------------------------------------------------- cookie flags

def test_session_cookie_is_httponly_and_samesite_but_not_secure_in_development(client, world):
    response = _sign_in(client, world.admin.email)
    assert response.status_code == 303
    flags = _cookie_attributes(response, "session")
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "secure" not in flags


class TestProduction:
    @pytest.fixture
    def app_config(self):
        return {"ENV_NAME": "production", "SECRET_KEY": SECRET}

    def test_production_settings_are_loaded(self, app):
        assert app.config["ENV_NAME"] == "production"
        assert not app.config.get("TESTING")

    def test_session_cookie_is_secure_httponly_and_samesite(self, client, world):
        response = _sign_in(client, world.admin.email, base_url="https://localhost")
        assert response.status_code == 303
        flags = _cookie_attributes(response, "session")
        assert {"secure", "httponly", "samesite=lax"} <= flags

    def test_remember_me_cookie_is_secure_httponly_and_samesite(self, client, world):
        response = _sign_in(client, world.manager.email, remember=True, base_url="https://localhost")
        assert response.status_code == 303
        flags = _cookie_attributes(response, "remember_token")
        assert {"secure", "httponly", "samesite=lax"} <= flags
        cookie = SimpleCookie()
        cookie.load(next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("remember_token=")))
        assert cookie["remember_token"]["expires"]  # persists beyond the browser session
