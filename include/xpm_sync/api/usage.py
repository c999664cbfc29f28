"""Counting every call to XPM and the bytes of its answers per practice and day, and pacing by what
XPM says is left."""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from xpm_sync.store.engine import writing
from xpm_sync.store.models import ApiUsage, AppMinute, table_of
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)

# Slow down once fewer than this many calls are left in the minute (5 callers may share it).
PACE_BELOW = 8
MINUTE = 60.0
# Counts are written to the database every this many calls or seconds (see `Usage`).
FLUSH_CALLS = 25
FLUSH_SECONDS = 5.0
# The app's calls over every practice: read from the database at most this often, and waited on when
# within a twentieth of `[xpm_sync] app_calls_per_minute`, or when XPM reports fewer than this left.
APP_READ_SECONDS = 5.0
APP_PACE_BELOW = 100
APP_KEPT = timedelta(hours=1)  # minutes older than this are deleted when counts are written


def _minute(wall: float) -> datetime:
    return datetime.fromtimestamp(wall - wall % MINUTE, UTC)


_live: weakref.WeakSet[Usage] = weakref.WeakSet()


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class _Tally:
    """Calls counted here and not yet written to `api_usage`, for one day."""

    calls: int = 0
    bytes: int = 0
    errors: int = 0
    rate_limited: int = 0
    min_remaining: int | None = None
    day_remaining: int | None = None
    app_min_remaining: int | None = None
    updated_at: datetime | None = None


class Usage:
    """Counts each call's outcome and XPM's remaining limits, and paces calls.

    The counts reach `api_usage` in batches, not one transaction per call: every `FLUSH_CALLS`
    calls or `FLUSH_SECONDS`, when this process reads the day's count (`calls_today`), when a task
    ends (`flush`) and at exit. The day's count another worker sees is therefore short by at most
    `FLUSH_CALLS - 1` calls a process; the custom-field budget keeps a fifth of XPM's limit in
    hand, far more than that, and XPM's own `X-DayLimit-Remaining` is recorded with every batch.
    A process killed outright loses at most that many counts.
    """

    def __init__(
        self,
        engine: Engine | None,
        tenant_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        app_limit: int | None = None,
    ) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self.sleep = sleep
        self.clock = clock
        self.wall = wall  # the time every worker of the app counts minutes by
        self.app_limit = app_limit
        self.app_min_remaining: int | None = None
        self._app_pending: dict[datetime, int] = {}
        self._app_seen: tuple[float, dict[datetime, int]] | None = None
        self._window: deque[float] = deque()
        self.calls = 0
        self.bytes = 0
        self.min_remaining: int | None = None
        self.day_remaining: int | None = None
        self._pending: dict[date, _Tally] = {}
        self._flushed_at = clock()
        self._lock = threading.Lock()
        _live.add(self)

    def record(self, status: int, headers: Mapping[str, str]) -> None:
        """Count one call: its HTTP status, or 0 for one that got no answer (a timeout)."""
        self.calls += 1
        if status == 429:
            # Not counted by XPM; the Retry-After wait that follows governs the next call.
            self.min_remaining = None
        else:
            self._window.append(self.clock())
            self.min_remaining = _header_int(headers, "X-MinLimit-Remaining")
        day = _header_int(headers, "X-DayLimit-Remaining")
        self.day_remaining = day if day is not None else self.day_remaining
        app = _header_int(headers, "X-AppMinLimit-Remaining")
        self.app_min_remaining = app if app is not None else self.app_min_remaining
        if self.engine is None:
            return
        now = utcnow()
        with self._lock:
            if status != 429:  # XPM counts a call it answered against the app's minute too
                minute = _minute(self.wall())
                self._app_pending[minute] = self._app_pending.get(minute, 0) + 1
            tally = self._pending.setdefault(now.date(), _Tally())
            tally.calls += 1
            tally.errors += 1 if status == 0 or (status >= 400 and status != 429) else 0
            tally.rate_limited += 1 if status == 429 else 0
            # An answer without the limit headers (a gateway refusal, a timeout) keeps XPM's last report.
            tally.min_remaining = self.min_remaining if self.min_remaining is not None else tally.min_remaining
            tally.day_remaining = day if day is not None else tally.day_remaining
            tally.app_min_remaining = app if app is not None else tally.app_min_remaining
            tally.updated_at = now
            due = tally.calls >= FLUSH_CALLS or self.clock() - self._flushed_at >= FLUSH_SECONDS
        if due:
            # A call that XPM answered is not failed for want of writing its count: the counts are
            # kept for the next write (logged by `flush`).
            with contextlib.suppress(Exception):
                self.flush()

    def add_bytes(self, size: int) -> None:
        """Count the bytes of an answer's body as they came over the wire (Xero's data egress)."""
        self.bytes += size
        if self.engine is None or size <= 0:
            return
        with self._lock:
            now = utcnow()
            tally = self._pending.setdefault(now.date(), _Tally())
            tally.bytes += size
            tally.updated_at = tally.updated_at or now  # a row's updated_at is never null
            alone = tally.calls == 0  # the call's own count was written just before: write its bytes too
        if alone:
            with contextlib.suppress(Exception):  # kept for the next write (logged by `flush`)
                self.flush()

    def flush(self) -> None:
        """Write the counts not yet written, in one transaction; on failure they are kept for the next."""
        if self.engine is None:
            return
        with self._lock:
            pending, self._pending = self._pending, {}
            minutes, self._app_pending = self._app_pending, {}
            self._flushed_at = self.clock()
        if not pending and not minutes:
            return
        table = table_of(ApiUsage)
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        try:
            with Session(writing(self.engine)) as session, session.begin():
                _count_minutes(session, insert, minutes)
                for day, tally in pending.items():
                    stmt = insert(table).values(tenant_id=self.tenant_id, day=day, **vars(tally))
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["tenant_id", "day"],
                        set_={
                            "calls": table.c.calls + stmt.excluded.calls,
                            "bytes": table.c.bytes + stmt.excluded.bytes,
                            "errors": table.c.errors + stmt.excluded.errors,
                            "rate_limited": table.c.rate_limited + stmt.excluded.rate_limited,
                            "min_remaining": func.coalesce(stmt.excluded.min_remaining, table.c.min_remaining),
                            "day_remaining": func.coalesce(stmt.excluded.day_remaining, table.c.day_remaining),
                            "app_min_remaining": func.coalesce(
                                stmt.excluded.app_min_remaining, table.c.app_min_remaining
                            ),
                            "updated_at": stmt.excluded.updated_at,
                        },
                    )
                    session.execute(stmt)
        except Exception:
            log.warning(
                "Could not record %s XPM calls yet; kept for the next try", sum(t.calls for t in pending.values())
            )
            with self._lock:
                for minute, calls in minutes.items():
                    self._app_pending[minute] = self._app_pending.get(minute, 0) + calls
                for day, tally in pending.items():
                    kept = self._pending.setdefault(day, _Tally())
                    for name in ("calls", "bytes", "errors", "rate_limited"):
                        setattr(kept, name, getattr(kept, name) + getattr(tally, name))
                    for name in ("min_remaining", "day_remaining", "app_min_remaining", "updated_at"):
                        if getattr(kept, name) is None:
                            setattr(kept, name, getattr(tally, name))
            raise

    def pace(self) -> None:
        """Before a call: wait while the practice's minute, or the app's over every practice, is nearly spent."""
        self.pace_practice()
        self.pace_app()

    def pace_practice(self) -> None:
        """When the practice's minute's calls are nearly spent, wait for room to free up.

        XPM counts calls over a moving minute. Our own oldest call in it leaves the minute at a
        known time, so that is what we wait for; if the calls were made elsewhere (other workers),
        we wait a few seconds per missing call and let Retry-After be the backstop.
        """
        if self.min_remaining is None or self.min_remaining >= PACE_BELOW:
            return
        now = self.clock()
        while self._window and self._window[0] <= now - MINUTE:
            self._window.popleft()
        wait = self._window[0] + MINUTE - now if self._window else float(PACE_BELOW - self.min_remaining)
        if wait > 0:
            log.info("XPM reports %s calls left this minute; waiting %.0f s", self.min_remaining, wait)
            self.sleep(wait)
            self.min_remaining = None

    def pace_app(self) -> None:
        """Before a call: when the app's calls this minute, over every practice (counted in the practice
        database), or XPM's own report of them, are nearly spent, wait for the next minute."""
        if self.engine is None:
            return
        limit = self.app_limit if self.app_limit is not None else _app_limit()
        for _ in range(3):  # each wait moves to a new minute; three cover a moving minute's tail
            used = self.app_used()
            low = self.app_min_remaining is not None and self.app_min_remaining < APP_PACE_BELOW
            if used < limit - limit // 20 and not low:
                return
            wait = MINUTE - self.wall() % MINUTE + 1
            log.info("The app's XPM calls this minute are nearly spent (%.0f of %s); waiting %.0f s", used, limit, wait)
            self.sleep(wait)
            self._app_seen, self.app_min_remaining = None, None

    def app_used(self) -> float:
        """The app's calls in the moving minute, over every practice: this minute's and the part of
        the last minute's still inside it, as the database last said plus this process's unwritten."""
        now = self.wall()
        if self._app_seen is None or now - self._app_seen[0] >= APP_READ_SECONDS:
            since = _minute(now) - timedelta(seconds=MINUTE)
            with Session(self.engine) as session:
                rows = session.execute(select(AppMinute.minute, AppMinute.calls).where(AppMinute.minute >= since))
                self._app_seen = (now, {minute: calls for minute, calls in rows})
        counts = dict(self._app_seen[1])
        with self._lock:
            for minute, calls in self._app_pending.items():
                counts[minute] = counts.get(minute, 0) + calls
        current = _minute(now)
        previous = current - timedelta(seconds=MINUTE)
        inside = 1 - (now % MINUTE) / MINUTE
        return counts.get(current, 0) + counts.get(previous, 0) * inside


def _app_limit() -> int:
    from xpm_sync import config

    return config.get_int("app_calls_per_minute")


def _count_minutes(session: Session, insert: Any, minutes: dict[datetime, int]) -> None:
    """Add this process's calls to the app's minutes, and forget minutes nobody paces by any more."""
    if not minutes:
        return
    table = table_of(AppMinute)
    for minute, calls in minutes.items():
        stmt = insert(table).values(minute=minute, calls=calls)
        session.execute(
            stmt.on_conflict_do_update(index_elements=["minute"], set_={"calls": table.c.calls + stmt.excluded.calls})
        )
    session.execute(delete(AppMinute).where(AppMinute.minute < max(minutes) - APP_KEPT))


def flush_all(tenant_id: str | None = None) -> None:
    """Write every count this process holds (for one practice, or all)."""
    for usage in list(_live):
        if tenant_id is None or usage.tenant_id == tenant_id:
            # A failed write is logged by `flush` and its counts kept for the next one.
            with contextlib.suppress(Exception):
                usage.flush()


def calls_today(engine: Engine, tenant_id: str, day: date | None = None) -> tuple[int, int | None]:
    """(calls made, calls XPM last said were left) for the practice on `day` (default today),
    this process's own calls included."""
    flush_all(tenant_id)
    with Session(engine) as session:
        row = session.get(ApiUsage, (tenant_id, day or utcnow().date()))
        return (row.calls, row.day_remaining) if row else (0, None)


def egress(engine: Engine, tenant_id: str, day: date | None = None) -> tuple[int, int]:
    """(bytes today, bytes this calendar month) of XPM's answers to the practice, this process's included."""
    flush_all(tenant_id)
    today = day or utcnow().date()
    with Session(engine) as session:
        rows = session.execute(
            select(ApiUsage.day, ApiUsage.bytes).where(
                ApiUsage.tenant_id == tenant_id, ApiUsage.day >= today.replace(day=1), ApiUsage.day <= today
            )
        ).all()
    return sum(b for d, b in rows if d == today), sum(b for _d, b in rows)


def calls_left(made: int, reported: int | None, limit: int) -> int:
    """What is left of the day's limit: XPM's own figure when it has sent one (XPM does not count a
    call it refused, which `made` does, so the two need not add up to the limit), else the limit
    less what was made here."""
    return max(0, limit - made if reported is None else reported)


atexit.register(flush_all)
