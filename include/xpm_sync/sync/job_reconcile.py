"""Finding the jobs the nightly window missed.

The overnight job pull reads the jobs created since shortly before the last run and XPM's current
list. A job created back-dated further than `job_backdate_days`, and already closed, is on neither.
Two checks catch it:

- every `job_reconcile_days`, one `job.api/list` over the last `job_reconcile_window_days` of
  created dates (one call, the same shape the nightly window reads);
- every incremental run, the stored job numbers are checked for gaps (XPM numbers jobs in
  sequence, per prefix); each missing number is asked for once with `job.api/get`. XPM's answer
  that the number is unknown (the job was deleted) is remembered, so it is not asked again.

What either check finds is loaded like any job and named in one Practice Activity entry.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sync import config
from xpm_sync.api.records import Record
from xpm_sync.errors import XpmBusinessError
from xpm_sync.store.models import Job
from xpm_sync.store.types import utcnow
from xpm_sync.sync.context import SyncContext
from xpm_sync.sync.load import alert, checkpoint, state

log = logging.getLogger(__name__)

ENTITY = "job_reconcile"
# XPM's dates are the practice's local dates, and AU/NZ run up to 14 hours ahead of UTC: every read
# of jobs by created date reaches this far past UTC's today, or a job created "today" there is missed.
AHEAD = timedelta(days=2)
# Gap fetches in one run; more wait for the next.
MOST_PER_RUN = 100
NUMBER = re.compile(r"^(?P<prefix>\D*)(?P<digits>\d+)$")

Loader = Callable[[Iterable[Record], set[str]], tuple[int, int]]


def gaps(numbers: Iterable[str], known_absent: set[str]) -> list[str]:
    """Numbers missing inside each run of sequential job numbers (same prefix and width).

    A prefix whose numbers are not mostly sequential (fewer than half of its range is used) is
    not checked: there the gaps say nothing about missing jobs.
    """
    runs: dict[tuple[str, int], set[int]] = defaultdict(set)
    for number in numbers:
        match = NUMBER.match(number)
        if match:
            runs[(match["prefix"], len(match["digits"]))].add(int(match["digits"]))
    missing: list[str] = []
    for (prefix, width), values in runs.items():
        low, high = min(values), max(values)
        if high - low + 1 > 2 * len(values):
            continue
        missing += [f"{prefix}{i:0{width}d}" for i in range(low, high + 1) if i not in values]
    return sorted(set(missing) - known_absent)


def _stored(ctx: SyncContext) -> set[str]:
    with Session(ctx.engine) as session:
        return set(session.scalars(select(Job.job_number).where(Job.tenant_id == ctx.tenant_id)))


def _window_due(last: str | None) -> bool:
    if last is None:
        return True
    return utcnow() - datetime.fromisoformat(last) >= timedelta(days=config.get_int("job_reconcile_days"))


def after_full_pass(ctx: SyncContext) -> None:
    """A full pass read every job: the wide window is not due again for `job_reconcile_days`."""
    cursor = _cursor(ctx)
    checkpoint(ctx, ENTITY, cursor={**cursor, "window_read_at": utcnow().isoformat()})


def _cursor(ctx: SyncContext) -> dict[str, Any]:
    row = state(ctx, ENTITY)
    return dict(row.cursor or {}) if row is not None else {}


def reconcile(ctx: SyncContext, load_jobs: Loader, seen: set[str]) -> tuple[int, int, list[str]]:
    """Look for jobs the store lacks; load them. Returns records read, rows written, numbers found."""
    cursor = _cursor(ctx)
    absent = set(cursor.get("absent") or [])
    window_read_at: str | None = cursor.get("window_read_at")
    stored = _stored(ctx)
    fetched = written = 0
    found: list[str] = []
    if _window_due(window_read_at):
        today = utcnow().date()
        start = today - timedelta(days=config.get_int("job_reconcile_window_days"))
        listed: set[str] = set()
        fetched, written = load_jobs(ctx.hook.jobs_created(start, today + AHEAD), listed)
        seen |= listed
        found += sorted(listed - stored)
        stored |= listed
        window_read_at = utcnow().isoformat()
    records: list[Record] = []
    for number in gaps(stored, absent)[:MOST_PER_RUN]:
        try:
            records.append(ctx.hook.job(number))
        except XpmBusinessError as exc:
            log.info("Job %s is not in XPM (%s); not asked for again", number, exc.description)
            absent.add(number)
    got: set[str] = set()
    f, w = load_jobs(records, got)
    fetched, written = fetched + f, written + w
    seen |= got
    found += sorted(got)
    checkpoint(ctx, ENTITY, cursor={"absent": sorted(absent), "window_read_at": window_read_at})
    if found:
        shown = ", ".join(found[:20]) + (f" and {len(found) - 20} more" if len(found) > 20 else "")
        message = (
            f"(Jobs) Reconciliation found {len(found)} job{'s' if len(found) != 1 else ''} missing from the "
            f"practice database and fetched {'them' if len(found) != 1 else 'it'}: {shown}."
        )
        alert(ctx, message, {"entity": "jobs", "found": found})
    return fetched, written, found
