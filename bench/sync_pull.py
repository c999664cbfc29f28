"""Benchmark: the pull sync on a 20,000-client / 100,000-job practice, on SQLite and PostgreSQL.

Reports, per database:
- XPM calls of a full and of an incremental sync (after a "next day" changing 2% of records),
  per entity, against the fewest calls the API allows for the same data;
- records a second of parse + upsert (clients with contacts, jobs with staff) against a plain
  bulk INSERT of the same, already parsed, rows into an empty table of the same database;
- peak memory (max RSS) of this process, which holds no sandbox: the sandbox runs in its own.

Run: .venv/bin/python bench/sync_pull.py [--clients 20000] [--jobs 100000]
The sandbox allows a million calls a minute here, so the run measures the sync, not XPM's
pacing (60 a minute would make a full custom-field pass take hours by design); the day's limit
stays at XPM's 5,000.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import requests

from common import control, run_sync, start_sandbox, store  # importing common sets up Airflow first


def minimum_calls(overview: dict, current_jobs: int, years: int) -> dict[str, int]:
    clients = overview["practices"][0]["clients"]
    return {
        "reference data (5 lists)": 5,
        "clients (one detailed list)": 1,
        "jobs (one list a year + current)": years + 1,
        "client custom fields (one a client)": clients,
        "job custom fields (one an open job)": current_jobs,
    }


def parse_vs_bulk(url: str, store_url: str, tenant_id: str, access: str) -> dict[str, float]:
    """Records a second: parse + upsert from the raw answer, against a bulk INSERT of parsed rows."""
    from sqlalchemy import delete, insert
    from sqlalchemy.orm import Session

    from xpm_sync.api import records
    from xpm_sync.api.xml import iter_items
    from xpm_sync.settings import PracticeSettings
    from xpm_sync.store import models as m
    from xpm_sync.store.engine import get_engine
    from xpm_sync.sync import children
    from xpm_sync.sync.context import SyncContext
    from xpm_sync.sync.load import load, parent_rows

    headers = {"Authorization": f"Bearer {access}", "xero-tenant-id": tenant_id}
    body = requests.get(
        f"{url}/practicemanager/3.1/client.api/list?detailed=true", headers=headers, timeout=300
    ).content
    engine = get_engine(store_url)
    ctx = SyncContext(hook=None, engine=engine, tenant_id="bench-tenant", settings=PracticeSettings())  # type: ignore[arg-type]
    with Session(engine) as s, s.begin():
        for model in (m.ClientGroupMember, m.ClientRelationship, m.ClientContact, m.Contact, m.Client):
            s.execute(delete(model).where(model.tenant_id == "bench-tenant"))
    started = time.perf_counter()
    fetched, _ = load(
        ctx, m.Client, iter_items(body, ("Clients", "Client"), records.client), children=children.client_children
    )
    upsert_rate = fetched / (time.perf_counter() - started)
    rows = parent_rows(list(iter_items(body, ("Clients", "Client"), records.client)), "bench-bulk")
    started = time.perf_counter()
    with Session(engine) as s, s.begin():
        for i in range(0, len(rows), 500):
            s.execute(insert(m.Client), rows[i : i + 500])
    bulk_rate = len(rows) / (time.perf_counter() - started)
    parse_started = time.perf_counter()
    parsed = sum(1 for _ in iter_items(body, ("Clients", "Client"), records.client))
    parse_rate = parsed / (time.perf_counter() - parse_started)
    return {
        "answer_mb": round(len(body) / 1e6, 1),
        "parse_only_per_s": round(parse_rate),
        "parse_upsert_with_children_per_s": round(upsert_rate),
        "bulk_insert_parents_only_per_s": round(bulk_rate),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    proc, url = start_sandbox(args.clients, args.jobs)
    report: dict = {"clients": args.clients, "jobs": args.jobs}
    try:
        from sqlalchemy import func, select

        from xpm_sandbox.browser import sign_in
        from xpm_sandbox.server import connection_extras
        from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
        from xpm_sync import catalog
        from xpm_sync.oauth import flow
        from xpm_sync.oauth.connection_config import load as load_settings
        from xpm_sync.store import migrate
        from xpm_sync.store.engine import get_engine
        from xpm_sync.store.models import Job

        conn = {
            "conn_type": "xpm",
            "login": SANDBOX_CLIENT_ID,
            "password": SANDBOX_CLIENT_SECRET,
            "extra": {**connection_extras(url), "redirect_uri": "http://localhost:8765/callback"},
        }
        os.environ["AIRFLOW_CONN_XPM_DEFAULT"] = json.dumps(conn)
        settings = load_settings("xpm_default")
        control(url, "identity", {"access_lifetime_seconds": 10 * 86_400})
        for backend in args.backends:
            control(url, "clock", {"advance_seconds": 86_400})  # a fresh day's limit for each database
            store_url = store(backend)
            engine = get_engine(store_url)
            migrate.upgrade(engine)
            flow.complete(
                settings,
                engine,
                sign_in(flow.start(settings, engine, requested_by="bench"), "admin@harbourview.example"),
            )
            started = time.perf_counter()
            full = run_sync(list(catalog.ALL), store_url, full=True)
            full_seconds = time.perf_counter() - started
            sync_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            overview = requests.get(f"{url}/_sandbox", timeout=30).json()
            with engine.connect() as connection:  # the open jobs the store holds after the full sync
                current = connection.execute(
                    select(func.count()).select_from(Job).where(Job.is_current.is_(True))
                ).scalar_one()
            changes = control(url, "next-day", {"share": 0.02})
            started = time.perf_counter()
            incremental = run_sync(list(catalog.ALL), store_url, full=False)
            incremental_seconds = time.perf_counter() - started
            from xpm_sync.oauth.tokens import TokenStore

            tokens = TokenStore(settings, engine)
            rates = parse_vs_bulk(url, store_url, tokens.tenant_id(), tokens.access_token())
            report[backend] = {
                "full": {"seconds": round(full_seconds, 1), "entities": full},
                "incremental": {
                    "seconds": round(incremental_seconds, 1),
                    "entities": incremental,
                    "changes": {k: (v if isinstance(v, int) else len(v)) for k, v in changes.items()},
                },
                "minimum_full_calls": minimum_calls(overview, current, 2026 - 2022 + 1),
                "peak_rss_mb_after_full_sync": round(sync_peak, 1),
                "rates": rates,
            }
    finally:
        proc.terminate()
    report["peak_rss_mb_end"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
