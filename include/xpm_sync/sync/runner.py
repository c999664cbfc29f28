"""Running entity pulls for the DAGs and the command line, with the practice's settings honoured
and every outcome written to Practice Activity."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from xpm_sync import activity, changes, settings
from xpm_sync.errors import XpmAuthError, XpmError, XpmRateLimitError
from xpm_sync.store.engine import get_engine, writing
from xpm_sync.store.models import ActivityStatus, ConnectionStatus
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.entities import ENTITIES

log = logging.getLogger(__name__)

CUSTOM_FIELDS = ("client_custom_fields", "job_custom_fields", "custom_field_definitions")
NOT_CONNECTED = "XPM is not connected."
JOBS_LOCAL = (
    "Manual job sync refused: jobs are maintained locally (the setting 'Maintain jobs locally' is on) and "
    "{count} local job change(s) have not reached XPM yet. They go with the next push (every 15 minutes, or now "
    "with `xpm-sync push` or the XPM page); then the job sync can run, and it never overwrites jobs held here."
)


def jobs_waiting(engine: Engine) -> int:
    """Local job changes not yet in XPM (waiting, being sent, or refused by XPM)."""
    from sqlalchemy import func, select

    from xpm_sync.store.models import OutboxEntry, OutboxStatus

    open_ = (*changes.OPEN, OutboxStatus.FAILED.value)
    with Session(engine) as session:
        query = select(func.count()).where(OutboxEntry.entity == "job", OutboxEntry.status.in_(open_))
        return int(session.scalar(query) or 0)


@dataclass(frozen=True)
class Request:
    """What a run was asked to do."""

    manual: bool = False
    full: bool = False
    dry_run: bool = False
    actor: str | None = None
    run_id: str | None = None
    client_uuid: str | None = None
    job_number: str | None = None
    confirm_removals: bool = False
    conn_id: str | None = None
    store_url: str | None = None


def order(names: Sequence[str]) -> list[str]:
    """Entities in the order their data depends on each other."""
    unknown = sorted(set(names) - set(ENTITIES))
    if unknown:
        raise ValueError(f"Unknown entities {unknown}; choose from {sorted(ENTITIES)}")
    return [n for n in ENTITIES if n in names]


def connection_problem(engine: Engine, conn_id: str) -> str | None:
    """Why XPM must not be called now, or None when the connection is usable."""
    from xpm_sync.store.locks import active_connection

    with Session(engine) as session:
        row = session.scalars(active_connection(conn_id)).one_or_none()
    if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
        return (
            f"{NOT_CONNECTED} An XPM administrator connects it on the XPM page in Airflow or with `xpm-sync connect`."
        )
    if row.status == ConnectionStatus.NEEDS_RECONNECT.value:
        return (
            "XPM needs to reconnect. An XPM administrator reconnects it on the XPM page in Airflow, or runs "
            "`xpm-sync connect`."
        )
    return None


def hook_for(request: Request) -> Any:
    from xpm_sync import config
    from xpm_sync.hooks.xpm import XpmHook

    return XpmHook(
        request.conn_id or config.get("conn_id"),
        store_url=request.store_url,
        actor=request.actor,
        run_id=request.run_id,
    )


def refusal(name: str, request: Request, practice: settings.PracticeSettings) -> str | None:
    """Why the practice's settings rule this pull out, if they do."""
    if name == "jobs" and request.manual and practice.maintain_jobs_locally:
        count = jobs_waiting(get_engine(request.store_url))
        if count:
            return JOBS_LOCAL.format(count=count)
    if name in CUSTOM_FIELDS and not request.manual and not practice.sync_custom_fields_from_xpm:
        return "Skipped: custom fields are mastered locally ('Sync custom fields from XPM' is off)."
    return None


def pull(name: str, request: Request, *, hook: Any = None) -> EntityResult:
    """Pull one entity and log the outcome; errors are logged, then raised."""
    spec = ENTITIES[name]
    engine = get_engine(request.store_url)
    label = f"({spec.label})"
    with Session(engine) as session:
        practice = settings.load(session)
    refused = refusal(name, request, practice)
    if refused:
        mode = "manual" if request.manual else "overnight"
        asked = name == "jobs"  # a refused request, not a step the settings leave out
        with Session(writing(engine)) as session, session.begin():
            activity.record(
                session,
                ActivityStatus.FAILURE if asked else ActivityStatus.SUCCESS,
                "Sync",
                f"{label} {refused}",
                actor=request.actor,
                details={"run_id": request.run_id, "mode": mode, "entity": name, "refused": asked},
            )
        return EntityResult(name, "refused" if asked else "skipped", skipped=refused)
    hook = hook or hook_for(request)
    tenant_id: str | None = None
    try:
        tenant_id = hook.tenant_id  # refused at once if another task found XPM must be reconnected
        ctx = SyncContext(
            hook=hook,
            engine=engine,
            tenant_id=tenant_id,
            settings=practice,
            full=request.full,
            dry_run=request.dry_run,
            manual=request.manual,
            run_id=request.run_id,
            actor=request.actor,
            client_uuid=request.client_uuid,
            job_number=request.job_number,
            confirm_removals=request.confirm_removals and request.full,
            entity=name,
        )
        result = spec.run(spec, ctx)
    except XpmError as exc:
        hook.flush_usage()
        _log_failure(engine, request, name, tenant_id, exc)
        raise
    except Exception as exc:
        # Not XPM's doing (the store, a fault of our own): named by its kind only, the rest is in
        # the task's log. If even that cannot be written, the task's own failure still stands.
        hook.flush_usage()
        try:
            _log_failure(engine, request, name, tenant_id, exc)
        except Exception:
            log.warning("%s: the failure could not be recorded in Practice Activity", label, exc_info=True)
        raise
    hook.flush_usage()
    _log_success(engine, ctx, label, result)
    return result


SHOWN_FAILURES = 5


def _log_success(engine: Engine, ctx: SyncContext, label: str, result: EntityResult) -> None:
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


def _failures(engine: Engine, run_id: str | None) -> tuple[list[str], dict[str, str], list[str]]:
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


def _log_failure(engine: Engine, request: Request, name: str, tenant_id: str | None, exc: Exception) -> None:
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
    failed, refusals, not_run = _failures(engine, request.run_id)
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
