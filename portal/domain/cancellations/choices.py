"""The short lists a cancellation request is described with, in display order."""

CHANNELS = {"call": "Call", "text": "Text", "email": "Email"}
REASON_CODES = {
    "too_expensive": "Too expensive",
    "not_using": "Not using it",
    "competitor": "Moving to a competitor",
    "missing_feature": "Missing a feature",
    "service_problem": "Service problem",
    "temporary_pause": "Temporary pause",
    "other": "Other",
}
OFFERS = {"discount": "Discount", "pause": "Pause", "downgrade": "Downgrade", "none": "None"}
ANSWERS = {"declined": "Declined", "accepted": "Accepted", "undecided": "Undecided"}
OUTCOMES = {"open": "Open", "retained": "Retained", "paused": "Paused", "cancelled": "Cancelled",
            "withdrawn": "Withdrawn"}
# What a retention attempt may end the request as ("open": the request stays open; cancelling is its own action).
ATTEMPT_OUTCOMES = ("open", "retained", "paused", "withdrawn")
SAVED = ("retained", "paused")


def label(choices, code):
    """Return the label of code in choices, or code itself for a value no longer listed."""
    return choices.get(code, code or "")
