"""The production stack as local processes: what docker-compose.yaml runs, without Docker.

Airflow's api-server, scheduler, dag-processor, triggerer and N Celery workers on CeleryExecutor,
with Redis as the broker and PostgreSQL for Airflow's metadata, Celery's results and the practice
database. The Airflow settings are the compose file's `x-airflow-common` environment, with its
`${VAR:-default}` references filled from the .env file (python-dotenv does the interpolation):
one source of truth for both ways of running the stack. Only the host names differ (here every
service is on 127.0.0.1), and they are .env variables too.

`xpm-dev stack` (`make stack`) runs it with throwaway databases, the XPM sandbox and an SMTP sink,
until Ctrl-C; the end-to-end tests use `Stack` directly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from dotenv import dotenv_values

COMPOSE_FILE = "docker-compose.yaml"
# Where each service's host is, when every service is a local process.
LOCAL_HOSTS = {
    "POSTGRES_HOST": "127.0.0.1",
    "REDIS_HOST": "127.0.0.1",
    "AIRFLOW_API_HOST": "127.0.0.1",
    "SMTP_HOST": "127.0.0.1",
}


def worker_hostname() -> str:
    """Airflow's `[core] hostname_callable` for a worker of this stack: its own name, so a task
    instance records which of the workers on this one machine ran it."""
    return os.environ.get("XPM_SYNC_WORKER_NAME") or socket.getfqdn()


def airflow_environment(compose_file: Path, variables: Mapping[str, str]) -> dict[str, str]:
    """The compose file's x-airflow-common environment, its `${...}` filled from `variables`."""
    spec = yaml.safe_load(compose_file.read_text())
    template: dict[str, Any] = spec["x-airflow-common"]["environment"]
    missing = [name for name in _required(template) if not variables.get(name)]  # `${VAR:?message}` in the compose file
    if missing:
        raise SystemExit(f"Set {', '.join(sorted(missing))} in the .env file (see .env.example).")
    lines = [f"{k}={_quote(str(v))}" for k, v in variables.items()]
    lines += [f"{k}={_quote(_plain(str(v)))}" for k, v in template.items()]
    values = dotenv_values(stream=io.StringIO("\n".join(lines)), interpolate=True)
    return {k: values[k] or "" for k in template}


def _required(template: Mapping[str, Any]) -> set[str]:
    import re

    return {m.group(1) for v in template.values() for m in re.finditer(r"\$\{(\w+):\?", str(v))}


def _plain(value: str) -> str:
    """`${VAR:?message}` as dotenv reads it (required variables were checked before)."""
    import re

    return re.sub(r"\$\{(\w+):\?[^}]*\}", r"${\1}", value)


def _quote(value: str) -> str:
    """A .env value as dotenv reads it back: literal in single quotes, unless it is a template."""
    if "${" in value:
        return '"' + value.replace('"', '\\"') + '"'
    if "'" in value:
        raise SystemExit("A setting of the stack may not hold a single quote ('); choose another value.")
    return f"'{value}'"


@dataclass
class Stack:
    """The services as processes; `start()` waits until the api-server and scheduler are healthy."""

    root: Path
    home: Path
    variables: dict[str, str]
    workers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.variables['AIRFLOW_API_PORT']}"

    def _base_env(self) -> dict[str, str]:
        airflow = airflow_environment(self.root / COMPOSE_FILE, self.variables)
        airflow["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(self.home / "passwords.json")
        return {
            **os.environ,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.root / "plugins"),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "xpm_devtools.stack.worker_hostname",
            **airflow,
            **self.extra_env,
        }

    def init(self) -> None:
        """What airflow-init does: migrate Airflow's metadata, the admin's password, xpm-sync setup."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = self._base_env()
        user, password = self.variables["AIRFLOW_ADMIN_USER"], self.variables["AIRFLOW_ADMIN_PASSWORD"]
        (self.home / "passwords.json").write_text(json.dumps({user: password}))
        for cmd in (["airflow", "db", "migrate"], ["xpm_sync.cli", "setup"]):
            module = ["-m", *cmd]
            done = subprocess.run([sys.executable, *module], env=self.env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def _spawn(self, name: str, args: list[str], **env: str) -> None:
        path = self.home / f"{name}.log"
        if path.exists():  # a restarted service: keep the earlier log beside the new one
            path.rename(self.home / f"{name}.{int(time.time() * 1000)}.log")
        log = open(path, "wb")  # noqa: SIM115 - the process owns it until it stops
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start(self, timeout: float = 240) -> None:
        self.init()
        self._spawn("api-server", ["api-server", "--port", self.variables["AIRFLOW_API_PORT"], "--host", "127.0.0.1"])
        self._spawn("scheduler", ["scheduler"])
        self._spawn("dag-processor", ["dag-processor"])
        self._spawn("triggerer", ["triggerer"])
        for n in range(1, self.workers + 1):
            self.start_worker(n)
        self.wait_healthy(timeout)

    def start_worker(self, n: int) -> None:
        name = f"worker-{n}"
        self._spawn(name, ["celery", "worker", "--celery-hostname", f"{name}@%h"], XPM_SYNC_WORKER_NAME=name)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} stopped (exit {proc.returncode}); see {self.home / name}.log")
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if health["scheduler"]["status"] == "healthy" and self.workers_ready():
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(2)
        raise RuntimeError(f"the stack did not come up in {timeout:.0f} s; logs in {self.home}")

    def workers_ready(self) -> bool:
        """Every running worker has said it is ready for tasks (Celery's "ready." line)."""
        for name in self.procs:
            if name.startswith("worker-") and b" ready." not in (self.home / f"{name}.log").read_bytes():
                return False
        return True

    def kill(self, name: str) -> list[int]:
        """kill -9 a service and every process it started, as when its machine is lost; returns
        their pids. Its process group is not enough: Airflow runs each task in a group of its own,
        which would live on, orphaned, and finish the try the worker was lost with."""
        import psutil

        proc = self.procs[name]
        tree = [psutil.Process(proc.pid)]
        with contextlib.suppress(psutil.NoSuchProcess):
            tree += tree[0].children(recursive=True)
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        proc.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)
        return [member.pid for member in tree]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
            del name


def local_variables(root: Path, env_file: Path | None, **overrides: str) -> dict[str, str]:
    """.env.example's settings, then the .env file's, then `overrides`; hosts on 127.0.0.1."""
    values: dict[str, str] = {k: v or "" for k, v in dotenv_values(root / ".env.example").items()}
    if env_file is not None and env_file.exists():
        values.update({k: v or "" for k, v in dotenv_values(env_file).items()})
    values.update(LOCAL_HOSTS)
    values.update(overrides)
    return values


def throwaway_database(admin_url: str, prefix: str) -> str:
    """A new database on the PostgreSQL of `admin_url`; its name."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return name


def drop_databases(admin_url: str, names: list[str]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def run(root: Path, env_file: Path | None, workers: int, port: int) -> int:
    """`xpm-dev stack`: the stack with throwaway databases on the local PostgreSQL, the XPM
    sandbox and an SMTP sink that prints what it receives; Ctrl-C stops it and drops the databases."""
    from aiosmtpd.controller import Controller
    from cryptography.fernet import Fernet

    from xpm_devtools import demo
    from xpm_sandbox.server import connection_extras, free_port
    from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    home = root / ".stack"
    home.mkdir(exist_ok=True)
    admin_url = os.environ.get("XPM_SYNC_STACK_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    databases = [throwaway_database(admin_url, f"xpm_stack_{kind}") for kind in ("airflow", "practice")]
    sandbox, sandbox_url = demo._start_sandbox(home, 200, 1000)
    demo._register_page_callback(sandbox_url, port)

    class Printer:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
            print(f"\n== Email to {', '.join(envelope.rcpt_tos)}:\n{envelope.content.decode(errors='replace')[:2000]}")
            return "250 OK"

    smtp = Controller(Printer(), hostname="127.0.0.1", port=free_port())
    smtp.start()
    connection = {
        "conn_type": "xpm",
        "login": SANDBOX_CLIENT_ID,
        "password": SANDBOX_CLIENT_SECRET,
        "extra": {**connection_extras(sandbox_url), "redirect_uri": f"http://localhost:{port}/xpm/oauth/callback"},
    }
    pg = admin_url.split("://", 1)[1].split("@")[0]
    variables = local_variables(
        root,
        env_file,
        AIRFLOW_API_PORT=str(port),
        AIRFLOW_BASE_URL=f"http://localhost:{port}",
        POSTGRES_USER=pg.split(":")[0],
        POSTGRES_PASSWORD=pg.split(":")[1] if ":" in pg else "",
        AIRFLOW_DB=databases[0],
        PRACTICE_DB=databases[1],
        SMTP_PORT=str(smtp.port),
        XPM_CONNECTION=json.dumps(connection),
    )
    makers: dict[str, Callable[[], str]] = {
        "AIRFLOW_FERNET_KEY": lambda: Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": lambda: uuid.uuid4().hex,
        "AIRFLOW_ADMIN_PASSWORD": lambda: uuid.uuid4().hex[:12],
    }
    for name, make in makers.items():
        variables[name] = variables.get(name) or make()
    stack = Stack(root, home / "airflow", variables, workers=workers)
    try:
        print(f"Starting Airflow on CeleryExecutor with {workers} workers (logs in {stack.home}) ...", flush=True)
        stack.start()
        print(
            f"\nThe stack is up.\n  Airflow UI     {stack.url}  (user {variables['AIRFLOW_ADMIN_USER']}, "
            f"password {variables['AIRFLOW_ADMIN_PASSWORD']})\n  XPM page       {stack.url}/xpm/\n"
            f"  XPM sandbox    {sandbox_url}\n  Practice DB    {databases[1]} on {admin_url.rsplit('/', 1)[0]}\n"
            "Ctrl-C stops it and drops its databases.",
            flush=True,
        )
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(1)
        print("A service stopped; see its log in " + str(stack.home), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        smtp.stop()
        sandbox.terminate()
        drop_databases(admin_url, databases)
