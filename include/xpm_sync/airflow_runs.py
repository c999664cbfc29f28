"""Telling Airflow from xpm-sync itself: starting a DAG run (after a reconnect, or from the XPM page),
and saying the outbox changed so that `xpm_push` runs now.

The run is created in Airflow's own database, as `airflow dags trigger` does: the command line and
the API server both reach it, so no REST connection or password has to be configured.
"""

from __future__ import annotations

import logging
from typing import Any

from xpm_sync import catalog
from xpm_sync.errors import XpmConfigError

log = logging.getLogger(__name__)

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


OUTBOX_ASSET = catalog.asset_uri("outbox")
TOLD, PUSH_PAUSED, NOT_TOLD = "told", "paused", "not told"


def notify_push(source: str = "xpm-sync") -> str:
    """Tell Airflow the outbox changed, so `xpm_push` runs now rather than at its next quarter hour.

    Works where Airflow's database is reachable (the XPM page, the command line on the Airflow
    host); elsewhere the change waits for the schedule. Returns TOLD when xpm_push will run now,
    PUSH_PAUSED when Airflow was told but xpm_push is paused (nothing runs until it is unpaused),
    NOT_TOLD when Airflow could not be told.
    """
    try:
        from airflow.assets.manager import asset_manager
        from airflow.serialization.definitions.assets import SerializedAssetUniqueKey
        from airflow.utils.session import create_session

        with create_session() as session:
            event = asset_manager.register_asset_change(
                asset=SerializedAssetUniqueKey(name=OUTBOX_ASSET, uri=OUTBOX_ASSET),
                extra={"from": source},
                session=session,
                source_is_api=True,
            )
        if event is None:
            return NOT_TOLD
        return PUSH_PAUSED if is_paused("xpm_push") else TOLD
    except Exception as exc:  # Airflow's database is out of reach: the schedule picks it up
        log.info("Airflow was not told about the change (%s); xpm_push picks it up on schedule", type(exc).__name__)
        return NOT_TOLD
