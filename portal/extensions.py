"""Extensions, created unbound and attached in create_app."""
from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from redis import Redis
from rq import Queue
from sqlalchemy import MetaData

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


class PortalLimiter(Limiter):
    """Flask-Limiter, bound to each app this process builds (the tests build many).

    Flask-Limiter keeps "storage is down, counting in memory" on the extension; a new app starts
    with its own storage assumed up, and checks it on its first request.
    """

    def init_app(self, app):
        """Bind to app with its storage assumed up."""
        super().init_app(app)
        self._storage_dead = False


limiter = PortalLimiter(key_func=get_remote_address, default_limits=[])

QUEUE_DEFAULT = "default"
QUEUE_MAIL = "mail"
QUEUE_SWEEPS = "sweeps"


def get_redis():
    """Return the Redis connection for this app (one per app)."""
    conn = current_app.extensions.get("portal_redis")
    if conn is None:
        conn = Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
        current_app.extensions["portal_redis"] = conn
    return conn


def get_queue(name=QUEUE_DEFAULT):
    """Return the RQ queue called name on this app's Redis."""
    return Queue(name, connection=get_redis(), default_timeout=600)
