"""What the DAG tasks call. Kept out of the DAG files so that parsing them stays cheap."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from xpm_sync import activity, catalog, config
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync import runner

log = logging.getLogger(__name__)


def _request(context: dict[str, Any], *, manual: bool) -> runner.Request:
    params = context.get("params") or {}
    dag_run = context.get("dag_run")
    actor = "scheduler"
    if manual:
        actor = getattr(dag_run, "triggering_user_name", None) or "unknown user"
    return runner.Request(
        manual=manual,
        full=bool(params.get("full", False)),
        dry_run=bool(params.get("dry_run", False)),
        actor=actor,
        run_id=getattr(dag_run, "run_id", None),
        client_uuid=(params.get("client") or None),
        job_number=(params.get("job") or None),
    )


def check_connection(context: dict[str, Any], *, manual: bool) -> bool:
    """False (and an "Action Required" entry) when XPM must not be called."""
    request = _request(context, manual=manual)
    engine = get_engine()
    problem = runner.connection_problem(engine, config.get("conn_id"))
    if problem is None:
        return True
    kind = "Manual sync" if manual else "Overnight sync"
    with Session(engine) as session, session.begin():
        activity.record(
            session,
            ActivityStatus.ACTION_REQUIRED,
            "Sync",
            f"{kind} skipped: {problem}",
            actor=request.actor,
            details={"run_id": request.run_id},
        )
    log.warning("%s skipped: %s", kind, problem)
    return False


def plan(context: dict[str, Any], entities: list[str]) -> dict[str, Any]:
    """Record a manual request: who asked, for what, and an estimate of the XPM calls it needs."""
    from xpm_sync.sync.estimate import estimate

    request = _request(context, manual=True)
    names = runner.order(entities)
    calls = estimate(names, request)
    what = ", ".join(names)
    mode = "full" if request.full else "incremental"
    target = f" for client {request.client_uuid}" if request.client_uuid else ""
    target += f" for job {request.job_number}" if request.job_number else ""
    with Session(get_engine()) as session, session.begin():
        activity.record(
            session,
            ActivityStatus.IN_PROGRESS,
            "Sync",
            f"Manual {mode} sync of {what}{target} requested by {request.actor}: about {calls} XPM calls"
            + (" (dry run)" if request.dry_run else ""),
            actor=request.actor,
            details={"entities": names, "estimated_calls": calls, "run_id": request.run_id, "dry_run": request.dry_run},
        )
    return {"entities": names, "estimated_calls": calls}


def pull(entity: str, context: dict[str, Any], *, manual: bool) -> dict[str, Any]:
    """Pull one entity; skip it when it was not asked for or XPM must not be called."""
    from airflow.sdk.exceptions import AirflowSkipException

    request = _request(context, manual=manual)
    if manual:
        wanted = (context.get("params") or {}).get("entities") or []
        if entity not in wanted:
            raise AirflowSkipException(f"{entity} was not asked for")
    if entity in catalog.CALLS_XPM:
        problem = runner.connection_problem(get_engine(), config.get("conn_id"))
        if problem:
            raise AirflowSkipException(problem)
    result = runner.pull(entity, request)
    if result.mode == "refused":
        raise AirflowSkipException(result.skipped or "refused")
    return result.as_dict()


def summarise(results: dict[str, Any], context: dict[str, Any], *, manual: bool) -> dict[str, Any]:
    """The closing entry of a run; the run fails here when any entity failed."""
    from xpm_sync.errors import XpmSyncIncomplete

    summary = runner.summarise([r for r in results.values() if r], _request(context, manual=manual))
    if summary["failed"]:
        raise XpmSyncIncomplete(f"The sync finished with failures in {', '.join(summary['failed'])}")
    return summary
