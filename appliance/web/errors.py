"""What the panel refuses, as ApplianceErrors: the one error middleware turns each into a
JSON 4xx (or, for a page, a redirect to sign in)."""

from __future__ import annotations

from appliance.errors import ApplianceError


class NotSignedIn(ApplianceError, PermissionError):
    """No valid session: sign in first (401)."""


class BadRequestBody(ApplianceError, ValueError):
    """A body no client of ours would send: a broken form, bytes that are not in its
    charset, JSON nested past any sane depth (400). Answered as JSON even on a page's
    address: no person filled that form in."""


class CsrfRejected(ApplianceError, PermissionError):
    """A state-changing request without this session's CSRF token, or from another origin."""


class WrongPassword(ApplianceError, PermissionError):
    """The password (or setup token) did not match."""


class TooManyAttempts(ApplianceError):
    """Failed sign-ins from this client: it must wait ``retry_after`` seconds (429)."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed attempts; try again in {retry_after} s")


class ActionRefused(ApplianceError):
    """The action cannot be done in the present state (409): say what is in the way."""
