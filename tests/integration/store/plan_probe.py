"""Load a saved job list in a process of its own, as a night's task does, and report the plan
PostgreSQL chose for each statement that marks a job's staff gone, with the rows it marked.

Run: python -m tests.integration.store.plan_probe STORE_URL ANSWER_FILE TENANT
Prints one JSON line: {"fetched", "written", "plans": [EXPLAIN (FORMAT JSON) ...], "marked": [...]}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session


def main(store_url: str, answer: Path, tenant: str) -> None:
    from xpm_sync.api import fingerprint, records
    from xpm_sync.api.xml import iter_items
    from xpm_sync.settings import PracticeSettings
    from xpm_sync.store.engine import get_engine
    from xpm_sync.store.models import Job
    from xpm_sync.sync import children
    from xpm_sync.sync.context import SyncContext
    from xpm_sync.sync.load import checkpoint, load

    engine = get_engine(store_url)
    plans: list[Any] = []
    marked: list[int] = []

    def marks_gone(statement: str) -> bool:
        return statement.lstrip().upper().startswith("UPDATE JOB_ASSIGNMENTS") and "NOT (EXISTS" in statement

    @event.listens_for(engine, "before_cursor_execute")
    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if marks_gone(statement):
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plans.append(cursor.fetchone()[0])

    @event.listens_for(engine, "after_cursor_execute")
    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if marks_gone(statement):
            marked.append(cursor.rowcount)

    ctx = SyncContext(hook=None, engine=engine, tenant_id=tenant, settings=PracticeSettings())  # type: ignore[arg-type]
    with Session(engine) as session:
        prints = fingerprint.job_fingerprints(session, Job, tenant, skip_known=False)
    with answer.open("rb") as body:
        rows = iter_items(body, ("Jobs", "Job"), records.job, fingerprints=prints)
        fetched, written = load(ctx, Job, rows, key="job_number", children=children.job_children, fingerprints=prints)
    checkpoint(ctx, "jobs", full_pass=True)  # as a pull ends
    print(json.dumps({"fetched": fetched, "written": written, "plans": plans, "marked": marked}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
