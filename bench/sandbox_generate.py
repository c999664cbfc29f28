"""Benchmark: how long and how much memory the sandbox takes to build a large practice.

Run: .venv/bin/python bench/sandbox_generate.py [--clients 20000] [--jobs 100000]
Each size is built in a fresh process so peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(clients: int, jobs: int) -> None:
    from datetime import datetime

    from xpm_sandbox.generate import build_practice, next_day

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    practice = build_practice("bench", "Bench Practice", seed=1, clients=clients, jobs=jobs, now=datetime(2026, 11, 21))
    built = time.perf_counter() - started
    started = time.perf_counter()
    changes = next_day(practice, seed=1, share=0.02, now=datetime(2026, 11, 22))
    stepped = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "clients": clients,
                "jobs": jobs,
                "build_seconds": round(built, 2),
                "next_day_seconds": round(stepped, 3),
                "clients_edited": changes["clients_edited"],
                "peak_rss_mb": round(peak / 1024, 1),
                "rss_before_mb": round(base / 1024, 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        _child(args.clients, args.jobs)
        return
    for clients, jobs in [(2_000, 10_000), (args.clients, args.jobs)]:
        cmd = [sys.executable, __file__, "--child", "--clients", str(clients), "--jobs", str(jobs)]
        print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
