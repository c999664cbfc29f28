"""`make demo`: from nothing to a finished overnight sync, on real Airflow and the XPM sandbox.

Everything lives under `.demo/` in the checkout: Airflow's home (SQLite, with its airflow.cfg), the
practice database, a Fernet key made for the demo, the sandbox's log, and `env`, which points a
shell at the demo (`source .demo/env`). Nothing here talks to the real Xero.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

DEMO_PER_MINUTE = 600


def _airflow_home(home: Path, port: int) -> Path:
    """The demo's Airflow home, with an airflow.cfg holding all it needs: a shell that sets
    AIRFLOW_HOME to it (`source .demo/env`) sees the demo exactly as its Airflow does."""
    from cryptography.fernet import Fernet

    airflow_home = home / "airflow"
    airflow_home.mkdir(exist_ok=True)
    key_file = home / "fernet.key"
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
    # Every component of the demo's Airflow signs and checks tokens with the same secrets.
    secrets_file = home / "secrets.json"
    if not secrets_file.exists():
        secrets_file.write_text(json.dumps({"jwt": token_urlsafe(48), "api": token_urlsafe(32)}))
    shared = json.loads(secrets_file.read_text())
    repo = Path.cwd()
    (airflow_home / "airflow.cfg").write_text(
        "# Written by `make demo`: the xpm-sync demo's Airflow (SQLite, LocalExecutor).\n"
        "[core]\n"
        f"fernet_key = {key_file.read_text().strip()}\n"
        "load_examples = False\n"
        f"dags_folder = {os.environ.get('AIRFLOW__CORE__DAGS_FOLDER', repo / 'dags')}\n"
        f"plugins_folder = {os.environ.get('AIRFLOW__CORE__PLUGINS_FOLDER', repo / 'plugins')}\n"
        f"execution_api_server_url = http://localhost:{port}/execution/\n"
        "[api]\n"
        f"port = {port}\n"
        f"base_url = http://localhost:{port}\n"
        f"secret_key = {shared['api']}\n"
        "[api_auth]\n"
        f"jwt_secret = {shared['jwt']}\n"
        "[xpm_sync]\n"
        "job_start_year = 2022\n"
    )
    (home / "env").write_text(
        "# Point a shell at the xpm-sync demo:  source .demo/env\n"
        f"export AIRFLOW_HOME='{airflow_home}'\n"
        f"export PATH='{Path(sys.executable).parent}':\"$PATH\"\n"
    )
    return airflow_home


def _env(airflow_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    # airflow standalone starts its parts as `airflow ...`: the venv's bin must be on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env["AIRFLOW_HOME"] = str(airflow_home)
    return env


def _register_page_callback(sandbox_url: str, port: int) -> None:
    """Register the XPM page's redirect URI on the sandbox's app, as an administrator does on the Xero app."""
    from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_REDIRECT_URIS

    pages = [f"http://{host}:{port}/xpm/oauth/callback" for host in ("localhost", "127.0.0.1")]
    app = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET}
    reply = requests.post(
        f"{sandbox_url}/_sandbox/apps", json={**app, "redirect_uris": [*SANDBOX_REDIRECT_URIS, *pages]}, timeout=10
    )
    reply.raise_for_status()


def _connections(home: Path, sandbox_url: str, env: dict[str, str]) -> None:
    """The demo's connections live in Airflow's database, where Admin > Connections shows them."""
    from xpm_sandbox.server import connection_extras
    from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    connections = {
        "xpm_default": {
            "conn_type": "xpm",
            "description": "The XPM sandbox of the xpm-sync demo",
            "login": SANDBOX_CLIENT_ID,
            "password": SANDBOX_CLIENT_SECRET,
            "extra": {**connection_extras(sandbox_url), "redirect_uri": "http://localhost:8765/callback"},
        },
        "xpm_store": {
            "conn_type": "sqlite",
            "description": "The practice database of the xpm-sync demo",
            "host": str(home / "practice.db"),
        },
    }
    airflow = [sys.executable, "-m", "airflow", "connections"]
    for conn_id, fields in connections.items():
        subprocess.run([*airflow, "delete", conn_id], env=env, capture_output=True)
        _run([*airflow, "add", conn_id, "--conn-json", json.dumps(fields)], env)


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


def _summary(home: Path, sandbox_url: str, seconds: float) -> None:
    from xpm_sync import display
    from xpm_sync.store import models as m
    from xpm_sync.store.engine import get_engine

    engine = get_engine(f"sqlite:///{home / 'practice.db'}")
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
            print(f"  {display.when(e.occurred_at)}  {e.status:<15} {e.message[:100]}")
    print(f"\nThe practice database is {home / 'practice.db'}")
    print("To use the demo from this shell:  source .demo/env   (then e.g. `xpm-sync status`)")


def run(*, clients: int, jobs: int, serve: bool, port: int = 8080) -> int:
    """Run the demo; with `serve`, leave Airflow (standalone, on `port`) and the sandbox running."""
    home = Path(".demo").resolve()
    home.mkdir(exist_ok=True)
    for stale in ("practice.db", "practice.db-wal", "practice.db-shm"):
        (home / stale).unlink(missing_ok=True)
    started = time.monotonic()
    _step(f"Starting the XPM sandbox: {clients} clients, {jobs} jobs ({DEMO_PER_MINUTE} calls a minute)")
    proc, url = _start_sandbox(home, clients, jobs)
    try:
        env = _env(_airflow_home(home, port))
        _register_page_callback(url, port)
        cli = [sys.executable, "-m", "xpm_sync.cli"]
        _step("Preparing Airflow (SQLite) and the practice database")
        _run([sys.executable, "-m", "airflow", "db", "migrate"], env)
        _connections(home, url, env)
        _run([*cli, "setup"], env, quiet=False)
        _step("Connecting XPM through Xero's OAuth flow (the sandbox plays the browser)")
        _run([*cli, "connect", "--sandbox-user", "admin@harbourview.example", "--by", "demo"], env, quiet=False)
        _step("Running xpm_overnight_sync on Airflow")
        _run([sys.executable, "-m", "airflow", "dags", "test", "xpm_overnight_sync"], env)
        _step("Summary")
        _summary(home, url, time.monotonic() - started)
        if serve:
            _step(f"Airflow standalone: open http://localhost:{port} (login printed below); Ctrl-C stops")
            subprocess.run([sys.executable, "-m", "airflow", "standalone"], env=env)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0
