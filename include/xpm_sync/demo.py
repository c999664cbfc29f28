"""`make demo`: from nothing to a finished overnight sync, on real Airflow and the XPM sandbox.

Everything lives under `.demo/` in the checkout: Airflow's home (SQLite), the practice database,
a Fernet key made for the demo, and the sandbox's log. Nothing here talks to the real Xero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

DEMO_PER_MINUTE = 600


def _env(home: Path, sandbox_url: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    from xpm_sandbox.server import connection_extras
    from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    key_file = home / "fernet.key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
    connection = {
        "conn_type": "xpm",
        "login": SANDBOX_CLIENT_ID,
        "password": SANDBOX_CLIENT_SECRET,
        "extra": {**connection_extras(sandbox_url), "redirect_uri": "http://localhost:8765/callback"},
    }
    return {
        **os.environ,
        # airflow standalone starts its parts as `airflow ...`: the venv's bin must be on PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__FERNET_KEY": key_file.read_text().strip(),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__XPM_SYNC__STORE_URL": f"sqlite:///{home / 'practice.db'}",
        "AIRFLOW__XPM_SYNC__JOB_START_YEAR": "2022",
        "AIRFLOW_CONN_XPM_DEFAULT": json.dumps(connection),
    }


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _run(cmd: list[str], env: dict[str, str], *, quiet: bool = True) -> str:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"demo step failed: {' '.join(cmd[:3])} ...")
    if not quiet:
        print(result.stdout.rstrip())
    return result.stdout


def _start_sandbox(home: Path, clients: int, jobs: int) -> tuple[subprocess.Popen[bytes], str]:
    from xpm_sandbox.server import free_port

    port = free_port()
    log = open(home / "sandbox.log", "wb")  # noqa: SIM115 - kept open for the sandbox's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpm_sync.cli", "sandbox", "--port", str(port), "--clients", str(clients),
         "--jobs", str(jobs), "--per-minute", str(DEMO_PER_MINUTE)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/_sandbox", timeout=2).raise_for_status()
            return proc, url
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the XPM sandbox did not start; see {home / 'sandbox.log'}")


def _summary(env: dict[str, str], sandbox_url: str, seconds: float) -> None:
    from xpm_sync.store import models as m
    from xpm_sync.store.engine import get_engine

    engine = get_engine(env["AIRFLOW__XPM_SYNC__STORE_URL"])
    tables: list[tuple[str, Any]] = [
        ("staff", m.Staff), ("clients", m.Client), ("contacts", m.Contact), ("client groups", m.ClientGroup),
        ("relationships", m.ClientRelationship), ("jobs", m.Job), ("job assignments", m.JobAssignment),
        ("client custom field values", m.ClientCustomFieldValue), ("job custom field values", m.JobCustomFieldValue),
        ("tax returns", m.TaxReturn),
    ]  # fmt: skip
    calls = requests.get(f"{sandbox_url}/_sandbox/calls", timeout=10).json()
    with Session(engine) as session:
        print(f"{'rows':>8}  table")
        for label, model in tables:
            print(f"{session.scalar(select(func.count()).select_from(model)):>8}  {label}")
        print(
            f"\nXPM calls: {calls['total']} API calls, {calls['token_requests']} token requests; {seconds:.0f} s in all"
        )
        print("\nPractice Activity (newest first):")
        entries = session.scalars(select(m.PracticeActivity).order_by(m.PracticeActivity.id.desc()).limit(6)).all()
        for e in entries:
            print(f"  {e.occurred_at:%H:%M:%S}  {e.status:<15} {e.message[:110]}")
    print(f"\nThe practice database is {env['AIRFLOW__XPM_SYNC__STORE_URL'].removeprefix('sqlite:///')}")
    print(f"Airflow's home is {env['AIRFLOW_HOME']}")


def run(*, clients: int, jobs: int, serve: bool) -> int:
    """Run the demo; with `serve`, leave Airflow (standalone) and the sandbox running afterwards."""
    home = Path(".demo").resolve()
    home.mkdir(exist_ok=True)
    for stale in ("practice.db", "practice.db-wal", "practice.db-shm"):
        (home / stale).unlink(missing_ok=True)
    started = time.monotonic()
    _step(f"Starting the XPM sandbox: {clients} clients, {jobs} jobs ({DEMO_PER_MINUTE} calls a minute)")
    proc, url = _start_sandbox(home, clients, jobs)
    try:
        env = _env(home, url)
        cli = [sys.executable, "-m", "xpm_sync.cli"]
        _step("Preparing Airflow (SQLite) and the practice database")
        _run([sys.executable, "-m", "airflow", "db", "migrate"], env)
        _run([*cli, "setup"], env, quiet=False)
        _step("Connecting XPM through Xero's OAuth flow (the sandbox plays the browser)")
        _run([*cli, "connect", "--sandbox-user", "admin@harbourview.example", "--by", "demo"], env, quiet=False)
        _step("Running xpm_overnight_sync on Airflow")
        _run([sys.executable, "-m", "airflow", "dags", "test", "xpm_overnight_sync"], env)
        _step("Summary")
        _summary(env, url, time.monotonic() - started)
        if serve:
            _step("Airflow standalone: open http://localhost:8080 (login printed below); Ctrl-C stops")
            subprocess.run([sys.executable, "-m", "airflow", "standalone"], env=env)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0
