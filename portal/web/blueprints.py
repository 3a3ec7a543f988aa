"""Every blueprint the portal registers, in one list."""
from portal.web import account_pages  # noqa: F401  (adds the one-account pages to accounts.bp)
from portal.web import accounts, auth, home, reservations

BLUEPRINTS = [auth.bp, home.bp, accounts.bp, reservations.bp]
