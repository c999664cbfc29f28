"""Benchmark: the project's load of a night's client and job lists against an independent baseline.

A 20,000-client / 100,000-job sandbox practice's answers are saved to disk once (`bench/answers.py`:
the detailed client list, five yearly job lists, the current job list; then again after a sandbox
"next day" changing 2% of the practice), so nothing below waits on HTTP. Then, on each database,
`--runs` times, every step in a fresh process as a real night's task is:

1. first load: the project (`bench/project_load.py`, the sync's own load) into a new practice
   database; the baseline (`bench/independent_load.py`, its own lxml reader and the database's
   plain bulk path, no code of the project's) into another;
2. unchanged rerun: the same answers again (the baseline reloads everything, as a pipeline without
   change detection must);
3. next day: the day-2 answers (2% changed).

After the first load and after the next day the two stores are compared row by row (every XPM
column of the seven tables; rows the project keeps marked removed are left out, the baseline
deletes and reloads): they must be equal. Reported: the median of each step's seconds (the load
alone, as each process times it, and the whole process with its start), its peak RSS, and the
project's throughput against the baseline (baseline seconds / project seconds: 1.0 is as fast).

Run: .venv/bin/python bench/load_vs_baseline.py [--clients 20000] [--jobs 100000] [--runs 3]
                                                [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import answers
from common import HOME, drop, store

BENCH = Path(__file__).resolve().parent
TABLES = ("clients", "contacts", "client_contacts", "client_group_members", "client_relationships", "jobs",
          "job_assignments", "job_tasks", "job_task_staff", "job_milestones")  # fmt: skip


def step(args: list[str]) -> dict[str, Any]:
    """One step in a fresh process: its own JSON line, and the process's wall time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stderr[-3000:]}")
    line = [row for row in done.stdout.splitlines() if row.startswith("{")][-1]
    return {**json.loads(line), "process_seconds": round(wall, 2)}


def project(url: str, folder: Path) -> dict[str, Any]:
    return step([str(BENCH / "project_load.py"), url, str(folder)])


def baseline(mode: str, url: str, folder: Path) -> dict[str, Any]:
    return step([str(BENCH / "independent_load.py"), mode, url, str(folder)])


def digest(url: str, tenant: str = "bench-tenant") -> dict[str, str]:
    """A digest of each table's live rows, every XPM column, read as a stream in key order."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.store.engine import get_engine
    from xpm_sync.store.models import Base
    from xpm_sync.store.upsert import content_columns

    out = {}
    with Session(get_engine(url)) as session:
        for name in TABLES:
            table = Base.metadata.tables[name]
            keys = [c.name for c in table.primary_key.columns if c.name != "tenant_id"]
            columns = [table.c[c] for c in keys + [c for c in content_columns(table) if c not in keys]]
            query = (
                select(*columns)
                .where(table.c.tenant_id == tenant, table.c.removed_upstream_at.is_(None))
                .order_by(*columns[: len(keys)])
            )
            hasher = hashlib.blake2b(digest_size=16)
            rows = 0
            for row in session.execute(query.execution_options(yield_per=5000)):
                hasher.update(repr(tuple(row)).encode())
                rows += 1
            out[name] = f"{rows}:{hasher.hexdigest()}"
    return out


def migrated(backend: str) -> str:
    from xpm_sync.store import migrate
    from xpm_sync.store.engine import dispose_engines, get_engine

    url = store(backend)
    migrate.upgrade(get_engine(url))
    dispose_engines()
    return url


def one_run(backend: str, folder: Path) -> dict[str, Any]:
    ours, theirs = migrated(backend), migrated(backend)
    try:
        out: dict[str, Any] = {"first": {"project": project(ours, folder / "day1")}}
        out["first"]["baseline"] = baseline("first", theirs, folder / "day1")
        out["first"]["equal"] = digest(ours) == digest(theirs)
        for name, day in (("rerun", "day1"), ("next_day", "day2")):
            out[name] = {"project": project(ours, folder / day), "baseline": baseline("reload", theirs, folder / day)}
        out["next_day"]["equal"] = digest(ours) == digest(theirs)
        from xpm_sync.store.engine import dispose_engines

        dispose_engines()
        return out
    finally:
        drop(ours)
        drop(theirs)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("first", "rerun", "next_day"):
        row: dict[str, Any] = {}
        for who in ("project", "baseline"):
            row[who] = {
                "seconds": statistics.median(r[name][who]["seconds"] for r in runs),
                "all_seconds": [r[name][who]["seconds"] for r in runs],
                "process_seconds": statistics.median(r[name][who]["process_seconds"] for r in runs),
                "peak_rss_mb": max(r[name][who]["peak_rss_mb"] for r in runs),
            }
        project_step = runs[-1][name]["project"]
        row["project"].update({k: project_step[k] for k in ("written", "skipped_unchanged", "answers_skipped_unread")})
        row["throughput_project_to_baseline"] = round(row["baseline"]["seconds"] / row["project"]["seconds"], 2)
        if "equal" in runs[-1][name]:
            row["stores_equal"] = all(r[name]["equal"] for r in runs)
        out[name] = row
    first = out["first"]["project"]["seconds"]
    out["rerun_to_first_load"] = round(out["rerun"]["project"]["seconds"] / first, 3)
    out["next_day_to_first_load"] = round(out["next_day"]["project"]["seconds"] / first, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    folder = answers.saved(args.clients, args.jobs)
    report: dict[str, Any] = {k: v for k, v in answers.manifest(folder).items() if k not in ("answers", "day2")}
    for backend in args.backends:
        runs = [one_run(backend, folder) for _ in range(args.runs)]
        report[backend] = summary(runs)
        print(json.dumps({backend: report[backend]}, indent=1), flush=True)
    (HOME / "load_vs_baseline.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
