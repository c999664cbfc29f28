"""Benchmark: XPM calls the overnight sync spends a night, against the fewest the API allows.

A sandbox practice is fully synced (with the day's limit lifted, so that the custom fields of every
client and job are read once), then lives through `--nights` days: each day the sandbox changes
`--share` of its records (edits, archived clients, job state changes, new jobs, some of them
created closed and back-dated), and the overnight incremental runs at the default budget. The
process's clock follows the sandbox's (time-machine), so ages and daily budgets move as in a real
week.

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
from datetime import datetime
from typing import Any

import time_machine

from common import calls, connect, control, run_sync, start_sandbox, store


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=8)
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--backend", default="sqlite")
    args = parser.parse_args()

    from xpm_sync import catalog, config
    from xpm_sync.store import models as m
    from xpm_sync.sync import custom_fields

    proc, url = start_sandbox(args.clients, args.jobs)
    try:
        control(url, "limits", {"per_day": 10**9})
        with time_machine.travel(_sandbox_now(url), tick=True) as clock:
            store_url = store(args.backend)
            engine = connect(url, store_url)
            os.environ["AIRFLOW__XPM_SYNC__DAILY_CALL_LIMIT"] = str(10**9)
            base = calls(url)["total"]
            run_sync(list(catalog.ALL), store_url, full=True)
            full_calls = calls(url)["total"] - base
            os.environ.pop("AIRFLOW__XPM_SYNC__DAILY_CALL_LIMIT")
            print(f"full sync: {full_calls:,} calls (day's limit lifted)")
            nights = []
            for night in range(1, args.nights + 1):
                day = control(url, "next-day", {"share": args.share, "closed_backdated": 3, "days_back": 60})
                clock.move_to(_sandbox_now(url))
                before = calls(url)
                result = run_sync(list(catalog.ALL), store_url, full=False)
                after = calls(url)
                made = after["total"] - before["total"]
                gets = after["by_endpoint"].get("GET job.api/get/{id}", 0) - before["by_endpoint"].get(
                    "GET job.api/get/{id}", 0
                )
                field_calls = sum(result[n].get("calls", 0) for n in catalog.CUSTOM_FIELD_VALUES)
                need = fewest(day, _departed(engine, day["jobs_state_changed"]), backdated=True)
                nights.append(
                    {
                        "night": night,
                        "calls": made,
                        "fewest": need,
                        "ratio": round(made / need, 3),
                        "custom_field_calls": field_calls,
                        "job_gets": gets,
                        "by_entity": {n: r.get("calls", 0) for n, r in result.items() if r.get("calls")},
                    }  # fmt: skip
                )
                print(json.dumps(nights[-1]))
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
                    }
                )
            )
    finally:
        proc.terminate()


def connect_tenant(engine: Any) -> str:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.store.models import XpmConnection

    with Session(engine) as s:
        return str(s.scalars(select(XpmConnection.tenant_id).where(XpmConnection.active.is_(True))).one())


if __name__ == "__main__":
    main()
