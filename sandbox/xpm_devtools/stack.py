"""The production stack as local processes: what docker-compose.yaml runs, without Docker.

Airflow's api-server, scheduler, dag-processor, triggerer and N Celery workers on CeleryExecutor,
with Redis as the broker and PostgreSQL for Airflow's metadata, Celery's results and the practice
database. The Airflow settings are the compose file's `x-airflow-common` environment, with its
`${VAR:-default}` references filled from the .env file (python-dotenv does the interpolation):
one source of truth for both ways of running the stack. What differs is where things listen: here
every service is on 127.0.0.1 (the host names are .env variables too), the api-server listens on
AIRFLOW_API_PORT itself (so the workers' execution API address follows it), and the scheduler's
health check takes a free port.

`xpm-dev stack` (`make stack`) runs it with throwaway databases, a Redis database of its own, the
XPM sandbox and an SMTP sink, and supervises it as a process manager would: a service that dies is
started again (as compose's `restart: always`). Ctrl-C, SIGTERM and SIGHUP stop it all and drop
what it made. The end-to-end tests use `Stack` directly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
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
    "SMTP_HOST": "127.0.0.1",
}
# A service is started again at most this many times within RESTART_WINDOW seconds; one more stop ends the stack.
MAX_RESTARTS, RESTART_WINDOW = 5, 300.0


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
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    restarts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.variables['AIRFLOW_API_PORT']}"

    def _base_env(self) -> dict[str, str]:
        from xpm_sandbox.server import free_port

        airflow = airflow_environment(self.root / COMPOSE_FILE, self.variables)
        airflow["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(self.home / "passwords.json")
        # In compose the workers reach the api-server at airflow-apiserver:8080; here it listens on
        # AIRFLOW_API_PORT of this machine, and the scheduler's /health needs a port nobody else has.
        airflow["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"{self.url}/execution/"
        airflow["AIRFLOW__XPM_SYNC__AIRFLOW_API_URL"] = self.url
        airflow["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] = str(free_port())
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
        self.commands[name] = (args, env)
        path = self.home / f"{name}.log"
        if path.exists():  # a restarted service: keep the earlier log beside the new one
            path.rename(self.home / f"{name}.{int(time.time() * 1000)}.log")
        log = open(path, "wb")  # noqa: SIM115 - the process owns it until it stops
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "xpm_devtools.airflow_process", *args],
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

    def pids(self) -> dict[str, int]:
        """Each service's process id (a worker's Celery main process), as `.stack/services.json` lists them."""
        return {name: proc.pid for name, proc in self.procs.items()}

    def restart_stopped(self, say: Callable[[str], None]) -> None:
        """Start again every service that has stopped; raise if one keeps stopping (MAX_RESTARTS)."""
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            now = time.monotonic()
            recent = [t for t in self.restarts.get(name, []) if now - t < RESTART_WINDOW] + [now]
            self.restarts[name] = recent
            if len(recent) > MAX_RESTARTS:
                raise RuntimeError(
                    f"{name} stopped {len(recent)} times in {RESTART_WINDOW / 60:.0f} minutes; "
                    f"see {self.home / name}.log"
                )
            self._stop_tree(proc)  # what it started (a worker's pool, a task) goes with it
            args, env = self.commands[name]
            self._spawn(name, args, **env)
            say(f"{name} stopped (exit {proc.returncode}); started it again (pid {self.procs[name].pid}).")

    @staticmethod
    def _stop_tree(proc: subprocess.Popen[bytes]) -> None:
        """Whatever a stopped service left running in its process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

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


def free_redis_database(host: str, port: int) -> int:
    """A Redis database (1-15) that holds no keys, for one stack's broker; its number."""
    import redis

    for number in range(1, 16):
        if redis.Redis(host=host, port=port, db=number, socket_connect_timeout=5).dbsize() == 0:
            return number
    raise SystemExit(f"Every Redis database 1-15 at {host}:{port} holds keys; the stack needs an empty one.")


def shell_env(path: Path, env: Mapping[str, str], names: list[str]) -> None:
    """A file a shell sources to use the stack (`xpm-sync status`, `xpm-dev connect`); it holds
    the stack's secrets, so only its owner may read it."""
    lines = ["# Point a shell at the running `make stack`:  source .stack/env"]
    lines += [f"export {name}={shlex.quote(env[name])}" for name in names if name in env]
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write("\n".join(lines) + "\n")


def run(root: Path, env_file: Path | None, workers: int, port: int) -> int:
    """`xpm-dev stack`: the stack with throwaway databases on the local PostgreSQL, a Redis database
    of its own, the XPM sandbox and an SMTP sink that prints what it receives, supervised until
    Ctrl-C, SIGTERM or SIGHUP, which stop it and drop the databases and the Redis keys."""
    import redis
    from aiosmtpd.controller import Controller
    from cryptography.fernet import Fernet

    from xpm_devtools import demo
    from xpm_sandbox.server import connection_extras, free_port
    from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    home = root / ".stack"
    home.mkdir(exist_ok=True)
    admin_url = os.environ.get("XPM_SYNC_STACK_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    settings = local_variables(root, env_file)
    redis_host, redis_port = settings["REDIS_HOST"], int(settings["REDIS_PORT"] or 6379)
    databases: list[str] = []
    sandbox: subprocess.Popen[bytes] | None = None
    smtp: Any = None
    stack: Stack | None = None
    redis_db: int | None = None
    try:
        redis_db = free_redis_database(redis_host, redis_port)
        databases = [throwaway_database(admin_url, f"xpm_stack_{kind}") for kind in ("airflow", "practice")]
        sandbox, sandbox_url = demo._start_sandbox(home, 200, 1000)
        demo._register_page_callback(sandbox_url, port)

        class Printer:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
                text = envelope.content.decode(errors="replace")[:2000]
                print(f"\n== Email to {', '.join(envelope.rcpt_tos)}:\n{text}", flush=True)
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
            REDIS_DB=str(redis_db),
            SMTP_PORT=str(smtp.port),
            XPM_CONNECTION=json.dumps(connection),
        )
        makers: dict[str, Callable[[], str]] = {
            "AIRFLOW_FERNET_KEY": lambda: Fernet.generate_key().decode(),
            "AIRFLOW_JWT_SECRET": lambda: uuid.uuid4().hex,
            "AIRFLOW_API_SECRET_KEY": lambda: uuid.uuid4().hex,
            "AIRFLOW_ADMIN_PASSWORD": lambda: uuid.uuid4().hex[:12],
        }
        for name, make in makers.items():
            variables[name] = variables.get(name) or make()
        stack = Stack(root, home / "airflow", variables, workers=workers)
        print(f"Starting Airflow on CeleryExecutor with {workers} workers (logs in {stack.home}) ...", flush=True)
        stack.start()
        shell_env(home / "env", stack.env, ["PATH", *sorted(k for k in stack.env if k.startswith("AIRFLOW"))])
        (home / "services.json").write_text(json.dumps(stack.pids(), indent=2))
        print(
            f"\nThe stack is up.\n  Airflow UI     {stack.url}  (user {variables['AIRFLOW_ADMIN_USER']}, "
            f"password {variables['AIRFLOW_ADMIN_PASSWORD']})\n  XPM page       {stack.url}/xpm/\n"
            f"  XPM sandbox    {sandbox_url}\n  Practice DB    {databases[1]} on {admin_url.rsplit('/', 1)[0]}\n"
            f"  Redis          database {redis_db} (Celery's broker)\n"
            "A service that stops is started again. Use it from a shell: source .stack/env\n"
            "Ctrl-C (or SIGTERM, SIGHUP) stops it and drops its databases.",
            flush=True,
        )
        while True:
            time.sleep(1)
            listed = stack.pids()
            stack.restart_stopped(lambda line: print(line, flush=True))
            if stack.pids() != listed:
                (home / "services.json").write_text(json.dumps(stack.pids(), indent=2))
    except KeyboardInterrupt:
        print("Stopping the stack ...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"The stack stopped: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if stack is not None:
            stack.stop()
        if smtp is not None:
            smtp.stop()
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=30)
        if databases:
            drop_databases(admin_url, databases)
        if redis_db is not None:  # Celery's queues, bindings and unacknowledged tasks of this stack
            redis.Redis(host=redis_host, port=redis_port, db=redis_db).flushdb()
        for made in ("env", "services.json"):
            (home / made).unlink(missing_ok=True)
