"""Running one entity's pull for the DAGs and the command line: the settings asked first (policy), then
XPM, and every outcome written to Practice Activity (outcome)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from xpm_sync import activity, settings
from xpm_sync.errors import XpmError
from xpm_sync.oauth import scopes
from xpm_sync.store import feed
from xpm_sync.store.engine import get_engine, writing
from xpm_sync.store.locks import granted_scopes
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.entities import ENTITIES
from xpm_sync.sync.outcome import log_failure, log_success
from xpm_sync.sync.policy import Request, refusal

log = logging.getLogger(__name__)


def hook_for(request: Request) -> Any:
    from xpm_sync import config
    from xpm_sync.hooks.xpm import XpmHook

    return XpmHook(
        request.conn_id or config.get("conn_id"),
        store_url=request.store_url,
        actor=request.actor,
        run_id=request.run_id,
    )


def left_out(name: str) -> str:
    from xpm_sync import catalog

    return (
        "Skipped: the connection holds granular scopes only, and XPM lets only practicemanager.read (or "
        f"practicemanager) read {catalog.LABELS[name].lower()}."
    )


def _refuse_missing_scope(name: str, scope: str, hook: Any) -> None:
    """Refuse, before any call, an entity the granted scopes do not reach (and say what is needed)."""
    from xpm_sync import catalog
    from xpm_sync.api.client import needs_scope
    from xpm_sync.errors import XpmScopeError

    why = f"to read {catalog.LABELS[name].lower()}"
    hook.mark_needs_scope(scope, why)
    raise XpmScopeError(needs_scope(scope, f"Reading {catalog.LABELS[name].lower()}"), scope=scope, why=why)


def pull(name: str, request: Request, *, hook: Any = None) -> EntityResult:
    """Pull one entity and log the outcome; errors are logged, then raised."""
    spec = ENTITIES[name]
    engine = get_engine(request.store_url)
    label = f"({spec.label})"
    with Session(engine) as session:
        practice = settings.load(session)
    hook = hook or hook_for(request)
    gap = scopes.read_gap(granted_scopes(engine, hook.settings.conn_id), name)
    refused = refusal(name, request, practice) or (left_out(name) if gap and gap[0] == "left out" else None)
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
    tenant_id: str | None = None
    try:
        tenant_id = hook.tenant_id  # refused at once if another task found XPM must be reconnected
        if gap is not None:  # only "missing" is left: "left out" was skipped above
            _refuse_missing_scope(name, gap[1], hook)
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
        before, fed = hook.api.usage.bytes, feed.last_id(engine)
        result = spec.run(spec, ctx)
        result.bytes = hook.api.usage.bytes - before
        if not ctx.dry_run:
            result.feed = feed.summary(engine, tenant_id, name, request.run_id, fed)
    except XpmError as exc:
        hook.flush_usage()
        log_failure(engine, request, name, tenant_id, exc)
        raise
    except Exception as exc:
        # Not XPM's doing (the store, a fault of our own): named by its kind only, the rest is in
        # the task's log. If even that cannot be written, the task's own failure still stands.
        hook.flush_usage()
        try:
            log_failure(engine, request, name, tenant_id, exc)
        except Exception:
            log.warning("%s: the failure could not be recorded in Practice Activity", label, exc_info=True)
        raise
    hook.flush_usage()
    log_success(engine, ctx, label, result)
    _egress(engine, tenant_id, request)
    _prune_feed(engine, tenant_id)
    return result


def _prune_feed(engine: Any, tenant_id: str) -> None:
    from xpm_sync import config

    try:
        feed.prune(engine, tenant_id, config.get_int("change_feed_days"))
    except Exception:  # the sync's own outcome stands; the next one prunes
        log.warning("The change feed could not be pruned", exc_info=True)


def _egress(engine: Any, tenant_id: str | None, request: Request) -> None:
    from xpm_sync import alerts

    if tenant_id is None:
        return
    try:
        alerts.check_egress(engine, tenant_id, actor=request.actor)
    except Exception:  # the sync's own outcome stands; the next one checks again
        log.warning("The month's data egress could not be checked", exc_info=True)
