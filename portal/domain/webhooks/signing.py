"""The signature of a delivery: `Portal-Signature: t=<unix time>,v1=<hex HMAC-SHA256>` (the Stripe scheme).

The portal signs "{t}.{body}" (the timestamp, a dot and the exact bytes of the body) with the endpoint's
secret. A receiver recomputes it with the secret it was shown, compares in constant time, and refuses a
timestamp too far from its clock (a replayed request). `verify` does exactly that, for receivers written in
Python and for the tests.
"""
import hashlib
import hmac
import time

SIGNATURE_HEADER = "Portal-Signature"
DEFAULT_TOLERANCE = 300  # seconds


def _digest(secret, timestamp, body):
    body = body if isinstance(body, bytes) else body.encode("utf-8")
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret, timestamp, body):
    """Return the Portal-Signature header's value for body (bytes or text) sent at timestamp (unix seconds)."""
    return f"t={int(timestamp)},v1={_digest(secret, timestamp, body)}"


def verify(header, secret, body, tolerance=DEFAULT_TOLERANCE, now=None):
    """Return True if header signs body with secret within tolerance seconds of now (unix seconds).

    Args:
        header: the Portal-Signature header as received.
        secret: the endpoint's signing secret.
        body: the raw request body (bytes), exactly as received.
        tolerance: the largest accepted distance from now; None to skip the time check.
        now: the receiver's clock (default time.time()).
    """
    parts = {}
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))
