"""What a connect starts: one decision for the XPM page and `xpm-sync connect`.

A first connection (or a switch to another practice) has nothing stored yet, so everything is read;
a reconnect after an outage reads what the outage may have hidden; a reconnect of a connection that
was working changes nothing in the data, so nothing is started.
"""

from __future__ import annotations

from xpm_sync import activity, airflow_runs, catalog
from xpm_sync.oauth.flow import ConnectResult
from xpm_sync.plain_errors import XpmError
from xpm_sync.store.engine import session_scope
from xpm_sync.store.models import ActivityStatus


def entities_to_sync(result: ConnectResult) -> tuple[str, ...]:
    """The entities a full manual sync reads after this connect; empty when none is due."""
    if not result.reconnected:
        return catalog.ALL
    return catalog.AFTER_RECONNECT if result.was_broken else ()


def start_sync(result: ConnectResult, airflow: airflow_runs.Airflow, *, user: str) -> str | None:
    """Queue the full manual sync this connect calls for, log it in Practice Activity, return the run id.

    None when no sync is due. `airflow` is how Airflow is reached from where the person is (the
    signed-in person's REST API on the page, Airflow's command line in a shell); its errors (out
    of reach, the DAG not loaded yet, refused) are raised for the caller to word.
    """
    entities = entities_to_sync(result)
    if not entities:
        return None
    why = "reconnected" if result.reconnected else "connected"
    conf = {"entities": list(entities), "full": True}
    try:
        note = f"Full sync after XPM was {why} by {user}"
        run_id = airflow_runs.start(airflow, catalog.dag_id("manual_sync"), conf, note=note)
    except XpmError as exc:  # connected all the same: say so where the administrator looks
        with session_scope() as session:
            activity.record(
                session,
                ActivityStatus.ACTION_REQUIRED,
                "Sync",
                f"XPM was {why}, but Airflow did not start the full sync of {', '.join(entities)} it calls for "
                f"({exc}): start it with Sync now, All, full.",
                details=conf,
                actor=user,
                tenant_id=result.tenant_id,
            )
        raise
    with session_scope() as session:
        activity.record(
            session,
            ActivityStatus.IN_PROGRESS,
            "Sync",
            f"Full sync of {', '.join(entities)} started after XPM was {why} ({run_id})",
            details={"run_id": run_id, **conf},
            actor=user,
            tenant_id=result.tenant_id,
        )
    return run_id
