"""Benchmark: the project's load of XPM's big lists against a plain bulk load of the same rows.

On a 20,000-client / 100,000-job sandbox practice, in one process, on SQLite and PostgreSQL:

1. XPM's answers (the detailed client list, the five yearly job lists from 2022 and the current
   job list) are fetched from the sandbox and kept on disk, so no run below waits on HTTP: once,
   and again after the sandbox's "next day" changing 2% of the practice;
2. parse only: the project's parser over every answer, nothing written (the floor both paths share);
3. the project's load (`sync.engine.load` with fingerprints, staging and set-based merges, as the
   sync runs it) into a new, migrated practice database: the first load;
4. the same again: the unchanged rerun (nothing may be written; the answers are byte for byte the
   ones loaded, so their fingerprints let them go unparsed);
   then the answers of a "next day" in which 2% of the practice changed: most records are skipped
   one by one, the changed ones merged;
5. a plain bulk load of the same parsed rows into the same tables of another new database:
   `COPY` on PostgreSQL, `executemany` on SQLite, no conflict handling, one pass;
6. equality: the project's store (after the rerun, before the next day) and the bulk store hold
   the same rows, table by table.

Peak memory is sampled (resident set size, every 20 ms) during each step. The process keeps what
it once held, so a step's figure is the highest of it and every step before: run one database a
process (`--backends sqlite`, then `--backends postgresql`) for the first load's own peak.

Run: .venv/bin/python bench/bulk_load.py [--clients 20000] [--jobs 100000] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from common import connect, control, start_sandbox, store  # importing common sets up Airflow first

YEARS = range(2022, 2027)


def fetch_answers(url: str, engine: Any, folder: Path) -> list[tuple[str, Path]]:
    """XPM's answers the full sync reads for clients and jobs, each saved to a file."""
    from xpm_sync.oauth.settings import load as load_settings
    from xpm_sync.oauth.tokens import TokenStore

    tokens = TokenStore(load_settings("xpm_default"), engine)
    headers = {"Authorization": f"Bearer {tokens.access_token()}", "xero-tenant-id": tokens.tenant_id()}
    wanted = [("clients", "client.api/list", {"detailed": "true"})]
    wanted += [("jobs", "job.api/list", {"from": f"{y}0101", "to": f"{y}1231", "detailed": "true"}) for y in YEARS]
    wanted.append(("jobs", "job.api/current", {"detailed": "true"}))
    saved = []
    for number, (kind, path, params) in enumerate(wanted):
        target = folder / f"{number}-{kind}.xml"
        with requests.get(
            f"{url}/practicemanager/3.1/{path}", params=params, headers=headers, timeout=600, stream=True
        ) as reply:
            reply.raise_for_status()
            with target.open("wb") as out:
                for chunk in reply.iter_content(1 << 20):
                    out.write(chunk)
        saved.append((kind, target))
    return saved


class PeakRss:
    """The highest resident set size seen while the block runs, sampled from /proc."""

    def __enter__(self) -> PeakRss:
        self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())

    @staticmethod
    def _now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
        return 0

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._now())


def records_of(kind: str, path: Path, fingerprints: Any = None) -> Iterator[dict[str, Any]]:
    """The records of a saved answer, read as `XpmHook._list` reads a list answer: the answer's
    own fingerprint is looked at first (before the loader starts), then its records stream."""
    from xpm_sync.api import records
    from xpm_sync.api.xml import iter_items

    items, convert = (("Clients", "Client"), records.client) if kind == "clients" else (("Jobs", "Job"), records.job)
    body = path.open("rb")

    def parse() -> Iterator[dict[str, Any]]:
        with body:
            yield from iter_items(body, items, convert, fingerprints=fingerprints)

    return parse() if fingerprints is None else fingerprints.answer(path.name, body, parse)


def project_load(engine: Any, tenant: str, answers: list[tuple[str, Path]]) -> dict[str, int]:
    """The sync's own load of every answer, as `pull_clients` and `pull_jobs` make it."""
    from sqlalchemy.orm import Session

    from xpm_sync.api import fingerprint
    from xpm_sync.settings import PracticeSettings
    from xpm_sync.store.models import Client, Job
    from xpm_sync.sync import children
    from xpm_sync.sync.context import SyncContext
    from xpm_sync.sync.engine import load

    ctx = SyncContext(hook=None, engine=engine, tenant_id=tenant, settings=PracticeSettings())  # type: ignore[arg-type]
    with Session(engine) as session:
        prints = {
            "clients": fingerprint.client_fingerprints(session, Client, tenant),
            "jobs": fingerprint.job_fingerprints(session, Job, tenant, skip_known=False),
        }
    fetched = written = 0
    for kind, path in answers:
        model, key, kids = (
            (Client, "uuid", children.client_children)
            if kind == "clients"
            else (Job, "job_number", children.job_children)
        )
        f, w = load(ctx, model, records_of(kind, path, prints[kind]), key=key, children=kids, fingerprints=prints[kind])
        fetched, written = fetched + f, written + w
    return {
        "records": fetched,
        "written": written,
        "skipped_unchanged": prints["clients"].skipped + prints["jobs"].skipped,
        "answers_skipped_unread": prints["clients"].answers_skipped + prints["jobs"].answers_skipped,
    }


def bulk_load(engine: Any, tenant: str, answers: list[tuple[str, Path]]) -> dict[str, int]:
    """The same rows, built by the same code, written by the database's plain bulk path into empty
    tables: no staging, no conflict handling. A record repeated by a later list (a current job is
    also in its year's list) is written once, as the first list had it."""
    from sqlalchemy import Table, insert
    from sqlalchemy.orm import Session

    from xpm_sync.store import models as m
    from xpm_sync.store.types import utcnow
    from xpm_sync.sync import children
    from xpm_sync.sync.engine import parent_rows

    now = utcnow()
    postgres = engine.dialect.name == "postgresql"
    seen: dict[str, set[Any]] = {}
    counts: dict[str, int] = {}

    def write(session: Session, model: Any, rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> None:
        table: Table = model.__table__
        done = seen.setdefault(table.name, set())
        fresh = []
        for row in rows:
            k = key(row)
            if k not in done:
                done.add(k)
                fresh.append({**row, "synced_at": now})
        if not fresh:
            return
        counts[table.name] = counts.get(table.name, 0) + len(fresh)
        columns = list(fresh[0])
        if postgres:
            processors = [table.c[c].type.bind_processor(engine.dialect) for c in columns]
            raw = session.connection().connection.driver_connection
            listed = ", ".join(columns)
            with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({listed}) FROM STDIN") as copy:
                for row in fresh:
                    copy.write_row(
                        [row[c] if p is None else p(row[c]) for c, p in zip(columns, processors, strict=True)]
                    )
        else:
            session.execute(insert(table), fresh)

    with Session(engine) as session, session.begin():
        for kind, path in answers:
            batch: list[dict[str, Any]] = []
            for record in records_of(kind, path):
                batch.append(record)
                if len(batch) >= 2000:
                    _bulk_batch(session, write, kind, batch, tenant, children, parent_rows, m)
                    batch = []
            if batch:
                _bulk_batch(session, write, kind, batch, tenant, children, parent_rows, m)
    return counts


def _bulk_batch(
    session: Any, write: Any, kind: str, batch: list[Any], tenant: str, children: Any, parent_rows: Any, m: Any
) -> None:
    if kind == "clients":
        write(session, m.Client, parent_rows(batch, tenant), lambda r: r["uuid"])
        kids = children.client_rows(tenant, batch)
        write(session, m.Contact, kids.contacts, lambda r: r["uuid"])
        write(session, m.ClientContact, kids.links, lambda r: (r["client_uuid"], r["contact_uuid"]))
        write(session, m.ClientGroupMember, kids.members, lambda r: (r["group_uuid"], r["client_uuid"]))
        write(session, m.ClientRelationship, kids.relationships, lambda r: r["uuid"])
    else:
        write(session, m.Job, parent_rows(batch, tenant), lambda r: r["job_number"])
        write(session, m.JobAssignment, children.job_rows(tenant, batch), lambda r: (r["job_number"], r["staff_uuid"]))


TABLES = ("clients", "contacts", "client_contacts", "client_group_members", "client_relationships", "jobs",
          "job_assignments")  # fmt: skip


def table_digest(engine: Any, tenant: str) -> dict[str, str]:
    """A digest of every row of the loaded tables (the sync's bookkeeping columns left out), read
    as a stream so that the check itself holds no rows."""
    import hashlib

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from xpm_sync.store.models import Base
    from xpm_sync.store.upsert import content_columns

    out = {}
    with Session(engine) as session:
        for name in TABLES:
            table = Base.metadata.tables[name]
            keys = [c.name for c in table.primary_key.columns if c.name != "tenant_id"]
            columns = [table.c[c] for c in keys + [c for c in content_columns(table) if c not in keys]]
            query = select(*columns).where(table.c.tenant_id == tenant).order_by(*columns[: len(keys)])
            hasher = hashlib.blake2b(digest_size=16)
            for row in session.execute(query.execution_options(yield_per=5000)):
                hasher.update(repr(tuple(row)).encode())
            out[name] = hasher.hexdigest()
    return out


def timed(step: Callable[[], Any]) -> tuple[Any, float, int]:
    with PeakRss() as rss:
        started = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - started
    return result, seconds, rss.peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    from xpm_sync.store import migrate
    from xpm_sync.store.engine import get_engine

    proc, url = start_sandbox(args.clients, args.jobs)
    folder = Path(tempfile.mkdtemp(prefix="xpm-bench-answers-"))
    (folder / "day1").mkdir()
    (folder / "day2").mkdir()
    try:
        engine = connect(url, store("sqlite"))
        answers = fetch_answers(url, engine, folder / "day1")
        changes = control(url, "next-day", {"share": 0.02})
        next_day = fetch_answers(url, engine, folder / "day2")
    finally:
        proc.terminate()
    report: dict[str, Any] = {
        "clients": args.clients,
        "jobs": args.jobs,
        "answers_mb": round(sum(p.stat().st_size for _, p in answers) / 1e6, 1),
        "next_day_changes": {k: (v if isinstance(v, int) else len(v)) for k, v in changes.items()},
    }
    tenant = "bench-tenant"
    _, parse_s, parse_rss = timed(lambda: sum(1 for kind, path in answers for _ in records_of(kind, path)))
    report["parse_only"] = {"seconds": round(parse_s, 2), "peak_rss_mb": parse_rss}
    for backend in args.backends:
        ours, theirs = get_engine(store(backend)), get_engine(store(backend))
        migrate.upgrade(ours)
        migrate.upgrade(theirs)
        first, first_s, first_rss = timed(lambda e=ours: project_load(e, tenant, answers))
        again, again_s, again_rss = timed(lambda e=ours: project_load(e, tenant, answers))
        loaded = table_digest(ours, tenant)
        changed, changed_s, changed_rss = timed(lambda e=ours: project_load(e, tenant, next_day))
        bulk, bulk_s, bulk_rss = timed(lambda e=theirs: bulk_load(e, tenant, answers))
        same = loaded == table_digest(theirs, tenant)
        report[backend] = {
            "project_first_load": {"seconds": round(first_s, 2), "peak_rss_mb": first_rss, **first},
            "project_unchanged_rerun": {"seconds": round(again_s, 2), "peak_rss_mb": again_rss, **again},
            "project_next_day_2pct": {"seconds": round(changed_s, 2), "peak_rss_mb": changed_rss, **changed},
            "plain_bulk_load": {"seconds": round(bulk_s, 2), "peak_rss_mb": bulk_rss, "rows": bulk},
            "throughput_ratio_project_to_bulk": round(bulk_s / first_s, 2),
            "rerun_to_first_load": round(again_s / first_s, 2),
            "next_day_to_first_load": round(changed_s / first_s, 2),
            "write_part": {
                "project_first_load_s": round(first_s - parse_s, 2),
                "plain_bulk_load_s": round(bulk_s - parse_s, 2),
            },
            "stores_equal": same,
        }
        print(json.dumps({backend: report[backend]}, indent=1), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
