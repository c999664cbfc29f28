"""An XPM DAG's failed run carries its reason as the run's note, so that Airflow's Dags list and the
run's own page say why it is red ("XPM needs to reconnect ...", "Manual sync partly failed: ...").

A listener of the plugin (`plugins/xpm_integration.py`): Airflow calls it where it marks a run
failed (the scheduler, or `dag.test()`), in the same database session, so the note is saved with
the run's state; the reason is the run's closing entry in Practice Activity. Nothing here may stop
Airflow: any error is logged and the run keeps its state without a note.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

XPM_DAGS = ("xpm_overnight_sync", "xpm_manual_sync", "xpm_push", "xpm_connection_health")
NOTE_LENGTH = 1000  # Airflow's column
TELLING = ("Failure", "Action Required")


def reason(run_id: str) -> str | None:
    """The newest Practice Activity entry of this run that says why it failed."""
    from sqlalchemy.orm import Session

    from xpm_sync import activity
    from xpm_sync.store.engine import get_engine

    with Session(get_engine()) as session:
        for entry in activity.recent(session, 200):
            if (entry.details or {}).get("run_id") == run_id and entry.status in TELLING:
                return str(entry.message)
    return None


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    if getattr(dag_run, "dag_id", None) not in XPM_DAGS:
        return
    try:
        found = reason(dag_run.run_id)
        if found:
            _note(dag_run, found if len(found) <= NOTE_LENGTH else found[: NOTE_LENGTH - 1] + "…")
    except Exception:
        log.warning("The reason for %s could not be noted on the run", dag_run.run_id, exc_info=True)


def _note(dag_run: Any, text: str) -> None:
    """Set the run's note in the session that is marking it failed (the scheduler's, saved with its
    state: no second writer waits on SQLite's lock), else in one of its own (`dag.test()`)."""
    from sqlalchemy.orm import object_session

    if object_session(dag_run) is not None:
        if not dag_run.note:
            dag_run.note = text
        return
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id).first()
        if run is not None and not run.note:
            run.note = text
