"""What a sync tells Practice Activity: each entity's result or failure, an entity that was not run,
and the one closing entry of a whole run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from xpm_sync import activity
from xpm_sync.errors import XpmAuthError, XpmError, XpmRateLimitError
from xpm_sync.store.engine import get_engine, writing
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.entities import ENTITIES
from xpm_sync.sync.policy import Request

SHOWN_FAILURES = 5


def log_success(engine: Engine, ctx: SyncContext, label: str, result: EntityResult) -> None:
    verb = "would write" if ctx.dry_run else "wrote"
    counts = f"read {result.fetched}, {verb} {result.written}, {result.calls} XPM calls"
    message = f"{label} synced: {counts}"
    if result.removed:
        message += f", {result.removed} marked removed in XPM"
    if result.held_back:
        message += f", {result.held_back} removals held back (see the Alert)"
    if result.skipped:
        message = f"{label} {result.skipped}"
    if result.note:
        message += f" ({result.note})"
    status = ActivityStatus.SUCCESS if result.complete else ActivityStatus.IN_PROGRESS
    details: dict[str, Any] = {**result.as_dict(), "run_id": ctx.run_id}
    if result.failures:
        status = ActivityStatus.FAILURE
        shown = "; ".join(f"{f['key']}: {f['error']}" for f in result.failures[:SHOWN_FAILURES])
        more = len(result.failures) - SHOWN_FAILURES
        message = (
            f"{label} partly failed: XPM refused {len(result.failures)} record(s), whose stored data was kept "
            f"and which are tried again next run ({shown}{f'; and {more} more' if more > 0 else ''}). {counts}"
        )
        details["entity"] = ctx.entity
        details["failures"] = result.failures[:100]
    with Session(writing(engine)) as session, session.begin():
        activity.record(session, status, "Sync", message, details=details, actor=ctx.actor, tenant_id=ctx.tenant_id)


def record_not_run(name: str, request: Request, unfinished: Sequence[str]) -> None:
    """An entity asked for that was not run, because what it needs did not finish in this run."""
    label = f"({ENTITIES[name].label})"
    with Session(writing(get_engine(request.store_url))) as session, session.begin():
        activity.record(
            session,
            ActivityStatus.FAILURE,
            "Sync",
            f"{label} not run: what it needs ({', '.join(unfinished)}) did not finish in this run.",
            details={"run_id": request.run_id, "entity": name, "not_run": True},
            actor=request.actor,
        )


def failures_in_run(engine: Engine, run_id: str | None) -> tuple[list[str], dict[str, str], list[str]]:
    """The entities that failed in this run, those refused with the reason, and those not run.

    An entity's last entry in the run decides: a task that failed and then succeeded on its
    retry did finish (its failed try stays in Practice Activity, above the retry's success)."""
    if not run_id:
        return [], {}, []
    with Session(engine) as session:
        entries = activity.recent(session, 200, category="Sync")
    failed, refused, decided, not_run = set(), {}, set(), set()
    for e in entries:  # newest first
        details = e.details or {}
        entity = details.get("entity")
        if details.get("run_id") != run_id or entity is None or entity in decided:
            continue
        if e.status == ActivityStatus.ALERT.value:  # said during a try (removals held back), not how it ended
            continue
        decided.add(entity)
        if e.status != ActivityStatus.FAILURE.value:
            continue
        if details.get("refused"):
            refused[str(entity)] = e.message
        elif details.get("not_run"):
            not_run.add(str(entity))
        else:
            failed.add(str(entity))
    return sorted(failed), refused, sorted(not_run)


def log_failure(engine: Engine, request: Request, name: str, tenant_id: str | None, exc: Exception) -> None:
    label = f"({ENTITIES[name].label})"
    if isinstance(exc, XpmRateLimitError):
        message = f"{label} failed due to rate limiting: {exc}"
    elif isinstance(exc, XpmAuthError):
        message = f"{label} failed: authentication with XPM failed. {exc}"
    elif isinstance(exc, XpmError):
        message = f"{label} failed: {exc}"
    else:
        message = f"{label} failed: {type(exc).__name__} (the details are in this task's log)"
    with Session(writing(engine)) as session, session.begin():
        activity.record(
            session,
            ActivityStatus.FAILURE,
            "Sync",
            message,
            details={"run_id": request.run_id, "entity": name, "error": type(exc).__name__},
            actor=request.actor,
            tenant_id=tenant_id,
        )


def summarise(
    results: Sequence[dict[str, Any]], request: Request, task_states: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One closing activity entry for a whole run: counts per entity and XPM calls used.

    A run with an entity that failed or was refused never closes as "Success": it says "partly
    failed" or "refused", and names what. `task_states` is how Airflow has the run's entity tasks:
    a task that failed without leaving an entry (its worker lost on the last try) counts as failed,
    and one that never ran because what it needs failed is named too.
    """
    engine = get_engine(request.store_url)
    done = [r for r in results if r]
    calls = sum(int(r.get("calls", 0)) for r in done)
    written = sum(int(r.get("written", 0)) for r in done)
    failed, refusals, not_run = failures_in_run(engine, request.run_id)
    states = {name: state for name, state in (task_states or {}).items() if name in ENTITIES}
    failed = sorted({*failed, *(n for n, state in states.items() if state == "failed")} - set(not_run))
    not_run = sorted({*not_run, *(name for name, state in states.items() if state == "upstream_failed")})
    refused = sorted(refusals)
    kind = "Manual sync" if request.manual else "Overnight sync"
    if request.dry_run:
        kind += " (dry run)"
    counts = ", ".join(
        f"{r['entity']} {r.get('written', 0)}/{r.get('fetched', 0)}" for r in done if not r.get("skipped")
    )
    status = ActivityStatus.SUCCESS
    rows = f"{written} rows would be written (nothing was)" if request.dry_run else f"{written} rows written"
    message = f"{kind} finished: {rows}, {calls} XPM calls" + (f" ({counts})" if counts else "")
    ran = [r for r in done if r.get("mode") not in ("refused", "skipped")]
    if refused and not ran and not failed and not not_run:
        status = ActivityStatus.FAILURE
        reason = refusals[refused[0]].split(") ", 1)[-1]
        message = reason if " refused: " in reason else f"{kind} refused: {reason}"
    elif failed or refused or not_run:
        status = ActivityStatus.FAILURE
        parts = []
        if failed:
            parts.append(f"{', '.join(failed)} did not finish (see the entries above)")
        if not_run:
            parts.append(f"{', '.join(not_run)} not run, as what they need did not finish")
        if refused:
            parts.append(f"{', '.join(refused)} refused")
        message = f"{kind} partly failed: {'; '.join(parts)}. {rows}, {calls} XPM calls."
    summary = {
        "entities": done,
        "calls": calls,
        "written": written,
        "failed": failed,
        "not_run": not_run,
        "refused": refused,
        "message": message,
    }
    with Session(writing(engine)) as session, session.begin():
        activity.record(
            session, status, "Sync", message, details={**summary, "run_id": request.run_id}, actor=request.actor
        )
    return summary
