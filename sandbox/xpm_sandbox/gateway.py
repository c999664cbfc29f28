"""The API gateway's limits, the faults tests ask for, and the log of every call."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# What each fault does to the next matching call (see the README's sandbox section).
FAULT_KINDS = {
    "500": "the gateway's 500 with its odd body",
    "503": "503 ServiceNotAvailable",
    "401": "401 AuthenticationUnsuccessful, once (the token itself stays good)",
    "403": "403 AuthenticationUnsuccessful, once",
    "429": "429 with Retry-After `seconds` and X-Rate-Limit-Problem `problem` (minute or day)",
    "slow": "answer after `seconds`",
    "trickle": "send half the answer, wait `seconds`, then the rest",
    "hang": "answer after `seconds` (an hour by default): the caller's timeout",
    "late": "do what the call asks, then answer after `seconds` (an hour by default): a write applied but timed out",
    "applies_late": "wait `seconds` (an hour by default), then do what the call asks and answer: a write the caller "
    "gave up on that XPM still applies",
    "gzip_bomb": "200 with a gzip body of a few MB that unpacks to `seconds` MB (64 by default) of padding",
    "truncate": "200 with the body cut in half",
    "malformed": "200 with XML that is not well formed",
    "business_error": "200 + <Status>ERROR</Status> with `description`",
    "empty": "200 + OK with the answer's list emptied",
    "wrong_wrapper": "200 + OK with the answer's list under another element name",
    "revoke_grant": "the grant behind the calling token is revoked (as in Xero's connected apps); 401",
    "remove_privilege": "the calling user loses 'Authorise 3rd Party Full Access' for the practice; 403",
}


@dataclass
class Limits:
    concurrent: int = 5
    per_minute: int = 60
    per_day: int = 5000
    app_per_minute: int = 10_000


@dataclass
class Fault:
    kind: str
    path: str = ""
    remaining: int = 1
    seconds: float = 0.0
    description: str = "The sandbox was asked to fail this call"
    problem: str = "minute"


@dataclass
class Call:
    at: datetime
    method: str
    path: str
    query: str
    tenant_id: str
    status: int


@dataclass
class Verdict:
    """What the gateway decided for one call: 0 to go ahead, else a 429 with its headers."""

    status: int = 0
    problem: str = ""
    retry_after: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class Gateway:
    """Per-tenant rate limits as XPM applies them, plus faults on demand and a call log."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.limits = Limits()
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.writes: list[tuple[str, str]] = []  # the writes XPM applied, in order
        self.counters: Counter[str] = Counter()
        self._minute: dict[str, deque[datetime]] = {}
        self._app_minute: deque[datetime] = deque()
        self._day: dict[tuple[str, str], int] = {}
        self._in_flight: Counter[str] = Counter()
        # The most calls a practice had at the gateway at once, counting each arriving call
        # (admitted or refused): how many the client let loose together.
        self.peak_in_flight: Counter[str] = Counter()
        # The bytes of every XPM answer's body sent to each practice's callers (Xero's data egress).
        self.egress: Counter[str] = Counter()
        self._lock = threading.Lock()

    def admit(self, tenant_id: str) -> Verdict:
        """Count a call against the limits, or refuse it with a 429 verdict."""
        with self._lock:
            self.peak_in_flight[tenant_id] = max(self.peak_in_flight[tenant_id], self._in_flight[tenant_id] + 1)
            now = self.clock()
            window = self._minute.setdefault(tenant_id, deque())
            cutoff = now - timedelta(seconds=60)
            while window and window[0] <= cutoff:
                window.popleft()
            while self._app_minute and self._app_minute[0] <= cutoff:
                self._app_minute.popleft()
            day_key = (tenant_id, now.date().isoformat())
            used_today = self._day.get(day_key, 0)
            verdict = Verdict()
            if used_today >= self.limits.per_day:
                midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time())
                verdict = Verdict(429, "day", max(1, int((midnight - now).total_seconds())))
            elif len(window) >= self.limits.per_minute:
                verdict = Verdict(
                    429, "minute", max(1, int((window[0] + timedelta(seconds=60) - now).total_seconds()) + 1)
                )
            elif self._in_flight[tenant_id] >= self.limits.concurrent:
                verdict = Verdict(429, "concurrent", 1)
            else:
                window.append(now)
                self._app_minute.append(now)
                self._day[day_key] = used_today + 1
                self._in_flight[tenant_id] += 1
            verdict.headers = {
                "X-MinLimit-Remaining": str(max(0, self.limits.per_minute - len(window))),
                "X-DayLimit-Remaining": str(max(0, self.limits.per_day - self._day.get(day_key, 0))),
                "X-AppMinLimit-Remaining": str(max(0, self.limits.app_per_minute - len(self._app_minute))),
            }
            if verdict.status:
                verdict.headers["Retry-After"] = str(verdict.retry_after)
                verdict.headers["X-Rate-Limit-Problem"] = verdict.problem
            return verdict

    def release(self, tenant_id: str) -> None:
        with self._lock:
            self._in_flight[tenant_id] -= 1

    def take_fault(self, path: str, *, explicit: bool = False) -> Fault | None:
        """The first pending fault that matches `path`, used up by this call.

        With `explicit`, only a fault that names the path matches (identity endpoints are never hit
        by a fault meant for "any API call").
        """
        with self._lock:
            for fault in self.faults:
                if explicit and not fault.path:
                    continue
                if fault.path in path and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
            return None

    def applied(self, method: str, path: str) -> None:
        """A write XPM carried out (whether or not its answer reaches the caller)."""
        with self._lock:
            self.writes.append((method, path))

    def log(self, method: str, path: str, query: str, tenant_id: str, status: int) -> None:
        with self._lock:
            self.calls.append(Call(self.clock(), method, path, query, tenant_id, status))
            self.counters[f"{method} {path.split('?')[0]}"] += 1

    def endpoint_counts(self) -> dict[str, int]:
        """Calls per endpoint, with identifiers folded (`client.api/get/{id}`)."""
        with self._lock:
            folded: Counter[str] = Counter()
            for call in self.calls:
                parts = call.path.split("/")
                key = "/".join(parts[:2]) + ("/{id}" if len(parts) > 2 else "")
                if len(parts) > 3:
                    key += "/" + "/".join(parts[3:])
                folded[f"{call.method} {key}"] += 1
            return dict(folded)

    def served(self, tenant_id: str, size: int) -> None:
        with self._lock:
            self.egress[tenant_id] += size

    def reset_counts(self) -> None:
        with self._lock:
            self.egress.clear()
            self.calls.clear()
            self.writes.clear()
            self.counters.clear()
            self.peak_in_flight.clear()
