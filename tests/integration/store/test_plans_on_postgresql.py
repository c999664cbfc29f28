"""PostgreSQL's plans for the load do not depend on luck: a night's process that meets tables no
one has analysed yet (autovacuum comes later, and never to temporary tables) still marks children
gone with a hash or merge anti-join, never a nested loop that scans a stage once per stored row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import REPO

TENANT = "aaaaaaaa-0000-4000-8000-00000000abcd"
JOBS = 12_000


def _answer(path: Path) -> Path:
    staff = [f"5a0f{n:04d}-0000-4000-8000-000000000000" for n in range(40)]
    with path.open("w") as out:
        out.write("<Response><Status>OK</Status><Jobs>")
        for n in range(JOBS):
            people = "".join(f"<Staff><UUID>{staff[(n + k) % 40]}</UUID></Staff>" for k in range(2))
            out.write(
                f"<Job><ID>J{n:06d}</ID><Name>Job {n}</Name><State>Planned</State><Assigned>{people}</Assigned></Job>"
            )
        out.write("</Jobs></Response>")
    return path


def _load(store_url: str, answer: Path, timeout: float = 600) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.store.plan_probe", store_url, str(answer), TENANT],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _nested_scans_of_a_stage(node: dict[str, Any], inside_loop: bool = False) -> list[str]:
    """Stages read by a sequential scan under a nested loop, anywhere in the plan."""
    found = []
    if inside_loop and node.get("Node Type") == "Seq Scan" and str(node.get("Relation Name", "")).startswith("stage_"):
        found.append(node["Relation Name"])
    loop = inside_loop or node.get("Node Type") == "Nested Loop"
    for child in node.get("Plans", []):
        found += _nested_scans_of_a_stage(child, loop)
    return found


def _join_types(node: dict[str, Any]) -> list[str]:
    here = [f"{node['Node Type']}/{node['Join Type']}"] if "Join Type" in node else []
    return here + [t for child in node.get("Plans", []) for t in _join_types(child)]


def _migrated(pg_database: str) -> Any:
    from xpm_sync.store import migrate
    from xpm_sync.store.engine import get_engine

    engine = get_engine(pg_database)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for table in ("jobs", "job_assignments"):
            conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    return engine


def _statistics(engine: Any, table: str) -> tuple[float, bool]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT c.reltuples, s.last_analyze IS NOT NULL OR s.last_autoanalyze IS NOT NULL FROM pg_class c "
                "JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = :t"
            ),
            {"t": table},
        ).one()
    return float(row[0]), bool(row[1])


@pytest.mark.postgres
def test_a_first_load_leaves_its_tables_analysed_for_the_next_nights_process(pg_database: str, tmp_path: Path):
    engine = _migrated(pg_database)
    first = _load(pg_database, _answer(tmp_path / "jobs.xml"))
    assert (first["fetched"], first["plans"]) == (JOBS, [])  # new records go straight in: nothing to mark
    assert _statistics(engine, "jobs") == (JOBS, True)
    assert _statistics(engine, "job_assignments") == (2 * JOBS, True)


@pytest.mark.postgres
def test_a_new_process_on_tables_never_analysed_marks_gone_with_no_nested_scan_of_a_stage(
    pg_database: str, tmp_path: Path
):
    engine = _migrated(pg_database)
    with engine.begin() as conn:
        # The practice's jobs as a release before fingerprints left them (row_hash empty), and no
        # statistics yet: every record of the night is converted and merged, and each batch's
        # staff are checked for any no longer listed.
        conn.execute(
            text(
                "INSERT INTO jobs (tenant_id, job_number, name, state, synced_at, pending_push) "
                "SELECT :t, 'J' || lpad(n::text, 6, '0'), 'Job ' || n, 'Planned', now(), false "
                "FROM generate_series(0, :jobs - 1) AS n"
            ),
            {"t": TENANT, "jobs": JOBS},
        )
        conn.execute(
            text(
                "INSERT INTO job_assignments (tenant_id, job_number, staff_uuid, synced_at, pending_push) "
                "SELECT :t, 'J' || lpad(n::text, 6, '0'), '5a0f' || lpad(((n + k) % 40)::text, 4, '0') "
                "|| '-0000-4000-8000-000000000000', now(), false "
                "FROM generate_series(0, :jobs - 1) AS n, generate_series(0, 1) AS k"
            ),
            {"t": TENANT, "jobs": JOBS},
        )
    assert _statistics(engine, "job_assignments") == (-1, False), "job_assignments must start never analysed"

    again = _load(pg_database, _answer(tmp_path / "jobs.xml"))
    assert again["fetched"] == JOBS
    assert again["written"] == JOBS  # each job's fingerprint is stored; its staff are as they were
    assert len(again["plans"]) == JOBS // 2000
    assert again["marked"] == [0] * len(again["plans"])
    for plan in again["plans"]:
        top = plan[0]["Plan"]
        assert _nested_scans_of_a_stage(top) == [], json.dumps(plan, indent=1)
        assert any(t.endswith("/Anti") and not t.startswith("Nested Loop") for t in _join_types(top)), _join_types(top)
    with engine.connect() as conn:
        staff = conn.execute(text("SELECT count(*), count(removed_upstream_at) FROM job_assignments")).one()
    assert tuple(staff) == (2 * JOBS, 0)


@pytest.mark.postgres
def test_a_load_goes_on_while_another_transaction_analyses_its_tables(pg_database: str, tmp_path: Path):
    """Several practices load the same tables: one's ANALYZE inside its load holds the table's analyse
    lock until that load commits. Another practice's load does not wait for it (it would, for that
    whole load): it leaves the statistics to the holder and analyses the tables once the lock is free."""
    engine = _migrated(pg_database)
    answer = _answer(tmp_path / "jobs.xml")
    with engine.connect() as other:
        other.execute(text("LOCK TABLE jobs, job_assignments IN SHARE UPDATE EXCLUSIVE MODE"))  # ANALYZE's lock
        # Waiting for the lock would hold this load until the timeout (the lock is kept past its end).
        first = _load(pg_database, answer, timeout=180)
        assert first["fetched"] == JOBS
        assert _statistics(engine, "job_assignments") == (-1, False)
        other.rollback()
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM job_assignments WHERE removed_upstream_at IS NULL")) == 2 * JOBS

    again = _load(pg_database, answer)
    assert again["fetched"] == JOBS
    assert _statistics(engine, "jobs") == (JOBS, True)
    assert _statistics(engine, "job_assignments") == (2 * JOBS, True)
