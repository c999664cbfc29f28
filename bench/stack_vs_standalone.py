"""Benchmark: the first overnight sync of one practice on `airflow standalone` (SQLite, LocalExecutor,
what `make airflow` runs) and on the production stack as processes (CeleryExecutor with two
workers, Redis, PostgreSQL: what `make stack` and docker-compose.yaml run).

Each deployment gets a fresh sandbox practice of the same size and seed (the sandbox allows
100,000 calls a minute here, so the figure is the platform's and the sync's, not XPM's pacing; the
day's limit stays 5,000). Once it is up, and the scheduler has made (and skipped, XPM not being
connected) the run it owes the latest overnight interval, the other DAGs are paused, XPM is
connected through the OAuth flow and `xpm_overnight_sync` is run once from the REST API: the
first pull, full, with the day's custom-field budget. Reported: the run's wall time (Airflow's
start and end), XPM calls, the most in flight, and where the tasks ran.

Run: .venv/bin/python bench/stack_vs_standalone.py [--clients 2000] [--jobs 10000]
Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379 for the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OVERNIGHT = "xpm_overnight_sync"
QUIET = ("xpm_manual_sync", "xpm_push", "xpm_connection_health")


class Api:
    def __init__(self, url: str, user: str, password: str) -> None:
        self.url, self.user, self.password = url, user, password

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        token = requests.post(
            f"{self.url}/auth/token", json={"username": self.user, "password": self.password}, timeout=10
        ).json()["access_token"]
        for attempt in range(6):
            reply = requests.request(
                method, f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs
            )
            # On SQLite, Airflow's API answers 500 while the database is locked by running tasks.
            if reply.status_code < 500 or attempt == 5:
                break
            time.sleep(2)
        reply.raise_for_status()
        return reply.json()


def wait_up(url: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=5).json()["scheduler"]["status"] == "healthy":
                return
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(2)
    raise SystemExit(f"Airflow at {url} did not come up")


def settle(api: Api) -> None:
    """Before XPM is connected: let the scheduler make (and skip) the run it owes the latest
    overnight interval, so that no scheduled run starts beside the timed one; pause the others."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            api("GET", f"/dags/{OVERNIGHT}")
            break
        except requests.HTTPError:
            time.sleep(2)
    for dag in QUIET:
        api("PATCH", f"/dags/{dag}", json={"is_paused": True})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = api("GET", f"/dags/{OVERNIGHT}/dagRuns")["dag_runs"]
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            return
        time.sleep(2)
    raise SystemExit("the scheduler made no overnight run for the latest interval within 120 s")


def overnight(api: Api, sandbox_url: str) -> dict[str, Any]:
    """Time one overnight sync, the first since XPM was connected: a full pull."""
    before = len(api("GET", f"/dags/{OVERNIGHT}/dagRuns")["dag_runs"])
    requests.delete(f"{sandbox_url}/_sandbox/calls", timeout=10)
    run = api("POST", f"/dags/{OVERNIGHT}/dagRuns", json={"logical_date": None, "conf": {}})["dag_run_id"]
    while (state := api("GET", f"/dags/{OVERNIGHT}/dagRuns/{run}"))["state"] not in ("success", "failed"):
        time.sleep(1)
    tasks = api("GET", f"/dags/{OVERNIGHT}/dagRuns/{run}/taskInstances", params={"limit": 100})["task_instances"]
    others = len(api("GET", f"/dags/{OVERNIGHT}/dagRuns")["dag_runs"]) - before - 1
    calls = requests.get(f"{sandbox_url}/_sandbox/calls", timeout=30).json()
    started, ended = (datetime.fromisoformat(state[k]) for k in ("start_date", "end_date"))
    return {
        "state": state["state"],
        "wall_seconds": round((ended - started).total_seconds(), 1),
        "xpm_calls": calls["total"],
        "peak_in_flight": calls["peak_in_flight"],
        "by_status": calls.get("by_status"),
        "ran_on": sorted({t["hostname"] for t in tasks if t["hostname"]}),
        "tasks": len(tasks),
        "other_overnight_runs_meanwhile": others,
    }


def sandbox(clients: int, jobs: int) -> Any:
    from xpm_sandbox.server import SandboxServer

    srv = SandboxServer(clients=clients, jobs=jobs, staff=12).start()
    srv.sandbox.gateway.limits.per_minute = 100_000
    return srv


def connection_json(srv: Any) -> str:
    from xpm_sandbox.server import connection_extras

    extra = {**connection_extras(srv.url), "redirect_uri": "http://localhost:8765/callback"}
    return json.dumps({"conn_type": "xpm", "login": srv.client_id, "password": srv.client_secret, "extra": extra})


def connect(env: dict[str, str]) -> None:
    from xpm_sandbox.state import USERS

    cmd = [sys.executable, "-m", "xpm_devtools.cli", "connect", "--as", USERS.admin, "--by", "bench", "--no-sync"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"connect failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")


def standalone(clients: int, jobs: int, home: Path) -> dict[str, Any]:
    from xpm_devtools import demo
    from xpm_sandbox.server import free_port

    srv = sandbox(clients, jobs)
    port = free_port()
    airflow_home = demo._airflow_home(home, port)
    env = {**demo._env(airflow_home), "AIRFLOW_CONN_XPM_DEFAULT": connection_json(srv),
           "AIRFLOW__XPM_SYNC__STORE_URL": f"sqlite:///{home / 'practice.db'}"}  # fmt: skip
    log = open(home / "standalone.log", "wb")  # noqa: SIM115 - closed below
    proc = None
    try:
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "xpm_sync.cli", "setup"], env=env, check=True, capture_output=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://localhost:{port}"
        wait_up(url)
        passwords = airflow_home / "simple_auth_manager_passwords.json.generated"
        while not passwords.exists():
            time.sleep(1)
        api = Api(url, "admin", json.loads(passwords.read_text())["admin"])
        settle(api)
        connect(env)
        return overnight(api, srv.url)
    finally:
        if proc is not None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=60)
        log.close()
        srv.stop()


@contextmanager
def stack_of(srv: Any, home: Path, label: str, redis_db: int, extra_env: dict[str, str]) -> Iterator[tuple[Any, Api]]:
    """The Celery stack (two workers) on throwaway PostgreSQL databases and a Redis database of its own,
    its XPM connection to this sandbox; torn down (and the sandbox stopped) on leaving."""
    import redis
    from cryptography.fernet import Fernet

    from xpm_devtools.stack import Stack, drop_databases, local_variables, throwaway_database
    from xpm_sandbox.server import free_port

    databases = [throwaway_database(PG_ADMIN, f"xpm_bench_{label}_{kind}") for kind in ("airflow", "practice")]
    port, password = free_port(), uuid.uuid4().hex[:12]
    variables = local_variables(
        REPO, None, AIRFLOW_API_PORT=str(port), AIRFLOW_BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW_FERNET_KEY=Fernet.generate_key().decode(), AIRFLOW_JWT_SECRET=uuid.uuid4().hex,
        AIRFLOW_API_SECRET_KEY=uuid.uuid4().hex,
        AIRFLOW_ADMIN_PASSWORD=password, POSTGRES_USER="postgres", POSTGRES_PASSWORD="",
        AIRFLOW_DB=databases[0], PRACTICE_DB=databases[1], REDIS_DB=str(redis_db),
        SMTP_PORT=str(free_port()), XPM_CONNECTION=connection_json(srv),
    )  # fmt: skip
    extra_env = {"AIRFLOW__XPM_SYNC__JOB_START_YEAR": "2022", **extra_env}
    stack = Stack(REPO, home, variables, workers=2, extra_env=extra_env)
    try:
        stack.start()
        yield stack, Api(stack.url, variables["AIRFLOW_ADMIN_USER"], password)
    finally:
        stack.stop()
        srv.stop()
        drop_databases(PG_ADMIN, databases)
        redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()


def celery_stack(clients: int, jobs: int, home: Path) -> dict[str, Any]:
    srv = sandbox(clients, jobs)
    with stack_of(srv, home / "stack", "stack", 7, {}) as (stack, api):
        settle(api)
        connect(stack.env)
        return overnight(api, srv.url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    os.chdir(REPO)
    home = Path(tempfile.mkdtemp(prefix="xpm-bench-deploy-"))
    (home / "standalone").mkdir()
    report = {
        "clients": args.clients,
        "jobs": args.jobs,
        "standalone (SQLite, LocalExecutor)": standalone(args.clients, args.jobs, home / "standalone"),
        "stack (CeleryExecutor, 2 workers, PostgreSQL, Redis)": celery_stack(args.clients, args.jobs, home),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
