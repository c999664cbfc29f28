"""A real Airflow: api-server, scheduler and dag-processor as processes, LocalExecutor, metadata
on the PostgreSQL at 127.0.0.1:5432, talking to the XPM sandbox and a real SMTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import _PG_PROBLEM, PG_ADMIN_URL, REPO, REQUIRE_PG
from tests.integration.conftest import Inbox, connect_command, smtp  # noqa: F401 - the fixture, for these tests
from xpm_sandbox.server import SandboxServer, connection_extras, free_port

PASSWORD = "e2e-admin-password"  # noqa: S105 - a throwaway login of a throwaway Airflow


@dataclass
class Airflow:
    url: str
    env: dict[str, str]
    srv: SandboxServer
    store_url: str
    logs: Path

    def token(self) -> str:
        reply = requests.post(f"{self.url}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=10)
        reply.raise_for_status()
        return str(reply.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        reply = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        reply.raise_for_status()
        return str(reply.json()["dag_run_id"])

    def wait(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(2)
        raise AssertionError(f"{dag_id} {run_id} did not finish; logs in {self.logs}")

    def latest_run(self, dag_id: str) -> dict[str, Any]:
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 1}).json()
        return dict(runs["dag_runs"][0]) if runs["dag_runs"] else {}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run([sys.executable, "-m", "xpm_sync.cli", *args])

    def connect(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`xpm-sync connect` with the sandbox's user signing in at the browser (`xpm-dev connect`)."""
        return self._run(connect_command(user, *args))

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180)


def _database(admin: Any, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return name


# The users of the throwaway Airflow: (role, password). Airflow's simple auth manager.
USERS = {"admin": ("admin", PASSWORD), "viewer": ("viewer", "e2e-viewer"), "operator": ("op", "e2e-operator"),
         "user": ("user", "e2e-user")}  # fmt: skip


@contextmanager
def launch(tmp_path: Path, practices: dict[str, dict[str, str]] | None = None, **extra_env: str) -> Iterator[Airflow]:
    """api-server, scheduler and dag-processor as processes on throwaway PostgreSQL databases; with
    `practices` ({conn id: its extra's own options}), those practices beside `xpm_default`."""
    if _PG_PROBLEM:
        if REQUIRE_PG:
            pytest.fail(_PG_PROBLEM)
        pytest.skip(_PG_PROBLEM)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    meta_db, store_db = _database(admin, "airflow_e2e"), _database(admin, "practice_e2e")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({name: pw for name, (_role, pw) in USERS.items()}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    srv = SandboxServer(clients=30, jobs=80, staff=5).start()
    srv.sandbox.gateway.limits.per_minute = 100_000  # tasks pace with real sleeps; keep the runs short
    # The XPM page's redirect URI, registered on the sandbox's app as on a Xero app.
    srv.sandbox.identity.apps[srv.client_id].redirect_uris.append(f"{url}/xpm/oauth/callback")
    xpm_conn = {
        "conn_type": "xpm",
        "login": srv.client_id,
        "password": srv.client_secret,
        "extra": {**connection_extras(srv.url), "redirect_uri": "http://localhost:8765/callback"},
    }
    store_url = f"{base}/{store_db}"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO / "sandbox"), str(REPO)]),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{base}/{meta_db}",
        # psycopg 3 serves Airflow's async engine too, so asyncpg is not needed.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"{base}/{meta_db}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, (r, _pw) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__XPM_SYNC__STORE_URL": store_url,
        "AIRFLOW__XPM_SYNC__JOB_START_YEAR": "2022",
        "AIRFLOW_CONN_XPM_DEFAULT": json.dumps(xpm_conn),
        # This Airflow starts in the middle of the day after a night it was not running, so the
        # morning check would rightly email that last night's sync did not finish by 07:00 (the
        # scheduler catches up that night as it starts): off here, where the tests count the
        # alert emails; tests/integration/dags/test_morning_check.py is where it is tested.
        "AIRFLOW__XPM_SYNC__OVERNIGHT_DEADLINE": "",
        **extra_env,
    }
    for conn_id, own in (practices or {}).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({**xpm_conn, "extra": {**xpm_conn["extra"], **own}})
    if practices:
        env["AIRFLOW__XPM_SYNC__PRACTICES"] = ", ".join(["xpm_default", *practices])
    env.pop("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", None)
    airflow_cmd = [sys.executable, "-m", "airflow"]
    migrated = subprocess.run([*airflow_cmd, "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "xpm_sync.cli", "setup"], env=env, check=True, capture_output=True)
    procs = []
    for name, args in (
        ("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1"]),
        ("scheduler", ["scheduler"]),
        ("dag-processor", ["dag-processor"]),
    ):
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process below
        procs.append((subprocess.Popen([*airflow_cmd, *args], env=env, stdout=log, stderr=subprocess.STDOUT), log))
    af = Airflow(url, env, srv, store_url, tmp_path)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{url}/api/v2/monitor/health", timeout=5).json()
                if health["scheduler"]["status"] == "healthy" and af.api("GET", "/dags/xpm_overnight_sync").ok:
                    break
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(2)
        else:
            raise AssertionError(f"Airflow did not come up; logs in {tmp_path}")
        yield af
    finally:
        for proc, _log in procs:
            proc.terminate()
        for proc, log in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        srv.stop()
        from xpm_sync.store.engine import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            for db in (meta_db, store_db):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def airflow(tmp_path: Path, smtp: Inbox) -> Iterator[Airflow]:  # noqa: F811
    with launch(tmp_path) as af:
        yield af


def loopback_inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a loopback port for a module's Airflow: (what arrived, its port)."""
    from aiosmtpd.controller import Controller

    box = Inbox([])
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


_HERE = Path(__file__).resolve().parent
# Seconds an end-to-end test may take before pytest-timeout calls it hung.
E2E_TIMEOUT = 900


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the group marks (`make test` runs two workers)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests run one after another on one worker: each starts a whole Airflow (a Celery
    stack among them) and two at once on two cores would starve each other. Everything else shares
    the other worker, then whichever is free.

    Each also gets a longer guard against a hang than the suite's 300 s: beside the other worker on
    two cores, a whole Airflow's runs take two to three times as long as alone (the outage test, 100 s
    alone, took over 300 s so). A test that names its own timeout keeps it."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("one_airflow_at_a_time"))
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(E2E_TIMEOUT))
