"""Starting a DAG run through Airflow's REST API (used after a reconnect)."""

from __future__ import annotations

import logging
from typing import Any

import requests

from xpm_sync import config

log = logging.getLogger(__name__)


def trigger(dag_id: str, conf: dict[str, Any], *, note: str) -> str | None:
    """Trigger `dag_id` and return the run id, or None when Airflow's API is not set up or not up.

    The API is the `[xpm_sync] airflow_api_conn_id` connection (type http): its host is Airflow's
    URL and its login and password a user allowed to trigger DAGs.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(config.get("airflow_api_conn_id"))
    except AirflowNotFoundException:
        return None
    base = (conn.host or "").rstrip("/")
    if "://" not in base:
        base = f"{conn.schema or 'http'}://{base}" + (f":{conn.port}" if conn.port else "")
    try:
        token = requests.post(
            f"{base}/auth/token", json={"username": conn.login, "password": conn.password}, timeout=15
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        requests.patch(f"{base}/api/v2/dags/{dag_id}", json={"is_paused": False}, headers=headers, timeout=15)
        run = requests.post(
            f"{base}/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf, "note": note},
            headers=headers,
            timeout=15,
        )
        run.raise_for_status()
    except (requests.RequestException, KeyError, ValueError) as exc:
        log.warning("Could not start %s through Airflow's API at %s: %s", dag_id, base, type(exc).__name__)
        return None
    return str(run.json()["dag_run_id"])
