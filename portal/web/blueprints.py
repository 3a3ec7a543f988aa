"""Every blueprint the portal registers, in one list."""
from portal.web import accounts, auth, home, reservations

BLUEPRINTS = [auth.bp, home.bp, accounts.bp, reservations.bp]
