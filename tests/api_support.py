"""What the API tests share: tokens made through the domain, and a client that sends them."""
import json

from portal.domain import api_tokens
from portal.extensions import db
from portal.models import Account, User

ALL_SCOPES = tuple(api_tokens.SCOPES)


def make_token(app, user_id, scopes=ALL_SCOPES, name="integration", expires=None):
    """Create a token as the user (a super admin); return its text."""
    with app.app_context():
        user = db.session.get(User, user_id)
        _token, text = api_tokens.create_token(user, name, list(scopes), expires=expires)
        db.session.remove()
    return text


class Api:
    """The test client with a bearer token: api.get(path), api.post(path, json, key=Idempotency-Key)."""

    def __init__(self, client, token=None):
        self.client = client
        self.token = token

    def headers(self, key=None, **extra):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        headers.update(extra)
        return headers

    def get(self, path, **kwargs):
        return self.client.get(path, headers=self.headers(), **kwargs)

    def post(self, path, body=None, key=None, raw=None, content_type="application/json", headers=None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(path, data=data, content_type=content_type,
                                headers=self.headers(key, **(headers or {})))


def number_of(app, account_id):
    """The account's number."""
    with app.app_context():
        number = db.session.get(Account, account_id).number
        db.session.remove()
    return number


def problem(response, status, kind):
    """Assert the response is a problem document of this status and type; return its body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/problem+json", response.mimetype
    body = response.get_json()
    assert body["type"] == f"/api/v1/problems/{kind}", body
    assert body["status"] == status and body["title"] and body["detail"]
    return body
