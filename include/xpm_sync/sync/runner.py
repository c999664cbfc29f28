"""Running entity pulls for the DAGs and the command line, with the practice's settings honoured
and every outcome written to Practice Activity."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from xpm_sync import activity, settings
from xpm_sync.errors import XpmAuthError, XpmError, XpmRateLimitError
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import ActivityStatus, ConnectionStatus
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.entities import ENTITIES

log = logging.getLogger(__name__)

CUSTOM_FIELDS = ("client_custom_fields", "job_custom_fields", "custom_field_definitions")
JOBS_LOCAL = (
    "Manual job sync refused: jobs are maintained locally (the setting 'Maintain jobs locally' is on), so "
    "XPM's copy must not overwrite them. Local job changes are pushed to XPM instead."
)


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
    from xpm_sync.store.models import XpmConnection

    with Session(engine) as session:
        row = (
            session.query(XpmConnection)
            .filter(XpmConnection.conn_id == conn_id, XpmConnection.active.is_(True))
            .one_or_none()
        )
    if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
        return "XPM is not connected. An XPM administrator must run `xpm-sync connect`."
    if row.status == ConnectionStatus.NEEDS_RECONNECT.value:
        return "XPM needs to reconnect. An XPM administrator must run `xpm-sync connect`."
    return None


def _hook(request: Request) -> Any:
    from xpm_sync import config
    from xpm_sync.hooks.xpm import XpmHook

    return XpmHook(request.conn_id or config.get("conn_id"), store_url=request.store_url)


def refusal(name: str, request: Request, practice: settings.PracticeSettings) -> str | None:
    """Why the practice's settings rule this pull out, if they do."""
    if name == "jobs" and request.manual and practice.maintain_jobs_locally:
        return JOBS_LOCAL
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
        with Session(engine) as session, session.begin():
            status = ActivityStatus.FAILURE if name == "jobs" else ActivityStatus.SUCCESS
            activity.record(
                session,
                status,
                "Sync",
                f"{label} {refused}",
                actor=request.actor,
                details={"run_id": request.run_id, "mode": mode},
            )
        return EntityResult(name, "refused" if name == "jobs" else "skipped", skipped=refused)
    hook = hook or _hook(request)
    ctx = SyncContext(
        hook=hook,
        engine=engine,
        tenant_id=hook.tenant_id,
        settings=practice,
        full=request.full,
        dry_run=request.dry_run,
        manual=request.manual,
        run_id=request.run_id,
        actor=request.actor,
        client_uuid=request.client_uuid,
        job_number=request.job_number,
    )
    try:
        result = spec.run(spec, ctx)
    except XpmError as exc:
        _log_failure(engine, ctx, label, exc)
        raise
    _log_success(engine, ctx, label, result)
    return result


def _log_success(engine: Engine, ctx: SyncContext, label: str, result: EntityResult) -> None:
    verb = "would write" if ctx.dry_run else "wrote"
    message = f"{label} synced: read {result.fetched}, {verb} {result.written}, {result.calls} XPM calls"
    if result.removed:
        message += f", {result.removed} marked removed in XPM"
    if result.skipped:
        message = f"{label} {result.skipped}"
    if result.note:
        message += f" ({result.note})"
    status = ActivityStatus.SUCCESS if result.complete else ActivityStatus.IN_PROGRESS
    with Session(engine) as session, session.begin():
        activity.record(
            session,
            status,
            "Sync",
            message,
            details={**result.as_dict(), "run_id": ctx.run_id},
            actor=ctx.actor,
            tenant_id=ctx.tenant_id,
        )


def ctx_entity(label: str) -> str:
    """The entity name behind an activity label like "(Clients)"."""
    wanted = label.strip("()")
    return next((name for name, spec in ENTITIES.items() if spec.label == wanted), wanted)


def _failures(engine: Engine, run_id: str | None) -> list[str]:
    if not run_id:
        return []
    with Session(engine) as session:
        entries = activity.recent(session, 200, category="Sync")
    return sorted(
        {
            str(e.details["entity"])
            for e in entries
            if e.status == ActivityStatus.FAILURE.value
            and e.details
            and e.details.get("run_id") == run_id
            and "entity" in e.details
        }
    )


def _log_failure(engine: Engine, ctx: SyncContext, label: str, exc: XpmError) -> None:
    if isinstance(exc, XpmRateLimitError):
        message = f"{label} failed due to rate limiting: {exc}"
    elif isinstance(exc, XpmAuthError):
        message = f"{label} failed: authentication with XPM failed. {exc}"
    else:
        message = f"{label} failed: {exc}"
    with Session(engine) as session, session.begin():
        activity.record(
            session,
            ActivityStatus.FAILURE,
            "Sync",
            message,
            details={"run_id": ctx.run_id, "entity": ctx_entity(label), "error": type(exc).__name__},
            actor=ctx.actor,
            tenant_id=ctx.tenant_id,
        )


def summarise(results: Sequence[dict[str, Any]], request: Request, *, started: Any = None) -> dict[str, Any]:
    """One closing activity entry for a whole run: counts per entity and XPM calls used."""
    engine = get_engine(request.store_url)
    done = [r for r in results if r]
    calls = sum(int(r.get("calls", 0)) for r in done)
    written = sum(int(r.get("written", 0)) for r in done)
    failed = _failures(engine, request.run_id)
    kind = "Manual sync" if request.manual else "Overnight sync"
    if request.dry_run:
        kind += " (dry run)"
    counts = ", ".join(
        f"{r['entity']} {r.get('written', 0)}/{r.get('fetched', 0)}" for r in done if not r.get("skipped")
    )
    message = f"{kind} finished: {written} rows written, {calls} XPM calls" + (f" ({counts})" if counts else "")
    status = ActivityStatus.SUCCESS
    if failed:
        status, message = ActivityStatus.FAILURE, f"{kind} finished with failures in {', '.join(failed)}"
    summary = {"entities": done, "calls": calls, "written": written, "failed": failed}
    with Session(engine) as session, session.begin():
        activity.record(
            session, status, "Sync", message, details={**summary, "run_id": request.run_id}, actor=request.actor
        )
    return summary
