"""A failed XPM run carries its reason as the run's note, so that Airflow's Dags list and the run's
own page say why it is red ("Overnight sync skipped: XPM needs to reconnect ...").

A listener of the plugin (`plugins/xpm_integration.py`). Airflow calls it where it marks a run
failed: inside the scheduler's loop, in the middle of the scheduler's own transaction. So the
listener must not touch that transaction at all: it reads the run's identifiers from what is
already loaded on the object (never a lazy load, which on a detached or expired run raises), and
writes the note afterwards, from a thread of its own, in a session of its own. The scheduler never
waits for it and nothing it does can reach the scheduler; any failure is logged and the run keeps
its state without a note.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)

NOTE_LENGTH = 1000  # Airflow's dag_run_note.content
TELLING = ("Action Required", "Failure")
_WRITER_ATTEMPTS = 20  # the scheduler's transaction ends in well under a second; SQLite waits meanwhile


def loaded_ids(dag_run: Any) -> tuple[str, str] | None:
    """(dag_id, run_id) from the values the object already holds; None when they are not loaded."""
    from sqlalchemy import inspect

    try:
        held = inspect(dag_run).dict
    except Exception:  # not a mapped object (a test double): plain attributes
        held = getattr(dag_run, "__dict__", {})
    dag_id, run_id = held.get("dag_id"), held.get("run_id")
    if isinstance(dag_id, str) and isinstance(run_id, str):
        return dag_id, run_id
    return None


def reason(dag_id: str, run_id: str) -> str | None:
    """Why this run failed, from its practice's Practice Activity: what needs a person (Action
    Required) before the run's own failure entries, the newest of each."""
    from sqlalchemy.orm import Session

    from xpm_sync import activity, practices
    from xpm_sync.store.engine import get_engine

    practice = practices.of_dag(dag_id)
    if practice is None:
        return None
    with practices.using(practice), Session(get_engine()) as session:
        mine = [e for e in activity.recent(session, 200) if (e.details or {}).get("run_id") == run_id]
    for status in TELLING:
        found = next((e for e in mine if e.status == status), None)
        if found is not None:
            return str(found.message)
    return None


def clipped(text: str) -> str:
    return text if len(text) <= NOTE_LENGTH else text[: NOTE_LENGTH - 1] + "…"


def write_note(dag_id: str, run_id: str) -> bool:
    """Give the run its reason as a note, unless a person already wrote one. True when written."""
    import time

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError

    found = reason(dag_id, run_id)
    if not found:
        return False
    for attempt in range(_WRITER_ATTEMPTS):
        try:
            with create_session() as session:
                run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
                if run is None or run.note:
                    return False
                run.note = clipped(found)
            return True
        except OperationalError:  # SQLite's lock, held by the scheduler's transaction for a moment
            time.sleep(0.25 * (attempt + 1))
    log.warning("The reason for %s could not be noted on the run: the database stayed locked", run_id)
    return False


def _write_quietly(dag_id: str, run_id: str) -> None:
    try:
        write_note(dag_id, run_id)
    except Exception:
        log.warning("The reason for %s could not be noted on the run", run_id, exc_info=True)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    try:
        ids = loaded_ids(dag_run)
        if ids is None or not ids[0].startswith("xpm_"):  # which practice's, if any: asked off this thread
            return
        threading.Thread(target=_write_quietly, args=ids, name=f"xpm-run-note-{ids[1]}", daemon=True).start()
    except Exception:  # nothing here may reach the scheduler's loop
        log.warning("An XPM run's note was not written", exc_info=True)
