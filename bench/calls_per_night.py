"""Benchmark: XPM calls the overnight sync spends a night, against the fewest the API allows.

A sandbox practice is fully synced (with the day's limit lifted, so that the custom fields of every
client and job are read once), then lives through `--nights` days: each day the sandbox changes
`--share` of its records (edits, archived clients, job state changes, new jobs, some of them
created closed and back-dated), and the overnight incremental runs at the default budget.

Every sync, the full one and each night's, runs in a process of its own (`--night`), as each
Airflow task does: nothing a night learns survives in memory to the next, only what the practice
database holds. Each such process moves its clock to the sandbox's (time-machine), so ages and
daily budgets follow the sandbox's days.

The fewest calls the API allows for a night's changes, counted from what the sandbox says it
changed: the 5 reference lists; 1 client list (modified since); 2 job lists (created in the window,
current); one custom-field read for each client whose modified date moved and each job that is new
or changed state (XPM offers no other way to see custom-field values); one `job.api/get` for each
job that left the current list and was created before the window (XPM has no "modified since" for
jobs). Custom-field reads are counted as needed even when the values turn out unchanged, because
nothing cheaper can tell.

Also reported: the never-read backlog a practice starts with when only open jobs were read, and
the nights the nightly sweep needs for it at the default `custom_field_sweep_calls`.

Run: .venv/bin/python bench/calls_per_night.py [--clients 20000] [--jobs 100000] [--nights 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime
from typing import Any

from common import calls, connect, control, start_sandbox, store


def _sandbox_now(url: str) -> datetime:
    return datetime.fromisoformat(control(url, "clock", {"advance_seconds": 0})["now"])


def fewest(day: dict[str, Any], departed: int, backdated: bool) -> int:
    """The night's minimum (see the module's docstring); a back-dated job costs one wider list."""
    lists = 5 + 1 + 2 + (1 if backdated else 0)
    fields = day["clients_edited"] + len(set(day["jobs_state_changed"]) | set(day["jobs_added"]))
    return lists + fields + departed


def _departed(engine: Any, numbers: list[str]) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from xpm_sync.store.models import Job

    with Session(engine) as s:
        query = select(func.count()).select_from(Job).where(Job.job_number.in_(numbers), Job.is_current.is_(False))
        return int(s.scalar(query) or 0)


def night(url: str, store_url: str, *, full: bool) -> dict[str, Any]:
    """One sync in a new process; each entity's result, as the child prints them."""
    args = [sys.executable, __file__, "--night", url, store_url] + (["--full"] if full else [])
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"the night's process failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_night(url: str, store_url: str, full: bool) -> None:
    """In the child: the clock at the sandbox's, then every entity through the runner."""
    import time_machine

    from common import run_sync
    from xpm_sync import catalog

    with time_machine.travel(_sandbox_now(url), tick=True):
        result = run_sync(list(catalog.ALL), store_url, full=full)
    print(json.dumps(result, default=str))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=8)
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--night", nargs=2, metavar=("SANDBOX_URL", "STORE_URL"))
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    if args.night:
        _run_night(*args.night, args.full)
        return

    from xpm_sync import catalog, config
    from xpm_sync.store import models as m
    from xpm_sync.sync import custom_fields

    proc, url = start_sandbox(args.clients, args.jobs)
    try:
        control(url, "limits", {"per_day": 10**9})
        store_url = store(args.backend)
        engine = connect(url, store_url)
        os.environ["AIRFLOW__XPM_SYNC__DAILY_CALL_LIMIT"] = str(10**9)
        base = calls(url)["total"]
        night(url, store_url, full=True)
        full_calls = calls(url)["total"] - base
        os.environ.pop("AIRFLOW__XPM_SYNC__DAILY_CALL_LIMIT")
        print(f"full sync: {full_calls:,} calls (day's limit lifted)", flush=True)
        nights = []
        for number in range(1, args.nights + 1):
            day = control(url, "next-day", {"share": args.share, "closed_backdated": 3, "days_back": 60})
            before = calls(url)
            result = night(url, store_url, full=False)
            after = calls(url)
            made = after["total"] - before["total"]
            gets = after["by_endpoint"].get("GET job.api/get/{id}", 0) - before["by_endpoint"].get(
                "GET job.api/get/{id}", 0
            )
            field_calls = sum(result[n].get("calls", 0) for n in catalog.CUSTOM_FIELD_VALUES)
            need = fewest(day, _departed(engine, day["jobs_state_changed"]), backdated=True)
            nights.append(
                {
                    "night": number,
                    "calls": made,
                    "fewest": need,
                    "ratio": round(made / need, 3),
                    "custom_field_calls": field_calls,
                    "job_gets": gets,
                    "written": sum(r.get("written", 0) for r in result.values()),
                    "by_entity": {n: r.get("calls", 0) for n, r in result.items() if r.get("calls")},
                }  # fmt: skip
            )
            print(json.dumps(nights[-1]), flush=True)
        with time_machine_at(url):
            info = custom_fields.coverage(engine, connect_tenant(engine))
        # The backlog a practice has when closed jobs were never read (an older full sync read
        # only open jobs): every closed job's values, at the default sweep.
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        with Session(engine) as s:
            closed = s.scalar(select(func.count()).select_from(m.Job).where(m.Job.is_current.is_(False)))
        sweep = config.get_int("custom_field_sweep_calls")
        print(
            json.dumps(
                {
                    "coverage": custom_fields.describe_coverage(info),
                    "closed_jobs": closed,
                    "sweep_calls_a_night": sweep,
                    "nights_for_closed_backlog_at_sweep": -(-int(closed or 0) // sweep),
                    "nights_for_closed_backlog_at_day_budget": -(-int(closed or 0) // custom_fields.day_share()),
                    "ratio_worst_night": max(n["ratio"] for n in nights),
                }
            )
        )
    finally:
        proc.terminate()


def time_machine_at(url: str) -> Any:
    import time_machine

    return time_machine.travel(_sandbox_now(url), tick=True)


def connect_tenant(engine: Any) -> str:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.store.models import XpmConnection

    with Session(engine) as s:
        return str(s.scalars(select(XpmConnection.tenant_id).where(XpmConnection.active.is_(True))).one())


if __name__ == "__main__":
    main()
