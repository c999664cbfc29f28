"""`make demo`: from nothing to a finished overnight sync, on real Airflow and the XPM sandbox.

Everything lives under `.demo/` in the checkout: Airflow's home (SQLite, with its airflow.cfg), the
practice database, a Fernet key made for the demo, the sandbox's log, the mail the demo's SMTP sink
received (`.demo/mail/`), and `env`, which points a shell at the demo (`source .demo/env`). Nothing
here talks to the real Xero.

`make airflow` (`--serve`) reuses a finished demo: it starts a fresh sandbox (the same seeded
practice), reconnects to it, and starts Airflow's parts in order, the API server first, so that
nothing scheduled runs before the API its tasks report to is listening.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

DEMO_PER_MINUTE = 600
DEMO_RECIPIENT = "practice-admin@harbourview.example"
DEMO_SMTP_PORT = 8025  # XPM_SYNC_DEMO_SMTP_PORT overrides it
DEMO_SENDER = "xpm-sync@harbourview.example"
FINISHED = "finished.json"  # what a finished demo was made with, for `make airflow` to reuse it
SERVICES = ("scheduler", "dag-processor", "triggerer")  # started once the API server answers


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
    passwords = airflow_home / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({"admin": token_urlsafe(12)}))
    repo = Path.cwd()
    (airflow_home / "airflow.cfg").write_text(
        "# Written by `make demo`: the xpm-sync demo's Airflow (SQLite, LocalExecutor).\n"
        "[core]\n"
        f"fernet_key = {key_file.read_text().strip()}\n"
        "load_examples = False\n"
        "executor = LocalExecutor\n"
        "simple_auth_manager_users = admin:admin\n"
        f"simple_auth_manager_passwords_file = {passwords}\n"
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
        f"alert_recipients = {DEMO_RECIPIENT}\n"
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


def _connections(home: Path, sandbox_url: str, smtp_port: int | None, env: dict[str, str]) -> None:
    """The demo's connections live in Airflow's database, where Admin > Connections shows them.
    One process writes them all (each `airflow connections` call would start Airflow afresh); the
    secrets go through its standard input, not its command line."""
    from xpm_sandbox.server import connection_extras
    from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    connections: dict[str, dict[str, Any]] = {
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
    if smtp_port is not None:
        connections["smtp_default"] = {
            "conn_type": "smtp",
            "description": f"The demo's mail sink on loopback: what it receives is in {home / 'mail'}",
            "host": "127.0.0.1",
            "port": smtp_port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": DEMO_SENDER, "timeout": 10},
        }
    script = "import sys; from xpm_devtools.demo import write_connections; write_connections(sys.stdin.read())"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, input=json.dumps(connections), capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit("demo step failed: writing the demo's Airflow connections")


def write_connections(spec: str) -> None:
    """Replace the named connections in Airflow's database with these (a JSON object by conn_id)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for conn_id, fields in json.loads(spec).items():
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            extra = fields.pop("extra", None)
            session.add(Connection(conn_id=conn_id, extra=json.dumps(extra) if extra else None, **fields))


class MailSink:
    """The demo's SMTP server on loopback: each message it receives is kept as `.demo/mail/*.eml`
    (the alert panel of the XPM page lists what was sent)."""

    def __init__(self, folder: Path, echo: bool) -> None:
        self.folder, self.echo = folder, echo
        folder.mkdir(exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        import email

        message = email.message_from_bytes(envelope.content)
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{len(list(self.folder.glob('*.eml'))) + 1}.eml"
        # Said first, then kept whole (written aside, then renamed): whoever sees the file finds all of
        # it, and the line already in the output.
        if self.echo:
            print(f"\n== Email to {', '.join(envelope.rcpt_tos)}: {message['Subject']}  (kept in {path})", flush=True)
        part = path.with_suffix(".part")
        part.write_bytes(envelope.content)
        part.replace(path)
        return "250 Message accepted"


def _start_mail_sink(home: Path, echo: bool) -> Any:
    """The sink on XPM_SYNC_DEMO_SMTP_PORT (8025); None, said plainly, when that port is taken."""
    from aiosmtpd.controller import Controller

    port = int(os.environ.get("XPM_SYNC_DEMO_SMTP_PORT", DEMO_SMTP_PORT))
    controller = Controller(MailSink(home / "mail", echo), hostname="127.0.0.1", port=port)
    try:
        controller.start()
    except (OSError, RuntimeError) as exc:
        print(f"The demo's mail sink could not listen on 127.0.0.1:{port} ({exc}); alert emails will fail to send. "
              "Set XPM_SYNC_DEMO_SMTP_PORT to a free port.", flush=True)  # fmt: skip
        return None
    return controller


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
        [sys.executable, "-m", "xpm_devtools.cli", "sandbox", "--port", str(port), "--clients", str(clients),
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


SHOWN = ("Clients", "Jobs", "Client custom fields", "Job custom fields", "Invoices", "Time entries")


def _summary(home: Path, sandbox_url: str, seconds: float) -> None:
    from xpm_sync import display
    from xpm_sync.store import models as m
    from xpm_sync.store.engine import get_engine

    engine = get_engine(f"sqlite:///{home / 'practice.db'}")
    tables: list[tuple[str, Any]] = [
        ("staff", m.Staff), ("clients", m.Client), ("contacts", m.Contact), ("client groups", m.ClientGroup),
        ("relationships", m.ClientRelationship), ("jobs", m.Job), ("job assignments", m.JobAssignment),
        ("client custom field values", m.ClientCustomFieldValue), ("job custom field values", m.JobCustomFieldValue),
        ("tax returns", m.TaxReturn), ("job tasks", m.JobTask), ("time entries", m.TimeEntry),
        ("costs", m.JobCost), ("invoices", m.Invoice), ("invoice payments", m.InvoicePayment), ("quotes", m.Quote),
    ]  # fmt: skip
    calls = requests.get(f"{sandbox_url}/_sandbox/calls", timeout=10).json()
    # The sandbox's own answers to docs/schema.md's example queries, to compare the store's with.
    answers = requests.get(f"{sandbox_url}/_sandbox/answers", timeout=30).json()
    (home / "sandbox-answers.json").write_text(json.dumps(answers, indent=1))
    with Session(engine) as session:
        print(f"{'rows':>8}  table")
        for label, model in tables:
            print(f"{session.scalar(select(func.count()).select_from(model)):>8}  {label}")
        print(
            f"\nXPM calls: {calls['total']} API calls, {calls['token_requests']} token requests; {seconds:.0f} s in all"
        )
        print("\nPractice Activity (newest first; the run's summary and some of its entities):")
        newest = session.scalars(select(m.PracticeActivity).order_by(m.PracticeActivity.id.desc()).limit(100)).all()
        # The same entities every run (their tasks finish in either order, so the newest few vary).
        wanted = ["Overnight sync finished", *(f"({label})" for label in SHOWN)]
        entries = []
        for start in wanted:
            found = next((e for e in newest if e.message.startswith(start)), None)
            if found is not None:
                entries.append(found)
        for e in sorted(entries, key=lambda e: e.id, reverse=True):
            said = textwrap.shorten(e.message, 100, placeholder=" ...")
            print(f"  {display.when(e.occurred_at)}  {e.status:<15} {said}")
    print(f"\nThe practice database is {home / 'practice.db'}")
    print("To use the demo from this shell:  source .demo/env   (then e.g. `xpm-sync status`)")


def _finished_demo(home: Path, made_with: dict[str, int]) -> bool:
    """Whether `.demo` holds a demo that finished with these settings (so `make airflow` may reuse it)."""
    marker = home / FINISHED
    try:
        return bool(json.loads(marker.read_text()) == made_with and (home / "practice.db").exists()
                    and (home / "airflow" / "airflow.db").exists())  # fmt: skip
    except (OSError, ValueError):
        return False


def _wait_for_api(url: str, procs: dict[str, subprocess.Popen[bytes]], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs["api-server"].poll() is not None:
            raise SystemExit("Airflow's API server stopped while starting; see .demo/logs/api-server.log")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit("Airflow's API server did not answer in time; see .demo/logs/api-server.log")


def serve_airflow(home: Path, env: dict[str, str], port: int, sandbox_url: str) -> int:
    """Airflow's parts as processes, the API server first: the scheduler starts only once the API
    its tasks report to answers. Their output is in `.demo/logs/`; Ctrl-C stops them all."""
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "ab") as log:
            procs[name] = subprocess.Popen([sys.executable, "-m", "xpm_devtools.airflow_process", *args], env=env,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    url = f"http://localhost:{port}"
    password = json.loads((home / "airflow" / "passwords.json").read_text())["admin"]
    try:
        spawn("api-server", "api-server", "--port", str(port))
        _wait_for_api(url, procs)
        for name in SERVICES:
            spawn(name, name)
        print(f"\nAirflow is ready: {url}  (user admin, password {password}); the XPM page is under "
              f"\"Xero Practice Manager\" in its menu.\nLogs in {logs}; alert email to {DEMO_RECIPIENT} lands in "
              f"{home / 'mail'}.\nXPM sandbox at {sandbox_url} (POST /_sandbox/revoke with {{}} plays an outage). "
              "Ctrl-C stops it.", flush=True)  # fmt: skip
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        stopped = next(name for name, p in procs.items() if p.poll() is not None)
        print(f"Airflow's {stopped} stopped; see {logs / (stopped + '.log')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # The reverse of the start: the scheduler (and the tasks it runs) before the API they report to.
        for name in [*reversed(SERVICES), "api-server"]:
            p = procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


def run(*, clients: int, jobs: int, serve: bool, port: int = 8080) -> int:
    """Run the demo; with `serve`, keep Airflow (on `port`), the sandbox and the mail sink running.
    With `serve`, a demo that already finished with the same settings is reused, not run again."""
    home = Path(".demo").resolve()
    home.mkdir(exist_ok=True)
    made_with = {"clients": clients, "jobs": jobs}  # the port is written afresh each time
    reuse = serve and _finished_demo(home, made_with)
    if not reuse:
        (home / FINISHED).unlink(missing_ok=True)
        for stale in ("practice.db", "practice.db-wal", "practice.db-shm"):
            (home / stale).unlink(missing_ok=True)
    started = time.monotonic()
    mail = _start_mail_sink(home, echo=serve)
    _step(f"Starting the XPM sandbox: {clients} clients, {jobs} jobs ({DEMO_PER_MINUTE} calls a minute)")
    proc, url = _start_sandbox(home, clients, jobs)
    try:
        env = _env(_airflow_home(home, port))
        _register_page_callback(url, port)
        cli = [sys.executable, "-m", "xpm_sync.cli"]
        # The product's `xpm-sync connect`, with the sandbox's administrator at the browser.
        connect = [sys.executable, "-m", "xpm_devtools.cli", "connect", "--as", "admin@harbourview.example"]
        if reuse:
            _step("Reusing the finished demo in .demo (`make clean` or `rm -rf .demo` starts afresh)")
            _connections(home, url, mail.port if mail else None, env)
            _run([*connect, "--by", "demo"], env, quiet=False)
        else:
            _step("Preparing Airflow (SQLite) and the practice database")
            _run([sys.executable, "-m", "airflow", "db", "migrate"], env)
            _connections(home, url, mail.port if mail else None, env)
            _run([*cli, "setup"], env, quiet=False)
            _step("Connecting XPM through Xero's OAuth flow (the sandbox plays the browser)")
            # The overnight sync below is the first read, so the connect starts none of its own.
            _run([*connect, "--by", "demo", "--no-sync"], env, quiet=False)
            _step("Running xpm_overnight_sync on Airflow")
            _run([sys.executable, "-m", "airflow", "dags", "test", "xpm_overnight_sync"], env)
            _step("Summary")
            _summary(home, url, time.monotonic() - started)
            (home / FINISHED).write_text(json.dumps(made_with))
        if serve:
            _step(f"Starting Airflow on http://localhost:{port}: the API server first, then the scheduler")
            return serve_airflow(home, env, port, url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if mail is not None:
            mail.stop()
    return 0
