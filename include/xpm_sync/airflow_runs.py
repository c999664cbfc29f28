"""Starting a DAG run from xpm-sync itself (after a reconnect, or from the XPM page).

The run is created in Airflow's own database, as `airflow dags trigger` does: the command line and
the API server both reach it, so no REST connection or password has to be configured.
"""

from __future__ import annotations

from typing import Any

from xpm_sync.errors import XpmConfigError

PAUSED = (
    "{dag_id} is paused in Airflow, so nothing was started: unpause it (Dags > {dag_id}) "
    "when changes may go to XPM again."
)


def is_paused(dag_id: str) -> bool | None:
    """Whether Airflow has `dag_id` paused; None when Airflow does not know the DAG (or is out of reach)."""
    try:
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            model = DagModel.get_current(dag_id, session=session)
            return None if model is None else bool(model.is_paused)
    except Exception:
        return None


def start(
    dag_id: str, conf: dict[str, Any], *, note: str, user: str | None, source: str = "cli", unpause: bool = True
) -> str:
    """Queue a run of `dag_id` with `conf` and a note; return the run id.

    A paused DAG is unpaused when `unpause` (a manual sync asked for by a person), else refused: a
    person paused it on purpose (pushing to XPM), and a run queued on a paused DAG never starts.
    `source` is how Airflow records who triggered it: "cli" or "ui".
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    triggered_by = DagRunTriggeredByType.UI if source == "ui" else DagRunTriggeredByType.CLI
    with create_session() as session:
        model = DagModel.get_current(dag_id, session=session)
        if model is None:
            raise XpmConfigError(
                f"Airflow has not loaded the DAG {dag_id} yet (is the dag-processor running on this "
                "installation?), so it could not be started."
            )
        if model.is_paused:
            if not unpause:
                raise XpmConfigError(PAUSED.format(dag_id=dag_id))
            model.is_paused = False
        run = trigger_dag(
            dag_id, triggered_by=triggered_by, triggering_user_name=user, conf=conf, note=note, session=session
        )
        if run is None:
            raise XpmConfigError(f"Airflow did not start {dag_id}.")
        return str(run.run_id)
