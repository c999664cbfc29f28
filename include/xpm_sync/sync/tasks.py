"""What the DAG tasks call. Kept out of the DAG files so that parsing them stays cheap.

A run's first task (`start`) records it: a manual run's request (who asked, what, the estimated
calls), or why it cannot go ahead. Every entity task then runs or skips itself saying why in its
own log; the last task (`summarise`) closes the run in Practice Activity and fails the run when
an entity failed or a manual request was refused, so a refused run never ends green.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from xpm_sync import activity, alerts, catalog, config, ids, wiring
from xpm_sync.store.engine import get_engine, writing
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync import outcome, policy, runner

log = logging.getLogger(__name__)


def _request(context: dict[str, Any], *, manual: bool) -> policy.Request:
    params = context.get("params") or {}
    dag_run = context.get("dag_run")
    actor = wiring.run_actor(context)
    client, job = params.get("client") or None, params.get("job") or None
    return policy.Request(
        manual=manual,
        full=bool(params.get("full", False)),
        dry_run=bool(params.get("dry_run", False)),
        actor=actor,
        run_id=getattr(dag_run, "run_id", None),
        client_uuid=ids.client_uuid(client) if client else None,
        job_number=ids.job_number(job) if job else None,
        confirm_removals=bool(params.get("confirm_removals", False)),
    )


def _wanted(context: dict[str, Any]) -> list[str]:
    return policy.order(list((context.get("params") or {}).get("entities") or []))


def start(context: dict[str, Any], *, manual: bool) -> dict[str, Any]:
    """Open the run: record a manual request and its estimate, or why XPM must not be called."""
    request = _request(context, manual=manual)
    kind = "Manual sync" if manual else "Overnight sync"
    engine = get_engine()
    problem = policy.connection_problem(engine, config.get("conn_id"))
    if problem:
        # Nothing happens unless XPM needs reconnecting and its alert email has not gone out yet.
        alerts.raise_auth_alert(problem, engine=engine, actor=request.actor, run_id=request.run_id)
        message = f"{kind} {'refused' if manual else 'skipped'}: {problem}"
        with Session(writing(engine)) as session, session.begin():
            activity.record(
                session,
                ActivityStatus.ACTION_REQUIRED,
                "Sync",
                message,
                actor=request.actor,
                details={"run_id": request.run_id, "refused": manual},
            )
        log.warning("%s", message)
        return {"problem": problem, "message": message}
    if not manual:
        return {"problem": None}
    return {"problem": None, **_plan(request, _wanted(context))}


def _plan(request: policy.Request, names: list[str]) -> dict[str, Any]:
    from xpm_sync.sync.estimate import estimate

    calls = estimate(names, request)
    what = ", ".join(names)
    mode = "full" if request.full else "incremental"
    target = f" for client {request.client_uuid}" if request.client_uuid else ""
    target += f" for job {request.job_number}" if request.job_number else ""
    message = f"Manual {mode} sync of {what}{target} requested by {request.actor}: about {calls} XPM calls" + (
        " (dry run)" if request.dry_run else ""
    )
    with Session(writing(get_engine())) as session, session.begin():
        activity.record(
            session,
            ActivityStatus.IN_PROGRESS,
            "Sync",
            message,
            actor=request.actor,
            details={"entities": names, "estimated_calls": calls, "run_id": request.run_id, "dry_run": request.dry_run},
        )
    log.info("%s", message)
    return {"entities": names, "estimated_calls": calls}


def _skip(reason: str) -> NoReturn:
    """Skip this task with its reason in its own log (Airflow's own line says only "Skipping task")."""
    from airflow.sdk.exceptions import AirflowSkipException

    log.warning("%s", reason)
    raise AirflowSkipException(reason)


def _unfinished_upstream(entity: str, context: dict[str, Any], wanted: list[str]) -> list[str]:
    """The entities this one needs, asked for in this run, whose tasks did not finish."""
    needed = [name for name in catalog.UPSTREAM.get(entity, ()) if name in wanted]
    states = _task_states(context, needed)
    return [name for name in needed if states.get(name) in ("failed", "upstream_failed")]


def pull(entity: str, context: dict[str, Any], *, manual: bool) -> dict[str, Any]:
    """Pull one entity, or skip it saying why (in this task's log)."""
    from xpm_sync.errors import XpmSyncIncomplete

    request = _request(context, manual=manual)
    label = catalog.LABELS[entity]
    if manual:
        wanted = _wanted(context)
        if entity not in wanted:
            _skip(f"{label} was not asked for in this run (it asked for {', '.join(wanted)}).")
        unfinished = _unfinished_upstream(entity, context, wanted)
        if unfinished:
            outcome.record_not_run(entity, request, unfinished)
            raise XpmSyncIncomplete(f"{label} not run: what it needs ({', '.join(unfinished)}) did not finish.")
    problem = policy.connection_problem(get_engine(), config.get("conn_id"))
    if problem:
        _skip(f"{label} not synced: {problem}")
    result = runner.pull(entity, request)
    if result.mode in ("refused", "skipped"):
        _skip(f"{label} not synced: {result.skipped}")
    log.info(
        "%s: read %s records from XPM, wrote %s rows, marked %s removed, made %s XPM calls%s",
        catalog.LABELS[entity],
        result.fetched,
        result.written,
        result.removed,
        result.calls,
        f" ({result.note})" if result.note else "",
    )
    for failure in result.failures:
        log.warning("XPM refused %s %s: %s", catalog.LABELS[entity], failure["key"], failure["error"])
    _announce(entity, result.feed, context)
    return result.as_dict()


def _announce(entity: str, changes: dict[str, Any] | None, context: dict[str, Any]) -> None:
    """Put what the pull changed (counts, and its range of the change feed) on the entity's Asset
    event, for the DAGs scheduled on it (`xpm_sync.store.feed.read` reads the rows it names)."""
    events = context.get("outlet_events")
    if events is None or not changes:
        return
    from airflow.sdk import Asset

    events[Asset(catalog.asset_uri(entity))].extra.update(changes)


def summarise(opened: dict[str, Any] | None, results: dict[str, Any], context: dict[str, Any], *, manual: bool) -> Any:
    """Close the run in Practice Activity; fail it when an entity failed or the request was refused."""
    from xpm_sync.errors import XpmSyncIncomplete

    if opened and opened.get("problem"):
        # Nothing could be done: the run is red every night of the outage.
        raise XpmSyncIncomplete(opened["message"])
    asked = _wanted(context) if manual else list(results)  # a manual run speaks only of what was asked
    summary = outcome.summarise(
        [r for r in results.values() if r], _request(context, manual=manual), _task_states(context, asked)
    )
    log.info("%s", summary["message"])
    if not manual:
        from xpm_sync import morning

        try:
            morning.after_overnight()  # failed nights in a row: one email when they reach the setting's number
        except Exception:  # an aid to the night's outcome, never its cause: the run's colour stays its own
            log.warning("Failed nights in a row could not be counted", exc_info=True)
    if summary["failed"] or summary["not_run"] or summary["refused"]:
        raise XpmSyncIncomplete(summary["message"])
    # XPM needing to reconnect now (met by another practice on the same grant, whose tasks failed on it
    # while this run's skipped): the run is red, as every run of an outage is.
    problem = policy.connection_problem(get_engine(), config.get("conn_id"))
    if problem and not problem.startswith(policy.NOT_CONNECTED):
        raise XpmSyncIncomplete(f"{summary['message']}. {problem}")
    return summary


def _task_states(context: dict[str, Any], task_ids: list[str]) -> dict[str, str]:
    """How Airflow has these tasks of this run ("failed", "upstream_failed", ...)."""
    ti = context.get("ti")
    if ti is None or not task_ids:
        return {}
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=task_ids)
    return {task: str(getattr(state, "value", state)) for task, state in states.get(ti.run_id, {}).items()}


def push(context: dict[str, Any]) -> dict[str, Any]:
    """Send the outbox to XPM; skip (saying why) when there is nothing to send or XPM must not be called."""
    from xpm_sync.errors import XpmSyncIncomplete
    from xpm_sync.sync import push as pushing

    engine = get_engine()
    actor = wiring.run_actor(context)
    problem = policy.connection_problem(engine, config.get("conn_id"))
    if problem:
        if problem.startswith(policy.NOT_CONNECTED):
            _skip(f"Nothing pushed: {problem}")
        alerts.raise_auth_alert(problem, engine=engine, actor=actor)
        raise XpmSyncIncomplete(f"Nothing pushed: {problem}")
    run_id = getattr(context.get("dag_run"), "run_id", None)
    hook = runner.hook_for(policy.Request(actor=actor, run_id=run_id))
    if not pushing.waiting(engine, hook.tenant_id):
        _skip("No local changes are waiting to go to XPM.")
    results = pushing.push(hook, engine, actor=actor, run_id=run_id)
    for result in results:
        log.info(
            "%s: %s change(s) sent, %s failed, %s XPM calls",
            pushing.LABELS[result.entity],
            result.written,
            len(result.failures),
            result.calls,
        )
    failed = [f"{pushing.LABELS[r.entity]} {f['key']}: {f['error']}" for r in results for f in r.failures]
    if failed:
        raise XpmSyncIncomplete(f"XPM refused {len(failed)} change(s): {'; '.join(failed[:5])}")
    return {r.entity: r.as_dict() for r in results}
