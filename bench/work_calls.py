"""Benchmark: XPM calls a night for time entries, costs, invoices and quotes, against the fewest the API
allows, and how long a correction of an old time entry waits.

A sandbox practice (2,000 clients / 10,000 jobs by default) is synced in full (the four lists), then
lives through `--nights` days: each day the sandbox corrects old time entries (weeks or years after
the work), deletes one, adds the day's time and a cost, takes payments, invoices jobs completed that
day and decides quotes. Each night the four lists are synced at the defaults, in a process of its
own whose clock is the sandbox's (as each Airflow task is a new process).

None of these lists has a modified-since filter, so the fewest calls that see every change of a
night are, per list: time entries, every year a call (an edit may be to any year); invoices, the
current list, the recent window and one payments call per invoice whose amount paid moved; quotes,
the current list and the recent window; costs, every page and the empty one. What the project spends
instead trades time entries' calls for a delay: the recent window every night and one older year a
night once it is `history_reconcile_days` old, so an old correction waits until its year comes round.
That wait is measured: each night, the time entries the store holds differently from the sandbox.

Run: .venv/bin/python bench/work_calls.py [--clients 2000] [--jobs 10000] [--nights 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from typing import Any

from common import calls, connect, control, start_sandbox, store  # importing common sets up Airflow first

WORK = ["time_entries", "costs", "invoices", "quotes"]


def _sandbox_now(url: str) -> datetime:
    return datetime.fromisoformat(control(url, "clock", {"advance_seconds": 0})["now"])


def _night(url: str, store_url: str, *, full: bool) -> dict[str, Any]:
    args = [sys.executable, __file__, "--night", url, store_url] + (["--full"] if full else [])
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"the night's process failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_night(url: str, store_url: str, full: bool) -> None:
    import time_machine

    from common import run_sync

    with time_machine.travel(_sandbox_now(url), tick=True):
        print(json.dumps(run_sync(WORK, store_url, full=full), default=str))


def _by_endpoint(before: dict[str, Any], after: dict[str, Any]) -> Counter[str]:
    made: Counter[str] = Counter()
    for name, count in after["by_endpoint"].items():
        made[name] = count - before["by_endpoint"].get(name, 0)
    return made


def _stale_time(engine: Any, url: str) -> int:
    """Time entries the store holds otherwise than the sandbox (minutes or note), or still holds as live."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.store.models import TimeEntry

    truth = {t["uuid"]: (t["minutes"], t["note"] or None) for t in control(url, "times", {})["times"]}
    with Session(engine) as s:
        stored = {
            r.uuid: (r.minutes, r.note)
            for r in s.scalars(select(TimeEntry).where(TimeEntry.removed_upstream_at.is_(None)))
        }
    return len(set(stored.items()) ^ set(truth.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--nights", type=int, default=8)
    parser.add_argument("--share", type=float, default=0.02)
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--night", nargs=2, metavar=("SANDBOX_URL", "STORE_URL"))
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    if args.night:
        _run_night(*args.night, args.full)
        return

    proc, url = start_sandbox(args.clients, args.jobs)
    try:
        control(url, "limits", {"per_day": 10**9})
        store_url = store(args.backend)
        engine = connect(url, store_url)
        size = control(url, "times", {"count_only": True})
        print(f"practice: {args.clients:,} clients, {args.jobs:,} jobs; {size['work']}", flush=True)
        before = calls(url)
        first = _night(url, store_url, full=True)
        after = calls(url)
        sent = sum(after["egress_bytes"].values()) - sum(before["egress_bytes"].values())
        print(f"first sync: {after['total'] - before['total']:,} calls, {sent:,} bytes", flush=True)
        print("  " + ", ".join(f"{n} {r.get('calls')}" for n, r in first.items()), flush=True)
        years = (_sandbox_now(url).year - 2022) + 1
        print(
            f"\n{'night':>5} {'time':>9} {'costs':>9} {'invoices':>9} {'quotes':>9} {'total':>11}  stale time entries"
        )
        for number in range(1, args.nights + 1):
            day = control(url, "next-day", {"share": args.share})
            before = calls(url)
            result = _night(url, store_url, full=False)
            after = calls(url)
            made = _by_endpoint(before, after)
            paid = set(day["invoices_paid"]) | set(day["invoices_added"])
            pages = made.get("GET job.api/costs", 0)
            fewest = {
                "time_entries": years,
                "costs": pages,
                "invoices": 2 + len(paid),  # current, recent; payments of invoices paid or new (an upper bound)
                "quotes": 2,
            }
            ours = {name: int(result[name].get("calls", 0)) for name in WORK}
            cells = " ".join(f"{ours[n]:>4}/{fewest[n]:<4}" for n in WORK)
            total = f"{sum(ours.values()):>5}/{sum(fewest.values()):<5}"
            print(f"{number:>5} {cells} {total}  {_stale_time(engine, url):>5}", flush=True)
        print("\ncells: the project's calls / the fewest that see every change that night (see the docstring)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
