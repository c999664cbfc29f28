"""What the practice should hear about its overnight sync before the working day: a night that had
not finished by the morning deadline, and nights that failed one after another.

- **The deadline** (`[xpm_sync] overnight_deadline`, practice time): the DAG `xpm_morning_check`
  runs then and looks at the night it belongs to, the last `overnight_cron` time before the
  deadline. A night is finished once its run has closed in Practice Activity ("Overnight sync
  finished", "partly failed", "refused" or "skipped"), whatever it said: a failure tells of itself.
  A night not closed by then (still running, or never started) gets one Alert entry and one email.
- **Failed nights in a row** (`[xpm_sync] failures_before_email`): when an overnight run closes as
  failed, the overnight runs that closed before it are counted back to the last success; at exactly
  that many failures, one Alert entry and one email. Nights skipped because XPM needs to reconnect
  are not counted: that outage has its own email.

Both read and write only the project's own Practice Activity, so neither needs Airflow's internals.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from xpm_sync import activity, alerts, config
from xpm_sync.store.engine import get_engine, writing
from xpm_sync.store.models import ActivityStatus, PracticeActivity
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)

OVERNIGHT = "Overnight sync "
# How each overnight run closes in Practice Activity (see sync.outcome and sync.tasks.start).
CLOSINGS = ("finished:", "partly failed:", "refused:", "skipped:")
LATE = "late_night"  # details key of the deadline's Alert: the night it was about
STREAK = "failed_nights"  # details key of the failed-nights Alert


@dataclass(frozen=True)
class Night:
    due: datetime  # when the overnight run was due (UTC)
    deadline: datetime  # when it should have closed by (UTC)

    def label(self) -> str:
        zone = ZoneInfo(config.schedule_timezone())
        due, deadline = self.due.astimezone(zone), self.deadline.astimezone(zone)
        return f"due {due:%a %d %b %H:%M}, deadline {deadline:%a %d %b %H:%M} {deadline:%Z}"


def night_before(now: datetime) -> Night | None:
    """The latest deadline at or before `now` and the overnight run it waits for: the last
    `overnight_cron` time before that deadline."""
    when = config.deadline_time()
    if when is None:
        return None
    zone = ZoneInfo(config.schedule_timezone())  # as xpm_overnight_sync and this DAG read their crons
    local = now.astimezone(zone)
    deadline = datetime.combine(local.date(), when, tzinfo=zone)
    if deadline > local:
        deadline -= timedelta(days=1)
    due = croniter(config.get("overnight_cron"), deadline).get_prev(datetime)
    return Night(due.astimezone(UTC), deadline.astimezone(UTC))


def _closings(session: Session, since: datetime | None = None, limit: int = 200) -> list[PracticeActivity]:
    """The overnight runs' closing entries, newest first."""
    query = (
        select(PracticeActivity)
        .where(
            activity.of_practice(),
            PracticeActivity.category == "Sync",
            or_(*(PracticeActivity.message.startswith(OVERNIGHT + word) for word in CLOSINGS)),
        )
        .order_by(PracticeActivity.id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(PracticeActivity.occurred_at >= since)
    return list(session.scalars(query))


def _already(session: Session, key: str, value: Any) -> bool:
    """Whether an Alert about this (the night, the streak) was already recorded."""
    alerts_ = session.scalars(
        select(PracticeActivity)
        .where(
            activity.of_practice(),
            PracticeActivity.status == ActivityStatus.ALERT.value,
            PracticeActivity.category == "Sync",
        )
        .order_by(PracticeActivity.id.desc())
        .limit(50)
    )
    return any((e.details or {}).get(key) == value for e in alerts_)


def not_connected(engine: Engine | None = None) -> str | None:
    """Why there is no night to check (XPM was never connected, or disconnected), else None."""
    from xpm_sync.sync.policy import NOT_CONNECTED, connection_problem

    problem = connection_problem(engine or get_engine(), config.get("conn_id"))
    return problem if problem and problem.startswith(NOT_CONNECTED) else None


def check_deadline(*, engine: Engine | None = None, now: datetime | None = None, running: int | None = None) -> str:
    """At the deadline: one Alert and one email if the night's overnight run has not closed. Returns
    what it found, for the task's log. `running` is how many overnight runs Airflow has going."""
    engine = engine or get_engine()
    night = night_before(now or utcnow())
    if night is None:
        return "No morning deadline is set ([xpm_sync] overnight_deadline is empty)."
    with Session(writing(engine)) as session, session.begin():
        closed = _closings(session, since=night.due, limit=1)
        if closed:
            return f"The overnight sync closed in time ({night.label()}): {closed[0].message[:120]}"
        if _already(session, LATE, night.due.isoformat()):
            return f"The late overnight sync ({night.label()}) was already reported."
        practice = _practice(session)
        state = _run_state(running)
        message = (
            f"The overnight sync of {practice} had not finished by the morning deadline ({night.label()}): "
            f"{state}. Today's data from XPM may be out of date until it does."
        )
        activity.record(
            session, ActivityStatus.ALERT, "Sync", message, details={LATE: night.due.isoformat()}, actor="morning check"
        )
    _email(f"Overnight sync not finished: {practice}", message)
    return message


def _run_state(running: int | None) -> str:
    """What Airflow says of the night's run, in words: `running` is how many overnight runs it has
    going (None when it could not be asked)."""
    if running is None:
        return "it has not closed"
    if running:
        return "it is still running"
    return "it has not started (is the Airflow scheduler running, and the DAG unpaused?)"


def after_overnight(*, engine: Engine | None = None) -> int:
    """After an overnight run closed: the failed nights in a row now; one Alert and one email when
    that reaches `failures_before_email`."""
    engine = engine or get_engine()
    limit = config.get_int("failures_before_email")
    with Session(writing(engine)) as session, session.begin():
        streak, first = 0, None
        for entry in _closings(session):
            if entry.message.startswith(OVERNIGHT + "skipped:"):
                continue  # the reconnect outage: emailed on its own
            if entry.status != ActivityStatus.FAILURE.value:
                break
            streak, first = streak + 1, entry.id
        if limit <= 0 or streak != limit:
            return streak
        practice = _practice(session)
        message = (
            f"The overnight sync of {practice} has failed {streak} nights in a row. The entries before this "
            "one say what failed each night; until it succeeds, the practice database falls behind XPM."
        )
        activity.record(
            session, ActivityStatus.ALERT, "Sync", message, details={STREAK: streak, "first_entry": first},
            actor="xpm-sync",
        )  # fmt: skip
    _email(f"Overnight sync failed {streak} nights in a row: {practice}", message)
    return streak


def _practice(session: Session) -> str:
    from xpm_sync.store.locks import active_connection

    row = session.scalars(active_connection(config.get("conn_id"))).first()
    return (row.tenant_name if row is not None else None) or "the practice"


def _email(subject: str, message: str) -> None:
    """Send it; a failure to send is logged, never a failed check (the Alert entry stands)."""
    try:
        alerts.send_email(subject, f"<p>{html.escape(message)}</p>")
    except Exception as exc:
        log.warning("The email %r could not be sent (%s)", subject, type(exc).__name__)
