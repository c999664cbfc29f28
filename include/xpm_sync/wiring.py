"""What the DAGs share (the per-entity task graph, the failure callback); imported at parse time, so kept light."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pendulum
from airflow.sdk import Asset

from xpm_sync import catalog, config, practices
from xpm_sync.practices import Practice


def each_practice(build: Callable[[Practice], Any]) -> dict[str, Any]:
    """Build a DAG file's DAG once for each practice, each while acting for it (its ids, options, pool);
    the DAGs by id."""
    built = {}
    for practice in practices.all_practices():
        with practices.using(practice):
            dag = build(practice)
            built[dag.dag_id] = dag
    return built


def dag_options(
    practice: Practice,
    kind: str,
    *,
    schedule: Any,
    labels: tuple[str, ...],
    doc: str | None,
    timezone: str = "UTC",
    **default_args: Any,
) -> dict[str, Any]:
    """What every practice's DAG of a kind is built with: its id, schedule and tags; a start in the past
    with no catching up; unpaused when created (before XPM is connected its tasks skip, saying why);
    one run at a time; `default_args` (retries and their delays) with the owner and the failure callback."""
    return {
        "dag_id": practice.dag_id(kind),
        "schedule": schedule,
        "start_date": pendulum.datetime(2026, 1, 1, tz=timezone),
        "catchup": False,
        "is_paused_upon_creation": False,
        "max_active_runs": 1,
        "default_args": {"owner": "xpm-sync", "on_failure_callback": on_failure, **default_args},
        "tags": tags(practice, *labels),
        "doc_md": doc,
    }


def tags(practice: Practice, *kinds: str) -> list[str]:
    """A DAG's tags: "xpm", its kinds, and the practice's name when there are several."""
    return ["xpm", *kinds, *([f"practice:{practice.name}"] if practices.several() else [])]


def run_actor(context: Any) -> str:
    """Who a run acts for: the Airflow user who started it (the Trigger button, the XPM page, the
    REST API), else the scheduler (its schedule, or a change recorded here through its Asset)."""
    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None)
    if user:
        return str(user)
    kind = getattr(dag_run, "run_type", None)
    kind = str(getattr(kind, "value", kind) or "")
    return "scheduler (a change recorded here)" if kind == "asset_triggered" else "scheduler"


def on_failure(context: Any) -> None:
    """The DAGs' failure callback, acting for the failed DAG's practice; the alerts module is imported
    only when a task fails."""
    from xpm_sync import alerts

    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or ""
    practice = practices.of_dag(str(dag_id))
    if practice is None:
        alerts.on_failure(context)
        return
    with practices.using(practice):
        alerts.on_failure(context)


def entity_tasks(pull: Any, start: Any) -> dict[str, Any]:
    """One `pull` task per entity, wired in dependency order after `start`; each publishes its Asset."""
    pulls: dict[str, Any] = {}
    for entity in catalog.ALL:
        options: dict[str, Any] = {"task_id": entity, "outlets": [Asset(catalog.asset_uri(entity))]}
        if entity in catalog.CALLS_XPM:
            options["pool"] = config.get("api_pool")
        pulls[entity] = pull.override(**options)(entity)
    for entity, upstream in catalog.UPSTREAM.items():
        for name in upstream:
            pulls[name] >> pulls[entity]
    for entity in catalog.REFERENCE:
        start >> pulls[entity]
    return pulls


def removal_decision(pulls: dict[str, Any]) -> Any:
    """The run's question about the removals it held back (a Required Action), after every entity;
    skipped when nothing was held back. The summary does not wait for it."""
    from xpm_sync.decision_tasks import RemovalDecision

    decide = RemovalDecision(
        conn_id=config.get("conn_id"),
        task_id="decide_removals",
        trigger_rule="all_done",
        doc_md=RemovalDecision.__doc__,
    )
    list(pulls.values()) >> decide
    return decide
