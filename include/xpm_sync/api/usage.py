"""Counting every call to XPM per practice and day, and pacing by what XPM says is left."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date

from sqlalchemy import Engine, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from xpm_sync.store.models import ApiUsage
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)

# Slow down once fewer than this many calls are left in the minute (5 callers may share it).
PACE_BELOW = 8
MINUTE = 60.0


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class Usage:
    """Records each call's outcome and XPM's remaining limits in `api_usage`, and paces calls."""

    def __init__(
        self,
        engine: Engine | None,
        tenant_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self.sleep = sleep
        self.clock = clock
        self._window: deque[float] = deque()
        self.calls = 0
        self.min_remaining: int | None = None
        self.day_remaining: int | None = None

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
        if self.engine is None:
            return
        row = {
            "tenant_id": self.tenant_id,
            "day": utcnow().date(),
            "calls": 1,
            "errors": 1 if status == 0 or (status >= 400 and status != 429) else 0,
            "rate_limited": 1 if status == 429 else 0,
            "min_remaining": self.min_remaining,
            "day_remaining": day,
            "app_min_remaining": _header_int(headers, "X-AppMinLimit-Remaining"),
            "updated_at": utcnow(),
        }
        table: Table = ApiUsage.__table__  # type: ignore[assignment]
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(table).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "day"],
            set_={
                "calls": table.c.calls + 1,
                "errors": table.c.errors + stmt.excluded.errors,
                "rate_limited": table.c.rate_limited + stmt.excluded.rate_limited,
                # An answer without the limit headers (a gateway refusal, a timeout) keeps XPM's last report.
                "min_remaining": func.coalesce(stmt.excluded.min_remaining, table.c.min_remaining),
                "day_remaining": func.coalesce(stmt.excluded.day_remaining, table.c.day_remaining),
                "app_min_remaining": func.coalesce(stmt.excluded.app_min_remaining, table.c.app_min_remaining),
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with Session(self.engine) as session, session.begin():
            session.execute(stmt)

    def pace(self) -> None:
        """Before a call: when the minute's calls are nearly spent, wait for room to free up.

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


def calls_today(engine: Engine, tenant_id: str, day: date | None = None) -> tuple[int, int | None]:
    """(calls made, calls XPM last said were left) for the practice on `day` (default today)."""
    with Session(engine) as session:
        row = session.get(ApiUsage, (tenant_id, day or utcnow().date()))
        return (row.calls, row.day_remaining) if row else (0, None)
