"""What the DAGs share (the per-entity task graph, the failure callback); imported at parse time, so kept light."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset

from xpm_sync import catalog, config


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
    """The DAGs' failure callback; the alerts module is imported only when a task fails."""
    from xpm_sync import alerts

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

    decide = RemovalDecision(task_id="decide_removals", trigger_rule="all_done", doc_md=RemovalDecision.__doc__)
    list(pulls.values()) >> decide
    return decide
