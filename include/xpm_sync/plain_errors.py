"""The errors of xpm-sync that need nothing but Python: what a person typed, what XPM answered.

`xpm_sync.errors` is where code takes them from; this module exists so that the command line can
check its arguments (and say what is wrong) without importing Airflow, which takes seconds.
"""

from __future__ import annotations

RECONNECT_HINT = "An XPM administrator must reconnect: run `xpm-sync connect` (or use the XPM integration page)."


class XpmError(Exception):
    """Base of every xpm-sync error about XPM."""


class XpmConfigError(XpmError):
    """The `xpm` connection is missing something or holds something it must not."""


class XpmLegacyConnectionError(XpmConfigError):
    """The connection still holds the API key and account key XPM switched off in 2020."""


class XpmOAuthError(XpmError):
    """The sign-in could not be completed (bad state, bad client, no practice, wrong practice)."""


class XpmRateLimitError(XpmError):
    """HTTP 429 from the gateway."""

    def __init__(self, message: str, *, problem: str, retry_after: float) -> None:
        super().__init__(message)
        self.problem = problem
        self.retry_after = retry_after


class XpmTransientError(XpmError):
    """A 5xx, a timeout or a dropped connection: worth retrying with backoff."""


class XpmBusinessError(XpmError):
    """XPM answered HTTP 200 with `<Status>ERROR</Status>`."""

    def __init__(self, description: str, *, method: str = "") -> None:
        super().__init__(f"XPM refused {method or 'the call'}: {description}")
        self.description = description


class XpmPayloadError(XpmError):
    """The answer was not XML we can trust: truncated, malformed, hostile or of the wrong shape."""


class XpmInputError(XpmError, ValueError):
    """Something a person typed (a client UUID, a job number, a limit) is not valid; nothing was called."""


class XpmSetupError(XpmConfigError):
    """The practice database is missing or behind the code: `xpm-sync setup` is the next step."""


class XpmUnanswered(XpmTransientError):
    """A write got no answer: XPM may or may not have applied it, so it is not sent again blindly."""
