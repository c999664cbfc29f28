"""What can go wrong talking to XPM, as one small hierarchy.

Every message says what happened and what to do; none carries a token. Authentication errors
are also `AirflowFailException`s, so Airflow fails the task at once instead of retrying it. The
errors that need no Airflow live in `plain_errors` and are the same classes here.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from xpm_sync.plain_errors import (
    RECONNECT_HINT,
    XpmBusinessError,
    XpmConfigError,
    XpmError,
    XpmInputError,
    XpmLegacyConnectionError,
    XpmOAuthError,
    XpmPayloadError,
    XpmRateLimitError,
    XpmSetupError,
    XpmTransientError,
    XpmUnanswered,
)

__all__ = [
    "RECONNECT_HINT",
    "XpmError",
    "XpmConfigError",
    "XpmLegacyConnectionError",
    "XpmOAuthError",
    "XpmRateLimitError",
    "XpmTransientError",
    "XpmBusinessError",
    "XpmPayloadError",
    "XpmInputError",
    "XpmSetupError",
    "XpmUnanswered",
    "XpmAuthError",
    "XpmReconnectRequired",
    "XpmDailyLimitReached",
    "XpmScopeError",
    "XpmSyncIncomplete",
]


class XpmAuthError(XpmError, AirflowFailException):
    """XPM or Xero refused who we are. Not retried: someone has to act."""


class XpmReconnectRequired(XpmAuthError):
    """The grant is gone (expired, revoked, rotated away, privilege lost); the connection is marked."""


class XpmScopeError(XpmError, AirflowFailException):
    """The token's scopes do not reach what was asked (401 insufficient_scope, or known beforehand).
    Not an expiry: a refresh gives the same scopes; reconnecting with the scope fixes it."""

    def __init__(self, message: str, *, scope: str, why: str) -> None:
        super().__init__(message)
        self.scope = scope
        self.why = why  # what needs it: "to call GET staff.api/list", "to read staff"


class XpmDailyLimitReached(XpmRateLimitError, AirflowFailException):
    """The practice's 5,000 calls for the day are spent: stop, keep what is done, resume next run."""


class XpmSyncIncomplete(XpmError, AirflowFailException):
    """A run ended with entities that failed; each failure was logged where it happened."""
