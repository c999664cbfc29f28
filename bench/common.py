"""What the benchmarks share: a sandbox in its own process, a practice database, a connection to it.

Importing this sets a throwaway AIRFLOW_HOME (and a Fernet key) before Airflow is imported; a
benchmark's child processes inherit it (`XPM_BENCH_HOME`), so a night in a process of its own sees
the same Airflow home and connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HOME = Path(os.environ.get("XPM_BENCH_HOME") or tempfile.mkdtemp(prefix="xpm-bench-"))
os.environ.update(
    {
        "XPM_BENCH_HOME": str(HOME),
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": "Gk7nW8b3u8sT2G1pBv9m0tQ4cZy5xR6aJhL3eNwK1oA=",
        "AIRFLOW__XPM_SYNC__JOB_START_YEAR": "2022",
    }
)

import requests  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def start_sandbox(clients: int, jobs: int, per_minute: int = 1_000_000) -> tuple[subprocess.Popen[bytes], str]:
    """The sandbox in its own process, so that its work is not counted as the sync's."""
    from xpm_sandbox.server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "xpm_devtools.cli", "sandbox", "--port", str(port), "--clients", str(clients),
           "--jobs", str(jobs), "--per-minute", str(per_minute)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(f"{url}/_sandbox", timeout=2).raise_for_status()
            return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit("sandbox did not start")


def control(url: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    reply = requests.post(f"{url}/_sandbox/{path}", json=payload or {}, timeout=120)
    reply.raise_for_status()
    return reply.json()


def calls(url: str) -> dict[str, Any]:
    return dict(requests.get(f"{url}/_sandbox/calls", timeout=60).json())


def store(backend: str) -> str:
    """A new, empty practice database URL on SQLite or PostgreSQL."""
    if backend == "sqlite":
        return f"sqlite:///{HOME / f'practice-{uuid.uuid4().hex[:6]}.db'}"
    from sqlalchemy import create_engine, text

    name = f"xpm_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop(store_url: str) -> None:
    """Remove a practice database that `store` made."""
    if store_url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(store_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    from sqlalchemy import create_engine, text

    name = store_url.rsplit("/", 1)[1]
    with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def connect(url: str, store_url: str) -> Any:
    """Migrate the practice database and connect it to the sandbox through the OAuth flow; its engine."""
    from xpm_sandbox.browser import sign_in
    from xpm_sandbox.server import connection_extras
    from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
    from xpm_sync.oauth import flow
    from xpm_sync.oauth.connection_config import load as load_settings
    from xpm_sync.store import migrate
    from xpm_sync.store.engine import get_engine

    conn = {
        "conn_type": "xpm",
        "login": SANDBOX_CLIENT_ID,
        "password": SANDBOX_CLIENT_SECRET,
        "extra": {**connection_extras(url), "redirect_uri": "http://localhost:8765/callback"},
    }
    os.environ["AIRFLOW_CONN_XPM_DEFAULT"] = json.dumps(conn)
    os.environ["AIRFLOW__XPM_SYNC__STORE_URL"] = store_url
    settings = load_settings("xpm_default")
    control(url, "identity", {"access_lifetime_seconds": 10 * 86_400})
    engine = get_engine(store_url)
    migrate.upgrade(engine)
    authorize = flow.start(settings, engine, requested_by="bench")
    flow.complete(settings, engine, sign_in(authorize, "admin@harbourview.example"))
    return engine


def run_sync(names: list[str], store_url: str, *, full: bool) -> dict[str, dict[str, Any]]:
    """Pull `names` in order with the project's runner; each entity's result and seconds."""
    from xpm_sync.hooks.xpm import XpmHook
    from xpm_sync.sync import policy, runner

    hook = XpmHook(store_url=store_url)
    request = policy.Request(full=full, store_url=store_url, run_id="bench")
    out = {}
    for name in policy.order(names):
        started = time.perf_counter()
        try:
            result = runner.pull(name, request, hook=hook).as_dict()
        except Exception as exc:  # the day's limit ends a pass; reported, not hidden
            result = {"entity": name, "error": type(exc).__name__}
        result["seconds"] = round(time.perf_counter() - started, 2)
        out[name] = result
    return out
