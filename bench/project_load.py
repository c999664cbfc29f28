"""One night's load of XPM's client and job lists by the project, in a process of its own.

It loads the saved answers of one day (`bench/answers.py`) as the sync does (`sync.load.load` with
the stored fingerprints, staging and set-based merges; each answer's own fingerprint looked at
before its records stream, as `XpmHook` does) into a practice database, then prints one JSON line:
the load's seconds (not the interpreter's start), records read, rows written, records and answers
skipped as unchanged, and the process's peak RSS (Airflow and the project imported, as in a task).

Run: .venv/bin/python bench/project_load.py STORE_URL ANSWERS_FOLDER/day1 [--tenant T]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="xpm-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def records_of(kind: str, path: Path, request: str, fingerprints: Any) -> Iterator[dict[str, Any]]:
    """The records of a saved answer, read as `XpmHook` reads a list answer."""
    from xpm_sync.api import records
    from xpm_sync.api.xml import iter_items

    items, convert = (("Clients", "Client"), records.client) if kind == "clients" else (("Jobs", "Job"), records.job)
    body = path.open("rb")

    def parse() -> Iterator[dict[str, Any]]:
        with body:
            yield from iter_items(body, items, convert, fingerprints=fingerprints)

    return fingerprints.answer(request, body, parse)


def load(store_url: str, folder: Path, tenant: str) -> dict[str, int]:
    from sqlalchemy.orm import Session

    from xpm_sync.api import fingerprint
    from xpm_sync.settings import PracticeSettings
    from xpm_sync.store.engine import analyze_stale, get_engine
    from xpm_sync.store.models import Client, Job
    from xpm_sync.sync import children
    from xpm_sync.sync.context import SyncContext
    from xpm_sync.sync.load import MIRRORED
    from xpm_sync.sync.load import load as engine_load

    listed = json.loads((folder.parent / "answers.json").read_text())
    answers = listed["answers"] if folder.name == "day1" else listed["day2"]
    engine = get_engine(store_url)
    ctx = SyncContext(hook=None, engine=engine, tenant_id=tenant, settings=PracticeSettings())  # type: ignore[arg-type]
    with Session(engine) as session:
        prints = {
            "clients": fingerprint.client_fingerprints(session, Client, tenant),
            "jobs": fingerprint.job_fingerprints(session, Job, tenant, skip_known=False),
        }
    fetched = written = 0
    for answer in answers:
        kind = answer["kind"]
        if kind == "clients":
            model, key, kids = Client, "uuid", children.client_children
        else:
            model, key, kids = Job, "job_number", children.job_children
        body = records_of(kind, folder / answer["file"], answer["request"], prints[kind])
        f, w = engine_load(ctx, model, body, key=key, children=kids, fingerprints=prints[kind])
        fetched, written = fetched + f, written + w
    # As each pull ends (`sync.load.checkpoint`): what the load grew is analysed (PostgreSQL).
    analyze_stale(engine, MIRRORED)
    return {
        "records": fetched,
        "written": written,
        "skipped_unchanged": prints["clients"].skipped + prints["jobs"].skipped,
        "answers_skipped_unread": prints["clients"].answers_skipped + prints["jobs"].answers_skipped,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store_url")
    parser.add_argument("answers", type=Path)
    parser.add_argument("--tenant", default="bench-tenant")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
    import airflow  # noqa: F401 - a task's process has Airflow loaded; so does this one
    from sqlalchemy.orm import configure_mappers

    # The first ORM statement in a process with Airflow loaded configures Airflow's models too
    # (about 2 s, importing them all): part of a task's start, not of the load, so done first.
    configure_mappers()
    started, cpu = time.perf_counter(), time.process_time()
    result = load(args.store_url, args.answers, args.tenant)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), **result, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
