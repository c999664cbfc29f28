"""One request loop for every call to XPM: status to exception, retries, Retry-After, accounting.

Retried: transient failures (5xx, timeouts, dropped connections, an answer that broke off) with
exponential backoff, and 429 `minute` after waiting the `Retry-After` XPM gives. A 401
`insufficient_scope` is the token's scopes, not its age: no refresh, the connection is marked "needs
more access" and the call fails. Any other 401 is answered by one token refresh and one more try.
Not retried: authentication (a 401 after a fresh token, 403), 429 `day` (stop and resume next run),
business errors, bad payloads.

Every answer is read in full into a temporary file (memory first, disk past a few MB) before
anyone parses it: no database transaction ever waits on the network, and an answer over
`max_bytes` is refused while it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, TypeVar

import requests
import urllib3
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from xpm_sync.api import fingerprint
from xpm_sync.api.usage import Usage
from xpm_sync.errors import (
    RECONNECT_HINT,
    XpmAuthError,
    XpmDailyLimitReached,
    XpmError,
    XpmPayloadError,
    XpmRateLimitError,
    XpmScopeError,
    XpmTransientError,
    XpmUnanswered,
)

log = logging.getLogger(__name__)

BODY_IN_MESSAGES = 200
ERROR_BODY_LIMIT = 1 << 20
SPOOL_IN_MEMORY = 8 << 20
CHUNK = 1 << 16
T = TypeVar("T")


class TokenExpired(Exception):
    """401 TokenExpired: the access token lapsed in flight. Refresh once and try again."""


class Unauthorized(Exception):
    """401 AuthenticationUnsuccessful: the token was refused. One refresh and one more try decide."""


class _Retryable(XpmRateLimitError):
    """429 minute or concurrency: wait Retry-After, then retry."""


def _detail(reply: requests.Response) -> str:
    try:
        body = reply.json()
        return str(body.get("Detail") or body.get("Title") or "")
    except (ValueError, AttributeError):
        return reply.text[:BODY_IN_MESSAGES]


def needs_scope(scope: str, what: str) -> str:
    """What a person reads when the connection's scopes do not reach `what`."""
    return (
        f"XPM needs more access: {what} needs the scope {scope}, which this connection was not granted. "
        "An XPM administrator reconnects XPM (the XPM page's Reconnect, or `xpm-sync connect`) to grant it; "
        "a token refresh cannot."
    )


def raise_for_status(reply: requests.Response, what: str) -> None:
    """Map an XPM gateway answer to the error hierarchy; return quietly for 200."""
    status = reply.status_code
    if status == 200:
        return
    if status == 401:
        detail = _detail(reply)
        challenge = reply.headers.get("WWW-Authenticate", "")
        if "insufficient_scope" in challenge:
            found = re.search(r'scope="([^"]+)"', challenge)
            scope = found.group(1) if found else "a wider scope"
            raise XpmScopeError(needs_scope(scope, what), scope=scope, why=f"to call {what}")
        if detail.startswith("TokenExpired"):
            raise TokenExpired(detail)
        raise Unauthorized(f"XPM refused the access token for {what} (401 {detail}). " + RECONNECT_HINT)
    if status == 403:
        raise XpmAuthError(
            f"XPM refused access to the practice for {what} (403 {_detail(reply)}). The practice may have been "
            "disconnected, or the user who connected it is no longer an XPM Administrator with "
            "'Authorise 3rd Party Full Access'. " + RECONNECT_HINT
        )
    if status == 429:
        problem = (reply.headers.get("X-Rate-Limit-Problem") or "minute").lower()
        try:
            retry_after = float(reply.headers.get("Retry-After") or 60)
        except ValueError:
            retry_after = 60.0
        if problem in ("day", "daily"):
            raise XpmDailyLimitReached(
                f"XPM's daily limit for this practice is spent ({what}); try again in {retry_after / 3600:.1f} h. "
                "What was synced is kept; the next run resumes.",
                problem=problem,
                retry_after=retry_after,
            )
        raise _Retryable(f"XPM rate limit ({problem}) on {what}", problem=problem, retry_after=retry_after)
    if status >= 500:
        raise XpmTransientError(f"XPM answered {status} for {what}: {_detail(reply)}")
    raise XpmError(f"XPM answered {status} for {what}: {_detail(reply)}")


class StagedAnswer(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """An answer read in full (memory first, disk past a few MB), with the digest of its bytes
    taken as they arrived (`fingerprint.answer_digest` then need not read it again)."""

    digest: str | None = None


def stage(chunks: Iterable[bytes], max_bytes: int, what: str) -> StagedAnswer:
    """Write `chunks` to a new staged answer, refusing one over `max_bytes`; rewound to its start."""
    spool = StagedAnswer(max_size=SPOOL_IN_MEMORY)
    hasher = fingerprint.answer_hasher()
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise XpmPayloadError(
                    f"XPM's answer to {what} is over {max_bytes >> 20} MB; refused as implausible "
                    "([xpm_sync] max_answer_mb)"
                )
            spool.write(chunk)
            hasher.update(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    spool.digest = fingerprint.hex_of(hasher)
    return spool


class XpmApi:
    """Sends requests to one practice through a session whose auth adds the token and tenant."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        usage: Usage,
        *,
        refresh: Callable[[], object],
        on_auth_failure: Callable[[str], object],
        on_scope_missing: Callable[[str, str], object] = lambda scope, why: None,
        timeout: tuple[float, float] = (10.0, 300.0),
        max_attempts: int = 5,
        max_bytes: int = 512 << 20,
        backoff: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.usage = usage
        self.refresh = refresh
        self.on_auth_failure = on_auth_failure
        self.on_scope_missing = on_scope_missing
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_bytes = max_bytes
        self.backoff = backoff or wait_exponential(multiplier=2, min=2, max=60)
        self.sleep = sleep

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, XpmRateLimitError):
            return error.retry_after
        return float(self.backoff(state))

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        what = f"{method} {path}"
        self.usage.pace()
        try:
            reply = self.session.request(method, self.base_url + path, timeout=self.timeout, stream=True, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            # XPM may have received and counted it: so do we.
            self.usage.record(0, {})
            if method != "GET" and not isinstance(exc, requests.ConnectTimeout):
                raise XpmUnanswered(
                    f"XPM did not answer {what} ({type(exc).__name__}); it may have applied it, so it is not sent "
                    "again until XPM has been read"
                ) from None
            raise XpmTransientError(f"XPM did not answer {what} ({type(exc).__name__})") from None
        self.usage.record(reply.status_code, reply.headers)
        try:
            raise_for_status(reply, what)
        except BaseException:
            with contextlib.suppress(Exception):  # a refusal's body is egress too (read by now, and small)
                self.usage.add_bytes(len(reply.content[:ERROR_BODY_LIMIT]))
            reply.close()
            raise
        return reply

    def _call(self, method: str, path: str, read: Callable[[requests.Response], T], **kwargs: Any) -> T:
        """Send one call and `read` its answer, retrying what is worth retrying; auth failures are
        reported and raised."""
        refreshed = False
        retrying = Retrying(
            # A write with no answer may have been applied: it is never retried blindly.
            retry=retry_if_exception_type((XpmTransientError, _Retryable)) & retry_if_not_exception_type(XpmUnanswered),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        while True:
            try:
                for attempt in retrying:
                    with attempt:
                        reply = self._send(method, path, **kwargs)
                        try:
                            return read(reply)
                        finally:
                            reply.close()
            except (TokenExpired, Unauthorized) as exc:
                if refreshed:
                    message = f"XPM refused a freshly refreshed token ({exc}). " + RECONNECT_HINT
                    self.on_auth_failure(message)
                    raise XpmAuthError(message) from None
                refreshed = True
                self.refresh()
                continue
            except _Retryable as exc:
                raise XpmRateLimitError(str(exc), problem=exc.problem, retry_after=exc.retry_after) from None
            except XpmScopeError as exc:  # no refresh: the same scopes would come back
                self.on_scope_missing(exc.scope, exc.why)
                raise
            except XpmAuthError as exc:  # the day's limit (XpmDailyLimitReached) is not one: it passes by
                self.on_auth_failure(str(exc))
                raise
            raise AssertionError("unreachable")  # pragma: no cover

    def _stage(self, reply: requests.Response, what: str) -> StagedAnswer:
        """The whole answer, in a temporary file rewound to its start. An answer to a write that
        breaks off, or is too big to read, leaves unknown whether XPM applied the write. Its bytes
        as they came over the wire (before any gzip is undone) are counted, however it ends."""
        try:
            return self._read_all(reply, what)
        finally:
            self.usage.add_bytes(int(reply.raw.tell()))

    def _read_all(self, reply: requests.Response, what: str) -> StagedAnswer:
        reply.raw.decode_content = True
        write = not what.startswith("GET ")
        try:
            return stage(iter(lambda: reply.raw.read(CHUNK), b""), self.max_bytes, what)
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.ConnectionError,
            urllib3.exceptions.HTTPError,
        ) as exc:
            broke = f"XPM's answer to {what} broke off ({type(exc).__name__})"
            if write:
                raise XpmUnanswered(
                    f"{broke}; it may have applied it, so it is not sent again until XPM has been read"
                ) from None
            raise XpmTransientError(broke) from None
        except XpmPayloadError as exc:
            if write:
                raise XpmUnanswered(
                    f"{exc}; it may have applied the write, so it is not sent again until XPM has been read"
                ) from None
            raise

    def fetch(self, path: str, **params: Any) -> IO[bytes]:
        """GET `path` and return its whole answer, staged in a temporary file for the XML reader."""
        return self._call("GET", path, lambda reply: self._stage(reply, f"GET {path}"), params=params or None)

    def send_xml(self, method: str, path: str, body: str) -> IO[bytes]:
        """Send an XML body (a write) and return its answer, staged and capped like any read's."""
        what = f"{method} {path}"
        return self._call(
            method,
            path,
            lambda reply: self._stage(reply, what),
            data=body.encode("utf-8"),
            headers={"Content-Type": "application/xml; charset=utf-8"},
        )
