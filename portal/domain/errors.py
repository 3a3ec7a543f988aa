"""Domain errors; one handler in portal.web.errors maps them to HTTP."""


class DomainError(Exception):
    """Base of every error a domain function raises on purpose; `message` is safe to show."""

    status_code = 400

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(DomainError):
    """Input was wrong; `field_errors` maps a field name to its message."""

    status_code = 422

    def __init__(self, field_errors, message="Please correct the highlighted fields."):
        super().__init__(message, field_errors=field_errors)
        self.field_errors = field_errors


class AccountNotFound(DomainError):
    """The account does not exist or is not visible to the actor."""

    status_code = 404

    def __init__(self, message="Account not found."):
        super().__init__(message)


class PermissionDenied(DomainError):
    """The gate refused the action; the message says why and what to do."""

    status_code = 403


class InvalidTransition(DomainError):
    """The account's state does not allow this change (e.g. suspending a suspended account)."""

    status_code = 409


class Conflict(DomainError):
    """Someone else changed the account first; nothing was changed by this request."""

    status_code = 409


class UnpaidInvoices(DomainError):
    """The action needs every invoice settled; `invoices` lists the open ones."""

    status_code = 409

    def __init__(self, message, invoices):
        super().__init__(message, invoices=invoices)
        self.invoices = invoices


class LoginRefused(DomainError):
    """The password was right but the gate refuses sign-in (for example a suspended account)."""

    status_code = 403


class InvalidCredentials(DomainError):
    """Unknown email or wrong password: one message for both, so no one learns which."""

    status_code = 401

    def __init__(self):
        super().__init__("Invalid email or password.")
