"""Webhooks out, on both databases: events become deliveries through the relay, signed POSTs received on a local
server and verified, retries with back-off, failed after the last attempt, sent again; crashes and dedupe."""
import calendar
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, insert, select, update

from portal.domain import runs, suspension, webhooks
from portal.domain.billing import ledger
from portal.domain.errors import Conflict, InvalidTransition, PermissionDenied, ValidationFailed
from portal.domain.webhooks import relay as relay_module  # the module (the package exports no function of that name)
from portal.extensions import db
from portal.models import AuditEvent, User, WebhookDelivery, WebhookEndpoint, WebhookRelay
from tests.webhook_receiver import Receiver

T0 = datetime(2026, 12, 1, 9, 0)
ALL = list(webhooks.EVENT_TYPES)


@pytest.fixture
def app_config():
    return {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_MAX_ATTEMPTS": 3, "WEBHOOK_BACKOFF_SECONDS": 60}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.down()


def _user(person):
    return db.session.get(User, person.id)


def _endpoint(world, receiver, events=ALL, path="/hook"):
    endpoint, secret = webhooks.create_endpoint(_user(world.admin), receiver.url(path), events, "Billing system")
    return endpoint.id, secret


def _deliveries(endpoint_id=None):
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    db.session.expire_all()
    return list(db.session.scalars(stmt))


def _suspend(world, account_id=None, note="Unpaid since May"):
    suspension.suspend(_user(world.admin), account_id or world.account, "non_payment", note)


# ---------------------------------------------------------------- signed, received, verified

def test_an_event_is_posted_signed_and_the_signature_verifies(ctx, world, receiver):
    endpoint_id, secret = _endpoint(world, receiver, ["account.suspended"])
    _suspend(world)
    result = webhooks.run(now=T0)
    assert result["relay"]["queued"] == 1 and result["deliveries"]["delivered"] == 1
    [got] = receiver.received
    stamp = calendar.timegm(T0.utctimetuple())
    assert got.headers["portal-signature"].startswith(f"t={stamp},v1=")
    assert got.signed_by(secret, tolerance=300, now=stamp)
    assert not got.signed_by(secret, tolerance=300, now=stamp + 301)  # a replay later is refused
    assert not got.signed_by("whsec_another")
    assert not webhooks.verify(got.headers["portal-signature"], secret, got.body.replace(b"Unpaid", b"Paid!!"),
                               tolerance=None)
    body = got.json
    event_id = db.session.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.action == "suspended"))
    assert body["id"] == f"evt_{event_id}" == got.headers["portal-event-id"]
    assert body["type"] == "account.suspended" == got.headers["portal-event-type"]
    account = body["data"]["account"]
    assert account["status"] == "suspended" and account["previous_status"] == "active"
    assert body["data"]["reason"] == {"category": "non_payment", "note": "Unpaid since May"}
    assert "Ada Admin" in body["data"]["actor"]
    [delivery] = _deliveries(endpoint_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.payload.encode() == got.body  # the body kept is the body signed
    assert webhooks.run(now=T0 + timedelta(minutes=5))["deliveries"]["delivered"] == 0
    assert len(receiver.received) == 1


def test_each_change_is_announced_as_its_event(ctx, world, receiver, make):
    _endpoint(world, receiver)
    admin = _user(world.admin)
    _suspend(world)
    suspension.reactivate(admin, world.account, "other", "Paid by phone")
    ledger.add_invoice(admin, world.other_account, "49.00", "2026-11-01")
    ledger.record_payment(admin, world.other_account, "49.00")
    cleanup_target = make.account(name="Dormant", created_at=datetime(2023, 1, 1), last_activity_at=datetime(2023, 1, 1))
    run = runs.start_run(admin, "bulk", "suspend", {"type": "ids", "ids": [cleanup_target]}, "inactivity",
                         "Dormant for years", chunk_size=10, enqueue=False)
    runs.process_run(run.id, worker_name="test", poll=0)  # set-based: the chunk's own INSERT ... SELECT
    webhooks.run(now=T0)
    kinds = [r.json["type"] for r in receiver.received]
    assert kinds.count("account.suspended") == 2 and kinds.count("account.reactivated") == 1
    assert kinds.count("payment.recorded") == 1 and kinds.count("run.finished") == 1
    bulk = [r.json for r in receiver.of_type("account.suspended") if r.json["data"]["run_id"] == run.id]
    assert len(bulk) == 1 and bulk[0]["data"]["reason"]["category"] == "inactivity"
    [payment] = receiver.of_type("payment.recorded")
    assert payment.json["data"]["payment"]["amount_cents"] == 4900
    assert payment.json["data"]["payment"]["settled"] == [{"invoice_seq": 1, "amount_cents": 4900}]
    [finished] = receiver.of_type("run.finished")
    assert finished.json["data"]["run"]["id"] == run.id and finished.json["data"]["run"]["changed"] == 1
    assert len({r.json["id"] for r in receiver.received}) == len(receiver.received)


def test_an_endpoint_gets_only_its_events_from_its_creation_and_nothing_while_disabled(ctx, world, receiver):
    _suspend(world, world.other_account, "Before the endpoint existed")
    endpoint_id, _secret = _endpoint(world, receiver, ["account.reactivated"])
    admin = _user(world.admin)
    _suspend(world)  # not subscribed
    suspension.reactivate(admin, world.account, "other", "Announced")
    webhooks.run(now=T0)
    assert [r.json["data"]["reason"]["note"] for r in receiver.received] == ["Announced"]
    webhooks.set_enabled(admin, endpoint_id, False)
    _suspend(world)
    suspension.reactivate(admin, world.account, "other", "While disabled")
    webhooks.run(now=T0)
    webhooks.set_enabled(admin, endpoint_id, True)
    suspension.reactivate(admin, world.other_account, "other", "Enabled again")
    webhooks.run(now=T0)
    assert [r.json["data"]["reason"]["note"] for r in receiver.received] == ["Announced", "Enabled again"]
    with pytest.raises(InvalidTransition):
        webhooks.set_enabled(admin, endpoint_id, True)


def test_deliveries_queued_before_a_disable_wait_and_go_out_once_enabled(ctx, world, receiver):
    endpoint_id, _secret = _endpoint(world, receiver, ["account.suspended"])
    _suspend(world)
    relay_module.relay(now=T0)
    webhooks.set_enabled(_user(world.admin), endpoint_id, False)
    assert webhooks.deliver_due(now=T0)["delivered"] == 0 and receiver.received == []
    webhooks.set_enabled(_user(world.admin), endpoint_id, True)
    assert webhooks.deliver_due(now=T0)["delivered"] == 1 and len(receiver.received) == 1


# ---------------------------------------------------------------- retries, back-off, failed, send again

def test_a_receiver_that_is_down_is_retried_with_back_off_then_failed_then_sent_again(ctx, world, receiver):
    endpoint_id, secret = _endpoint(world, receiver, ["account.suspended"])
    _suspend(world)
    receiver.down()
    webhooks.run(now=T0)
    [d] = _deliveries(endpoint_id)
    assert (d.status, d.attempts, d.next_attempt_at) == ("pending", 1, T0 + timedelta(seconds=60))
    assert d.last_error.startswith("Could not connect") and d.last_status_code is None
    assert webhooks.deliver_due(now=T0 + timedelta(seconds=59))["retrying"] == 0  # not due yet
    second = T0 + timedelta(seconds=60)
    webhooks.deliver_due(now=second)
    [d] = _deliveries(endpoint_id)
    assert (d.status, d.attempts, d.next_attempt_at) == ("pending", 2, second + timedelta(seconds=120))
    third = second + timedelta(seconds=120)
    assert webhooks.deliver_due(now=third)["failed"] == 1  # WEBHOOK_MAX_ATTEMPTS = 3
    [d] = _deliveries(endpoint_id)
    assert (d.status, d.attempts, d.next_attempt_at) == ("failed", 3, None)
    assert webhooks.deliver_due(now=third + timedelta(days=1))["failed"] == 0  # kept, not tried again
    receiver.up()
    admin = _user(world.admin)
    with pytest.raises(Conflict):
        webhooks.resend(admin, endpoint_id, d.id, expected_attempts=2)  # the page showed another state
    webhooks.resend(admin, endpoint_id, d.id, expected_attempts=3)
    [d] = _deliveries(endpoint_id)
    assert (d.status, d.attempts, d.last_error) == ("pending", 0, None)
    with pytest.raises(InvalidTransition):
        webhooks.resend(admin, endpoint_id, d.id, expected_attempts=0)  # waiting already
    assert webhooks.deliver_due(now=third + timedelta(days=1))["delivered"] == 1
    [got] = receiver.received
    assert got.signed_by(secret) and got.json["type"] == "account.suspended"
    assert _deliveries(endpoint_id)[0].status == "delivered"
    resent = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "webhook_resent"))
    assert resent.data["delivery_id"] == d.id and resent.actor_user_id == world.admin.id


def test_an_error_answer_counts_for_that_delivery_and_a_later_success_delivers_it(ctx, world, receiver):
    endpoint_id, _secret = _endpoint(world, receiver, ["account.suspended"])
    _suspend(world)
    receiver.answers = [500]
    webhooks.run(now=T0)
    [d] = _deliveries(endpoint_id)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("pending", 1, 500, "Answered HTTP 500.")
    webhooks.deliver_due(now=T0 + timedelta(minutes=1))
    [d] = _deliveries(endpoint_id)
    assert (d.status, d.attempts, d.last_status_code) == ("delivered", 2, 200)
    assert [r.headers["portal-delivery-attempt"] for r in receiver.received] == ["1", "2"]
    assert receiver.received[0].body == receiver.received[1].body


def test_a_receiver_that_does_not_answer_is_tried_once_a_run(ctx, world, receiver):
    endpoint_id, _secret = _endpoint(world, receiver, ["account.suspended"])
    for account_id in (world.account, world.other_account):
        _suspend(world, account_id)
    receiver.down()
    result = webhooks.run(now=T0)
    assert result["deliveries"]["unreachable"] == [endpoint_id]
    assert sorted(d.attempts for d in _deliveries(endpoint_id)) == [0, 1]  # the other waits, uncounted
    receiver.up()
    assert webhooks.deliver_due(now=T0 + timedelta(minutes=1))["delivered"] == 2


def test_a_name_that_turns_private_after_it_was_saved_is_not_sent_to(ctx, world, receiver, monkeypatch):
    import socket

    real = socket.getaddrinfo
    answers = {"hooks.example.test": "93.184.216.34"}

    def fake(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    ctx.config["WEBHOOK_ALLOW_PRIVATE"] = False
    endpoint, _secret = webhooks.create_endpoint(_user(world.admin), f"http://hooks.example.test:{receiver.port}/hook",
                                                 ["account.suspended"])
    answers["hooks.example.test"] = "127.0.0.1"  # DNS rebinding: public when saved, loopback when sent
    _suspend(world)
    webhooks.run(now=T0)
    [d] = _deliveries(endpoint.id)
    assert d.status == "pending" and d.attempts == 1 and "private network" in d.last_error
    assert receiver.received == []


@pytest.mark.parametrize("url, message", [
    ("ftp://example.com/hook", "must start with https:// or http://"),
    ("javascript:alert(1)", "must start with https:// or http://"),
    ("https://", "needs a host name"),
    ("https://user:pw@example.com/hook", "Leave user names and passwords out"),
    ("http://[::1", "not a web address"),
    ("http://127.0.0.1:8000/hook", "private network"),
    ("http://localhost/hook", "private network"),
    ("http://10.0.0.8/hook", "private network"),
    ("http://192.168.1.20/hook", "private network"),
    ("http://169.254.169.254/latest/meta-data", "private network"),
    ("http://[::ffff:127.0.0.1]/hook", "private network"),
    ("http://0.0.0.0/hook", "private network"),
    ("http://no-such-host.invalid/hook", "could not be found"),
    ("", "Enter the address"),
    ("https://example.com/" + "a" * 2000, "Keep the address to 2000 characters"),
])
def test_unsafe_addresses_are_refused_and_nothing_is_stored(ctx, world, url, message):
    ctx.config["WEBHOOK_ALLOW_PRIVATE"] = False
    with pytest.raises(ValidationFailed) as refused:
        webhooks.create_endpoint(_user(world.admin), url, ["account.suspended"])
    assert message in refused.value.field_errors["url"]
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_other_bad_input_is_refused_at_its_field(ctx, world, receiver):
    admin = _user(world.admin)
    with pytest.raises(ValidationFailed) as refused:
        webhooks.create_endpoint(admin, receiver.url(), [], "x" * 201)
    assert set(refused.value.field_errors) == {"events", "description"}
    with pytest.raises(ValidationFailed) as refused:
        webhooks.create_endpoint(admin, receiver.url(), ["account.deleted"])
    assert "Unknown event 'account.deleted'" in refused.value.field_errors["events"]
    with pytest.raises(PermissionDenied):
        webhooks.create_endpoint(_user(world.support), receiver.url(), ["account.suspended"])
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_a_rolled_secret_signs_every_later_attempt(ctx, world, receiver):
    endpoint_id, old = _endpoint(world, receiver, ["account.suspended"])
    _suspend(world)
    receiver.answers = [503]
    webhooks.run(now=T0)
    _endpoint_row, new = webhooks.roll_secret(_user(world.admin), endpoint_id)
    assert new != old and new.startswith("whsec_")
    webhooks.deliver_due(now=T0 + timedelta(minutes=1))
    first, second = receiver.received
    assert first.signed_by(old) and not first.signed_by(new)
    assert second.signed_by(new) and not second.signed_by(old)


# ---------------------------------------------------------------- crashes and dedupe in the relay

def _relay_state():
    db.session.expire_all()
    return db.session.get(WebhookRelay, 1)


def test_a_crash_between_the_relay_steps_loses_nothing_and_queues_nothing_twice(ctx, world, receiver, monkeypatch):
    endpoint_id, _secret = _endpoint(world, receiver, ["account.suspended"])
    _suspend(world)
    _suspend(world, world.other_account)
    real_kept = relay_module._kept

    def crash(*args):  # the deliveries are written; the cursor is not saved yet
        raise RuntimeError("worker killed")

    monkeypatch.setattr(relay_module, "_kept", crash)
    with pytest.raises(RuntimeError):
        relay_module.relay(now=T0)
    db.session.rollback()
    assert _deliveries(endpoint_id) == []
    monkeypatch.setattr(relay_module, "_kept", real_kept)
    assert relay_module.relay(now=T0)["queued"] == 2
    assert relay_module.relay(now=T0)["queued"] == 0
    webhooks.deliver_due(now=T0)
    assert len(receiver.received) == 2 and len({r.json["id"] for r in receiver.received}) == 2


def test_relaying_again_from_an_old_cursor_queues_no_event_twice(ctx, world, receiver):
    """The unique (endpoint_id, event_id) is the dedupe, not the cursor (seen to fail without ON CONFLICT DO NOTHING)."""
    endpoint_id, _secret = _endpoint(world, receiver, ["account.suspended", "account.reactivated"])
    _suspend(world)
    suspension.reactivate(_user(world.admin), world.account, "other", "Paid")
    assert relay_module.relay(now=T0)["queued"] == 2
    db.session.execute(update(WebhookRelay).values(cursor_id=0, gaps=[]))  # as after a restore, or a lost save
    db.session.commit()
    again = relay_module.relay(now=T0)
    assert again["read"] == 3 and again["queued"] == 0  # the endpoint's creation, the suspension, the reactivation
    webhooks.deliver_due(now=T0)
    assert len(_deliveries(endpoint_id)) == 2 and len(receiver.received) == 2


def test_two_relays_at_once_queue_each_event_once(app, world, receiver):
    import threading

    with app.app_context():
        endpoint_id, _secret = _endpoint(world, receiver, ["account.suspended", "account.reactivated"])
        for _ in range(5):
            _suspend(world)
            suspension.reactivate(_user(world.admin), world.account, "other", "Again")
        db.session.remove()
    barrier, errors = threading.Barrier(2), []

    def relay_once():
        with app.app_context():
            try:
                barrier.wait()
                relay_module.relay(now=T0, batch=3)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=relay_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with app.app_context():
        assert len(_deliveries(endpoint_id)) == 10
        db.session.remove()


def test_two_senders_at_once_send_each_delivery_once(app, world, receiver):
    import threading

    with app.app_context():
        _endpoint(world, receiver, ["account.suspended", "account.reactivated"])
        for _ in range(4):
            _suspend(world)
            suspension.reactivate(_user(world.admin), world.account, "other", "Again")
        relay_module.relay(now=T0)
        db.session.remove()
    barrier = threading.Barrier(2)

    def send():
        with app.app_context():
            barrier.wait()
            webhooks.deliver_due(now=T0)
            db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [r.json["id"] for r in receiver.received]
    assert len(ids) == 8 and len(set(ids)) == 8


def test_an_event_committed_after_a_later_one_is_still_relayed(ctx, world, receiver, db_backend):
    """PostgreSQL hands out ids at insert and shows them at commit: id N can appear after N+1 was relayed."""
    if db_backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: its ids become visible in order")
    endpoint_id, _secret = _endpoint(world, receiver, ["account.suspended"])
    engine = create_engine(ctx.config["SQLALCHEMY_DATABASE_URI"])
    slow = engine.connect()
    try:
        transaction = slow.begin()
        slow.execute(insert(AuditEvent.__table__).values(
            created_at=T0, account_id=world.other_account, actor_label="A slow transaction", action="suspended",
            reason_category="other", reason_note="Committed late", state_before="active", state_after="suspended"))
        _suspend(world)  # a later id, committed first
        assert relay_module.relay(now=T0)["queued"] == 1
        [gap] = _relay_state().gaps
        assert gap[0] == gap[1] == _relay_state().cursor_id - 1
        transaction.commit()
        assert relay_module.relay(now=T0 + timedelta(seconds=30))["queued"] == 1
        assert _relay_state().gaps == []
        # a rolled-back transaction's id never appears: watched for WEBHOOK_GAP_SECONDS (600), then given up
        transaction = slow.begin()
        slow.execute(insert(AuditEvent.__table__).values(created_at=T0, actor_label="Rolled back", action="suspended"))
        suspension.reactivate(_user(world.admin), world.account, "other", "Paid")
        _suspend(world, note="Again")
        transaction.rollback()
        relay_module.relay(now=T0 + timedelta(minutes=1))
        assert len(_relay_state().gaps) == 1
        relay_module.relay(now=T0 + timedelta(minutes=10))
        assert len(_relay_state().gaps) == 1
        relay_module.relay(now=T0 + timedelta(minutes=12))
        assert _relay_state().gaps == []
    finally:
        slow.close()
        engine.dispose()
    webhooks.deliver_due(now=T0)
    notes = sorted(r.json["data"]["reason"]["note"] for r in receiver.received)
    assert notes == ["Again", "Committed late", "Unpaid since May"]


# ---------------------------------------------------------------- the job

def test_the_tick_queues_one_job_a_minute_only_when_there_is_work(ctx, world, receiver):
    from rq import Queue

    from portal.domain.features import ticks
    from portal.extensions import get_redis

    assert ticks.tick(T0)["webhooks"] is None  # no endpoint
    _endpoint(world, receiver, ["account.suspended"])
    webhooks.run(now=T0)
    assert ticks.tick(T0)["webhooks"] is None  # nothing new
    _suspend(world)
    assert ticks.tick(T0)["webhooks"] == "webhooks-202612010900"
    assert ticks.tick(T0 + timedelta(seconds=30))["webhooks"] == "webhooks-202612010900"
    queue = Queue("default", connection=get_redis())
    ids = [job_id for job_id in queue.job_ids if job_id.startswith("webhooks-2")]
    assert ids == ["webhooks-202612010900"]
    kicked = [job_id for job_id in queue.job_ids if job_id.startswith("webhooks-kick-")]
    assert len(kicked) == 1  # the suspension kicked it at once too


def test_a_real_worker_relays_and_delivers(app, world, receiver, run_worker):
    with app.app_context():
        _endpoint_id, secret = _endpoint(world, receiver, ["account.suspended"])
        _suspend(world)  # kicks the job
        db.session.remove()
    result = run_worker("default", extra_env={"PORTAL_WEBHOOK_ALLOW_PRIVATE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    [got] = receiver.received
    assert got.signed_by(secret, tolerance=300) and got.json["type"] == "account.suspended"
    with app.app_context():
        assert [d.status for d in _deliveries()] == ["delivered"]
        db.session.remove()


def test_the_payload_is_compact_json_with_sorted_keys(ctx, world, receiver):
    _endpoint(world, receiver, ["account.suspended"])
    _suspend(world)
    webhooks.run(now=T0)
    body = receiver.received[0].body.decode()
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
