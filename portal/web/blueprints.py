"""Every blueprint the portal registers, in one list."""
from portal.web import account_pages  # noqa: F401  (adds the one-account pages to accounts.bp)
from portal.web import accounts, auth, home, reservations
from portal.web import exemptions, rules, sweeps  # noqa: F401  (exemptions adds its posts to accounts.bp)
from portal.web import account_dunning, billing, class_bulk  # noqa: F401  (their pages are on accounts.bp)
from portal.web import classes, dunning
from portal.web import account_cancel, cancellation_import, cancellation_overview  # noqa: F401  (their pages join bps)
from portal.web import cancellations
from portal.web import campaigns, effects, ingest_api, ingestion, listings, profiles, social, surveys
from portal.web import api_tokens
from portal.web import audit_log, outbox
from portal.web import webhooks
from portal.web import overview

BLUEPRINTS = [auth.bp, home.bp, accounts.bp, reservations.bp, rules.bp, sweeps.bp, classes.bp, dunning.bp,
              cancellations.bp, ingestion.bp, ingest_api.bp, campaigns.bp, surveys.bp, listings.bp, profiles.bp,
              social.bp, effects.bp, api_tokens.bp]
BLUEPRINTS += [audit_log.bp, outbox.bp]
BLUEPRINTS += [webhooks.bp]
BLUEPRINTS += [overview.bp]
