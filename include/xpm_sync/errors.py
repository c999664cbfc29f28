"""What can go wrong talking to XPM, as one small hierarchy.

Every message says what happened and what to do; none carries a token. Authentication errors
are also `AirflowFailException`s, so Airflow fails the task at once instead of retrying it.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

RECONNECT_HINT = "An XPM administrator must reconnect: run `xpm-sync connect` (or use the XPM integration page)."


class XpmError(Exception):
    """Base of every xpm-sync error about XPM."""


class XpmConfigError(XpmError):
    """The `xpm` connection is missing something or holds something it must not."""


class XpmLegacyConnectionError(XpmConfigError):
    """The connection still holds the API key and account key XPM switched off in 2020."""


class XpmAuthError(XpmError, AirflowFailException):
    """XPM or Xero refused who we are. Not retried: someone has to act."""


class XpmReconnectRequired(XpmAuthError):
    """The grant is gone (expired, revoked, rotated away, privilege lost); the connection is marked."""


class XpmOAuthError(XpmError):
    """The sign-in could not be completed (bad state, bad client, no practice, wrong practice)."""


class XpmRateLimitError(XpmError):
    """HTTP 429 from the gateway."""

    def __init__(self, message: str, *, problem: str, retry_after: float) -> None:
        super().__init__(message)
        self.problem = problem
        self.retry_after = retry_after


class XpmDailyLimitReached(XpmRateLimitError, AirflowFailException):
    """The practice's 5,000 calls for the day are spent: stop, keep what is done, resume next run."""


class XpmTransientError(XpmError):
    """A 5xx, a timeout or a dropped connection: worth retrying with backoff."""


class XpmBusinessError(XpmError):
    """XPM answered HTTP 200 with `<Status>ERROR</Status>`."""

    def __init__(self, description: str, *, method: str = "") -> None:
        super().__init__(f"XPM refused {method or 'the call'}: {description}")
        self.description = description


class XpmPayloadError(XpmError):
    """The answer was not XML we can trust: truncated, malformed, hostile or of the wrong shape."""


class XpmSyncIncomplete(XpmError, AirflowFailException):
    """A run ended with entities that failed; each failure was logged where it happened."""


class XpmInputError(XpmError, ValueError):
    """Something a person typed (a client UUID, a job number, a limit) is not valid; nothing was called."""


class XpmSetupError(XpmConfigError):
    """The practice database is missing or behind the code: `xpm-sync setup` is the next step."""


class XpmUnanswered(XpmTransientError):
    """A write got no answer: XPM may or may not have applied it, so it is not sent again blindly."""
