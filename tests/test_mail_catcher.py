"""Where mail goes: run.py's local mail catcher in development, and a real relay with STARTTLS and sign-in."""
import importlib.util
import io
import os
import shutil
import ssl
import subprocess
import sys
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from portal import mailcatcher
from portal.domain import notify
from portal.extensions import db
from portal.models import OutboxEmail, User
from tests.conftest import ROOT
from tests.services import free_port


@pytest.fixture
def run_module(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("portal_run_script_mail", os.path.join(ROOT, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "INSTANCE", str(tmp_path / "instance"))
    monkeypatch.setattr(module, "VENV_PY", sys.executable)
    monkeypatch.setattr(module, "free_port", free_port)  # ports from this xdist worker's own block
    return module


def _queue_one(app, user_id, subject="Your account is suspended"):
    with app.app_context():
        user = db.session.get(User, user_id)
        email = notify.queue_email(user, "account_suspended", subject, "account_reactivated.txt", note="A test")
        db.session.commit()
        return email.id


def _deliver(app):
    with app.app_context():
        result = notify.deliver_pending()
        db.session.remove()
        return result


def _outbox(app):
    with app.app_context():
        return [(e.status, e.attempts, e.last_error) for e in db.session.scalars(select(OutboxEmail))]


# ---------------------------------------------------------------- run.py's mail catcher

def test_run_py_starts_a_mail_catcher_that_receives_and_keeps_a_delivered_email(app, world, run_module, capfd):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PORTAL_SMTP_HOST"}
    env["PORTAL_SMTP_PORT"] = str(port)
    services = run_module.Services()
    try:
        assert run_module.start_mail_catcher(services, env) == port
        assert env["PORTAL_SMTP_HOST"] == "127.0.0.1" and [s.name for s in services.procs] == ["mail catcher"]
        app.config.update(SMTP_HOST=env["PORTAL_SMTP_HOST"], SMTP_PORT=int(env["PORTAL_SMTP_PORT"]))
        _queue_one(app, world.manager.id, subject="Catch me")
        assert _deliver(app) == (1, 0)
        assert _outbox(app) == [("sent", 1, None)]  # the outbox page's "sent" is real
        folder = os.path.join(run_module.INSTANCE, "mail")
        kept = mailcatcher.messages(folder)
        assert [(m["To"], m["Subject"]) for m in kept] == [(world.manager.email, "Catch me")]
        assert "A test" in kept[0].get_content()
    finally:
        services.stop()
    out = capfd.readouterr()
    assert f"mail catcher: {world.manager.email}: Catch me (saved as {folder}/" in out.out
    assert "Traceback" not in out.out + out.err


def test_no_catcher_when_mail_goes_to_a_relay_elsewhere(run_module, capsys):
    services = run_module.Services()
    env = {"PORTAL_SMTP_HOST": "smtp.example.com", "PORTAL_SMTP_PORT": "587"}
    assert run_module.start_mail_catcher(services, env) is None
    assert services.procs == [] and env["PORTAL_SMTP_HOST"] == "smtp.example.com"
    assert "mail goes to the relay at smtp.example.com:587" in capsys.readouterr().out


def test_a_taken_default_port_moves_the_catcher_and_a_port_set_on_purpose_is_left_alone(run_module, monkeypatch,
                                                                                        capsys):
    monkeypatch.setattr(run_module, "port_is_free", lambda port: port != 1025)
    services = run_module.Services()
    try:
        env = {}
        port = run_module.start_mail_catcher(services, env)
        assert port != 1025 and env == {"PORTAL_SMTP_HOST": "127.0.0.1", "PORTAL_SMTP_PORT": str(port)}
    finally:
        services.stop()
    assert run_module.start_mail_catcher(run_module.Services(), {"PORTAL_SMTP_PORT": "1025"}) is None
    assert "something already listens on 127.0.0.1:1025; mail goes there" in capsys.readouterr().out


def test_serve_starts_the_catcher_before_the_workers_and_hands_them_its_port(run_module, monkeypatch):
    started = []

    def fake_start(self, name, cmd, env):
        started.append((name, dict(env)))
        return SimpleNamespace(pid=0, poll=lambda: None)

    monkeypatch.delenv("PORTAL_SMTP_HOST", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.setattr(run_module, "ensure_venv", lambda extra: None)
    monkeypatch.setattr(run_module, "flask", lambda *args, env: None)
    monkeypatch.setattr(run_module, "wait_for_port", lambda port, proc, timeout=30: True)
    monkeypatch.setattr(run_module.Services, "start", fake_start)
    monkeypatch.setattr(run_module.Services, "watch", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    monkeypatch.setattr(run_module.Services, "stop", lambda self: None)
    monkeypatch.setattr(run_module.signal, "signal", lambda *args: None)
    assert run_module.serve() == 0
    names = [name for name, _env in started]
    assert names.index("mail catcher") < names.index("worker") < names.index("web")
    catcher_port = started[0][1]["PORTAL_SMTP_PORT"]
    assert all(env["PORTAL_SMTP_PORT"] == catcher_port and env["PORTAL_SMTP_HOST"] == "127.0.0.1"
               for name, env in started)


def _run_coroutine(coroutine):
    """Run a coroutine on a loop of its own thread (a browser test's loop may be running in this one)."""
    import asyncio
    import threading

    result = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coroutine)))
    thread.start()
    thread.join(10)
    return result[0]


def test_the_catcher_keeps_the_newest_messages_only(tmp_path):
    catcher = mailcatcher.Catcher(str(tmp_path), keep=3, out=io.StringIO())
    for i in range(5):
        envelope = SimpleNamespace(content=f"Subject: n{i}\r\n\r\nbody".encode(), rcpt_tos=["a@example.test"])
        assert _run_coroutine(catcher.handle_DATA(None, None, envelope)).startswith("250")
    assert [m["Subject"] for m in mailcatcher.messages(str(tmp_path))] == ["n2", "n3", "n4"]


# ---------------------------------------------------------------- a real relay: sign-in and STARTTLS

class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=(auth_data.login, auth_data.password) == (b"portal", b"s3cret"), handled=False)


def _relay(port, **params):
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **params)
    controller.start()
    return controller, inbox


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_relay_that_wants_a_sign_in_gets_it_and_a_refused_sign_in_costs_no_attempt(app, world):
    port = free_port()
    controller, inbox = _relay(port, authenticator=_authenticator, auth_required=True, auth_require_tls=False)
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_USER="portal", SMTP_PASSWORD="wrong")
        _queue_one(app, world.manager.id)
        assert _deliver(app) == (0, 1)
        [(status, attempts, error)] = _outbox(app)
        assert (status, attempts) == ("pending", 0) and "refused the sign-in" in error and not inbox.messages
        app.config["SMTP_PASSWORD"] = "s3cret"
        assert _deliver(app) == (1, 0) and len(inbox.messages) == 1
        assert _outbox(app)[0][:2] == ("sent", 1)
    finally:
        controller.stop()


@pytest.fixture
def certificate(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return SimpleNamespace(path=str(cert), server_context=context)


def test_starttls_checks_the_relays_certificate(app, world, certificate, monkeypatch):
    port = free_port()
    controller, inbox = _relay(port, tls_context=certificate.server_context, require_starttls=True)
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_STARTTLS=True)
        _queue_one(app, world.manager.id)
        assert _deliver(app) == (0, 1)  # a certificate no one vouches for: nothing is sent, no attempt counted
        [(status, attempts, error)] = _outbox(app)
        assert (status, attempts) == ("pending", 0) and "certificate" in error.lower() and not inbox.messages
        monkeypatch.setenv("SSL_CERT_FILE", certificate.path)  # now the certificate is trusted
        assert _deliver(app) == (1, 0) and len(inbox.messages) == 1
    finally:
        controller.stop()


def test_without_starttls_a_relay_that_requires_it_refuses_and_nothing_is_lost(app, world, certificate):
    port = free_port()
    controller, inbox = _relay(port, tls_context=certificate.server_context, require_starttls=True)
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
        _queue_one(app, world.manager.id)
        _deliver(app)
        assert _outbox(app)[0][0] == "pending" and not inbox.messages
    finally:
        controller.stop()
