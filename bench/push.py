"""Benchmark: pushing local changes to XPM (the sandbox in its own process).

Reports:
- what a batch of 500 mixed changes costs after coalescing: changes, records, XPM calls (reads and
  writes), against one write per record and endpoint (the fewest XPM's write API allows);
- changes pushed per minute at XPM's own limit of 60 calls a minute (real pacing, real waits), and
  whether any call met a 429.

Run: .venv/bin/python bench/push.py [--clients 2000] [--jobs 10000] [--timed 120]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from typing import Any

from common import calls, connect, control, run_sync, start_sandbox, store

STATE_CODES = {"Planned": "PLANNED", "In Progress": "INPROGRESS", "Waiting on Client": "WAITING",
               "Review": "REVIEW", "Completed": "COMPLETED", "Cancelled": "CANCELLED"}  # fmt: skip
OPEN = ["Planned", "In Progress", "Waiting on Client", "Review"]


def _prepare(url: str, backend: str) -> tuple[Any, str]:
    from sqlalchemy.orm import Session

    from xpm_sync import catalog, changes, settings

    store_url = store(backend)
    engine = connect(url, store_url)
    run_sync(list(catalog.REFERENCE) + ["clients", "jobs"], store_url, full=True)
    with Session(engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="bench")
        settings.change(s, "sync_custom_fields_from_xpm", False, actor="bench")
    connect(url, store_url)  # the reconnect that grants the write scopes these settings need
    for name, code in STATE_CODES.items():
        changes.set_state_code(engine, name, code, actor="bench")
    return engine, store_url


def _records(engine: Any) -> tuple[list[str], list[str]]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.store import models as m

    with Session(engine) as s:
        jobs = list(s.scalars(select(m.Job.job_number).where(m.Job.is_current.is_(True)).order_by(m.Job.job_number)))
        clients = list(s.scalars(select(m.Client.uuid).order_by(m.Client.uuid)))
    return jobs, clients


def _mixed_changes(engine: Any, count: int, rng: random.Random) -> dict[str, int]:
    """`count` changes: job states and due dates, client and job custom fields, some records changed twice."""
    from xpm_sync import changes

    jobs, clients = _records(engine)
    jobs, clients = rng.sample(jobs, 150), rng.sample(clients, 150)
    recorded: Counter[str] = Counter()
    while sum(recorded.values()) < count:
        kind = rng.random()
        job = rng.choice(jobs)
        if kind < 0.3:
            made = changes.set_job_state(engine, job, rng.choice(OPEN), actor="bench")
        elif kind < 0.5:
            due = f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            made = changes.update_job(engine, job, due_date=due, actor="bench")
        elif kind < 0.85:
            client = rng.choice(clients)
            field, value = rng.choice(
                [("Entity Code", f"E{rng.randint(1, 9999)}"), ("Staff Count", str(rng.randint(1, 50)))]
            )
            made = changes.set_custom_field(engine, "client", client, field, value, actor="bench")
        else:
            made = changes.set_custom_field(
                engine, "job", job, "Job Reference", f"R{rng.randint(1, 999)}", actor="bench"
            )
        if made.entry_id is not None:
            recorded["job" if kind < 0.5 else "custom field"] += 1
    return dict(recorded)


def coalescing(url: str, backend: str, count: int) -> dict[str, Any]:
    from xpm_sync.hooks.xpm import XpmHook
    from xpm_sync.sync import push

    engine, store_url = _prepare(url, backend)
    rng = random.Random(7)
    made = _mixed_changes(engine, count, rng)
    groups = push.waiting(engine, XpmHook(store_url=store_url).tenant_id)
    endpoints = sum(
        (("state" in g.fields()) + bool(set(g.fields()) - {"state"})) if g.entity == "job" else 1 for g in groups
    )
    before = calls(url)
    started = time.perf_counter()
    results = push.push(XpmHook(store_url=store_url), engine, actor="bench")
    seconds = time.perf_counter() - started
    after = calls(url)
    by_endpoint = Counter(after["by_endpoint"]) - Counter(before["by_endpoint"])
    writes = len(after["writes_applied"]) - len(before["writes_applied"])
    return {
        "changes": sum(made.values()),
        "records": len(groups),
        "fewest_writes_the_api_allows": endpoints,
        "writes": writes,
        "calls": after["total"] - before["total"],
        "calls_by_endpoint": dict(sorted(by_endpoint.items())),
        "failed": sum(len(r.failures) for r in results),
        "seconds_unthrottled": round(seconds, 1),
    }


def rate(url: str, backend: str, count: int) -> dict[str, Any]:
    """Changes pushed per minute while XPM allows 60 calls a minute (the pacing waits for real)."""
    from xpm_sync import changes
    from xpm_sync.hooks.xpm import XpmHook
    from xpm_sync.sync import push

    engine, store_url = _prepare(url, backend)
    jobs, clients = _records(engine)
    rng = random.Random(11)
    for job in rng.sample(jobs, count // 2):
        changes.set_job_state(engine, job, "Review" if rng.random() < 0.5 else "Waiting on Client", actor="bench")
    for client in rng.sample(clients, count - count // 2):
        changes.set_custom_field(engine, "client", client, "Entity Code", f"T{rng.randint(1, 9999)}", actor="bench")
    control(url, "limits", {"per_minute": 60})
    control(url, "clock", {"advance_seconds": 61})  # a clean minute
    before = calls(url)
    started = time.perf_counter()
    results = push.push(XpmHook(store_url=store_url), engine, actor="bench")
    seconds = time.perf_counter() - started
    after = calls(url)
    statuses = Counter(after["by_endpoint"]) - Counter(before["by_endpoint"])
    pushed = sum(r.written for r in results)
    return {
        "changes": pushed,
        "calls": after["total"] - before["total"],
        "seconds": round(seconds, 1),
        "changes_per_minute": round(pushed / seconds * 60, 1),
        "calls_per_minute": round((after["total"] - before["total"]) / seconds * 60, 1),
        "by_endpoint": dict(sorted(statuses.items())),
        "answered_429": after["by_status"].get("429", 0) - before["by_status"].get("429", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--timed", type=int, default=120, help="changes pushed at 60 calls a minute")
    parser.add_argument("--backend", default="sqlite")
    args = parser.parse_args()
    proc, url = start_sandbox(args.clients, args.jobs)
    try:
        report = {
            "practice": {"clients": args.clients, "jobs": args.jobs},
            "batch": coalescing(url, args.backend, args.batch),
        }
        control(url, "clock", {"advance_seconds": 86_400})
        report["at_xpms_60_calls_a_minute"] = rate(url, args.backend, args.timed)
    finally:
        proc.terminate()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
