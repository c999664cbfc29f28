"""Benchmark: the data XPM sends (Xero's "data egress") for a first sync and for ordinary nights.

A sandbox practice (20,000 clients / 100,000 jobs by default, in its own process) is connected and
fully synced at the default budget (as a first night would be), then lives through `--nights` days,
each changing 2% of its records, each followed by the overnight incremental. Per entity, the bytes
the project counted (`api_usage`, each entity's result) are reported, and the totals are compared
with the bytes the sandbox says it served.

What cuts them is measured against what the same data would cost without each cut, fetched from the
sandbox directly once (not by the project): the whole detailed client list against the
modified-since list a night reads; the job lists of every year against the current list and the
jobs created in the window; the non-detailed client list against the detailed one (what reading
detail costs).

Run: .venv/bin/python bench/egress.py [--clients 20000] [--jobs 100000] [--nights 3]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import requests

from common import calls, connect, control, start_sandbox, store  # importing common sets up Airflow first

MB = 1_000_000


def counted(store_url: str) -> int:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from xpm_sync.store.engine import get_engine
    from xpm_sync.store.models import ApiUsage

    with Session(get_engine(store_url)) as s:
        return int(s.scalar(select(func.sum(ApiUsage.bytes))) or 0)


def direct(url: str, path: str, access: str, tenant: str, **params: str) -> int:
    """The bytes of one answer fetched straight from the sandbox (not counted by the project)."""
    reply = requests.get(
        f"{url}/practicemanager/3.1/{path}",
        params=params,
        headers={"Authorization": f"Bearer {access}", "xero-tenant-id": tenant},
        timeout=600,
    )
    reply.raise_for_status()
    return len(reply.content)


def by_entity(results: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    return {name: (int(r.get("calls", 0)), int(r.get("bytes", 0))) for name, r in results.items()}


def _nights(url: str, store_url: str, count: int) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """The first sync and `count` ordinary nights, each in a process of its own (as Airflow's tasks)."""
    from calls_per_night import night

    found = [("first sync (full, default budget)", by_entity(night(url, store_url, full=True)))]
    for number in range(1, count + 1):
        control(url, "next-day", {"share": 0.02})
        found.append((f"night {number}", by_entity(night(url, store_url, full=False))))
    return found


def _cuts(url: str, access: str, tenant: str, now: str, start_year: int) -> dict[str, int]:
    """What the same data costs without each cut, fetched straight from the sandbox once."""
    since = f"{now[:10]}T00:00:00"
    year = int(now[:4])
    yearly = sum(
        direct(url, "job.api/list", access, tenant, detailed="true", **{"from": f"{y}0101", "to": f"{y}1231"})
        for y in range(start_year, year + 1)
    )
    return {
        "client list, detailed, whole (what a night would read without modified-since)": direct(
            url, "client.api/list", access, tenant, detailed="true"
        ),
        "client list, detailed, modified since the night began": direct(
            url, "client.api/list", access, tenant, detailed="true", modifiedsince=since
        ),
        "client list, not detailed, whole (what detail costs)": direct(
            url, "client.api/list", access, tenant, detailed="false"
        ),
        f"job lists of every year {start_year}-{year}, detailed (a night without the current list)": yearly,
        "current job list, detailed": direct(url, "job.api/current", access, tenant, detailed="true"),
        "current job list, not detailed (what tasks and staff cost)": direct(
            url, "job.api/current", access, tenant, detailed="false"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=3)
    args = parser.parse_args()

    from xpm_sync import config
    from xpm_sync.oauth.connection_config import load
    from xpm_sync.oauth.tokens import TokenStore

    proc, url = start_sandbox(args.clients, args.jobs)
    try:
        store_url = store("sqlite")
        engine = connect(url, store_url)
        nights = _nights(url, store_url, args.nights)
        served = sum(calls(url)["egress_bytes"].values())
        total = counted(store_url)
        tokens = TokenStore(load("xpm_default"), engine)
        now = control(url, "clock", {"advance_seconds": 0})["now"]
        cuts = _cuts(url, tokens.access_token(), tokens.tenant_id(), now, config.get_int("job_start_year"))
        print(json.dumps({"nights": nights, "counted": total, "served_by_sandbox": served, "cuts": cuts}))
        for label, entities in nights:
            size = sum(b for _c, b in entities.values())
            print(f"{label}: {sum(c for c, _b in entities.values()):,} calls, {size / MB:,.1f} MB")
            for name, (c, b) in entities.items():
                print(f"    {name:<26} {c:>7,} calls {b / MB:>9,.2f} MB")
        print(f"counted by the project {total:,} bytes; served by the sandbox {served:,} bytes")
        for what, size in cuts.items():
            print(f"{what:<90} {size / MB:>9,.2f} MB")
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
