"""Benchmark: peak memory of each entity's task in a full sync, each in a process of its own.

Airflow runs every entity of `xpm_overnight_sync` as a task in a new process; this does the same
outside Airflow's scheduler: a sandbox practice of `--clients` / `--jobs` in its own process, then
every entity pulled in full (in dependency order) by `python -c` processes that import Airflow and
the project as a task does, call the runner, and report their own peak resident set size
(`ru_maxrss`) and seconds. Custom-field values are left out by default (they are thousands of
small answers, not a memory question; `--with-custom-fields` adds them at the default budget).

Run: .venv/bin/python bench/task_memory.py [--clients 20000] [--jobs 100000] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from common import connect, start_sandbox, store

CHILD = """
import json, resource, sys, time
import airflow  # noqa: F401 - a task's process has Airflow loaded
from xpm_sync.sync import policy, runner
started = time.perf_counter()
result = runner.pull(sys.argv[1], policy.Request(full=True, store_url=sys.argv[2], run_id="bench-memory"))
print(json.dumps({"entity": sys.argv[1], "seconds": round(time.perf_counter() - started, 1),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "fetched": result.fetched, "written": result.written, "calls": result.calls}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--with-custom-fields", action="store_true")
    args = parser.parse_args()
    from xpm_sync import catalog
    from xpm_sync.sync import policy

    proc, url = start_sandbox(args.clients, args.jobs)
    try:
        store_url = store(args.backend)
        connect(url, store_url)
        names = [n for n in policy.order(list(catalog.ALL)) if args.with_custom_fields or "custom_fields" not in n]
        rows = []
        for name in names:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, name, store_url],
                capture_output=True,
                text=True,
                env=os.environ.copy(),
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        print(json.dumps({"backend": args.backend, "highest_peak_rss_mb": max(r["peak_rss_mb"] for r in rows)}))
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
