"""Tables of the portal, grouped by subject; importing this module registers them all."""
from portal.models.accounts import Account, CustomerClass, User, ROLES, STAFF_ROLES, CUSTOMER_ROLES  # noqa: F401
from portal.models.audit import AuditEvent, OutboxEmail  # noqa: F401
from portal.models.billing import Invoice, Payment, Reservation  # noqa: F401
from portal.models.cancellations import CancellationRequest, RetentionAttempt  # noqa: F401
from portal.models.features import (Campaign, CampaignEvent, IngestionKey, IngestionRecord, Listing,  # noqa: F401
                                   ListingConnection, Profile, SocialPost, SocialProfile, Survey, SurveyRequest)
from portal.models.dunning import DunningSchedule, ScheduleOverride  # noqa: F401
from portal.models.sweeps import SuspensionRule, SweepRun, SweepRunChunk, SweepSchedule  # noqa: F401
from portal.models.api import ApiToken, ApiTokenEvent, IdempotencyKey, WebhookDelivery, WebhookEndpoint  # noqa: F401
from portal.models.api import WebhookRelay  # noqa: F401
