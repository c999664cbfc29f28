"""`xpm-sync` as a practice administrator runs it: a subprocess, the real sandbox and store, its exit
code and its exact sentences."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.orm import Session

from tests.conftest import REPO, dag_of
from tests.integration.conftest import Inbox, Xpm, connect_command
from xpm_sandbox.state import USERS
from xpm_sync import activity, alerts, settings
from xpm_sync.store.migrate import head_revision
from xpm_sync.sync import policy

SETUP_HINT = "Run `xpm-sync setup` to create it, or point this shell at the right Airflow home"


def _cli(*args: str, env: dict[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpm_sync.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**(env if env is not None else os.environ), **extra},
    )


def _cli_connect(user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(connect_command(user, *args), capture_output=True, text=True, timeout=180)


def _entries(xpm: Xpm, n: int = 20) -> list[Any]:
    with Session(xpm.engine) as s:
        return list(activity.recent(s, n))


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """What is under test here is the command line's words and exit codes, not the database: SQLite
    (every store test runs on PostgreSQL too)."""
    return f"sqlite:///{tmp_path / 'practice.db'}"


@pytest.fixture
def plain_shell(tmp_path: Path) -> dict[str, str]:
    """A shell with nothing set up: no AIRFLOW_* variables, a home of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return {**env, "HOME": str(tmp_path)}


@pytest.mark.parametrize("command", [["status"], ["activity"], ["settings"], ["db", "current"]])
def test_a_read_only_command_in_a_plain_shell_says_where_it_looked_and_creates_nothing(
    plain_shell: dict[str, str], tmp_path: Path, command: list[str]
):
    home = tmp_path / "airflow"
    result = _cli(*command, env=plain_shell)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"There is no practice database at {home / 'xpm_practice.db'} (Airflow's home is {home}). {SETUP_HINT} "
        "(for the demo: `source .demo/env`)."
    )
    assert not (home / "xpm_practice.db").exists()


def test_a_practice_database_not_set_up_is_named_with_the_command_to_run(tmp_path: Path):
    empty = tmp_path / "empty.db"
    empty.touch()
    result = _cli("status", AIRFLOW__XPM_SYNC__STORE_URL=f"sqlite:///{empty}")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"The practice database at sqlite:///{empty} is empty. Run `xpm-sync setup` to prepare it."
    )


@pytest.fixture
def connected(xpm: Xpm) -> Xpm:
    assert _cli_connect(USERS.admin, "--by", "ada", "--no-sync").returncode == 0
    xpm.control("limits", {"per_minute": 100_000})
    return xpm


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["sync", "--client", "not-a-uuid"],
            "xpm-sync sync: argument --client: 'not-a-uuid' is not a client UUID: a client UUID looks like "
            "0183f65c-08c6-47b7-af05-3da072e901ae (XPM shows it in the client's address). (see `xpm-sync sync --help`)",
            id="client",
        ),
        pytest.param(
            ["sync", "--job", "J1/../staff.api/list"],
            "xpm-sync sync: argument --job: 'J1/../staff.api/list' is not a job number: a job number looks like "
            "J000309: letters, digits, '.', '-' or '_'. (see `xpm-sync sync --help`)",
            id="job",
        ),
        pytest.param(
            ["activity", "--limit", "-3"],
            "xpm-sync activity: argument --limit: must be above 0, not -3 (see `xpm-sync activity --help`)",
            id="limit",
        ),
        pytest.param(
            ["activity", "--limit", "9" * 30],
            "xpm-sync activity: argument --limit: must be at most 2,147,483,647, not "
            + "9" * 30
            + " (see `xpm-sync activity --help`)",
            id="huge-limit",
        ),
        pytest.param(
            ["changes", "--retry", "1" * 23],
            "xpm-sync changes: argument --retry: must be at most 2,147,483,647, not "
            + "1" * 23
            + " (see `xpm-sync changes --help`)",
            id="huge-id",
        ),
        pytest.param(
            ["db", "downgrade", "no-such-revision"],
            "Can't locate revision identified by 'no-such-revision'. The practice database's revisions run from base "
            f"to {head_revision()} (`xpm-sync db current` shows where it is); nothing was changed.",
            id="unknown-revision",
        ),
        pytest.param(
            ["sync", "--entities", "clients", "--confirm-removals"],
            "--confirm-removals applies to a full sync: add --full.",
            id="confirm-without-full",
        ),
    ],
)
def test_a_wrong_value_gets_one_line_and_no_call_to_xpm(connected: Xpm, args: list[str], message: str):
    calls = len(connected.srv.sandbox.gateway.calls)
    result = _cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert "usage:" not in result.stderr
    assert len(connected.srv.sandbox.gateway.calls) == calls


def test_a_dry_run_says_what_it_would_write_and_that_nothing_was(connected: Xpm):
    result = _cli("sync", "--entities", "staff", "clients", "--full", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("staff                      full         read 6, would write 6, 1 calls")
    assert re.fullmatch(r"total +would write \d+ \(a dry run: nothing was written\), 2 XPM calls", lines[-1])
    assert "wrote" not in result.stdout
    closing = _entries(connected)[0]
    assert re.match(r"Manual sync \(dry run\) finished: \d+ rows would be written \(nothing was\)", closing.message)
    with Session(connected.engine) as s:
        from xpm_sync.store.models import Client, Staff

        assert s.query(Staff).count() == s.query(Client).count() == 0


def test_a_refused_job_sync_exits_1_and_closes_as_refused(connected: Xpm):
    assert _cli("sync", "--entities", "job_states", "clients", "jobs").returncode == 0
    with Session(connected.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
    connected.connect()  # granting practicemanager.job, which pushing jobs needs
    assert _cli("job-states", "set", "Review", "REVIEW").returncode == 0
    job = next(j for j in connected.srv.sandbox.main.jobs.values() if j.state == "Planned")
    changed = _cli("job", "set-state", job.number, "Review", "--by", "ada")
    assert changed.stdout.startswith(f"Job {job.number} is now Review here; it goes to XPM with the next push.")
    result = _cli("sync", "--entities", "jobs", "--by", "ada")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(policy.JOBS_LOCAL.format(count=1))
    closing = _entries(connected)[0]
    assert (closing.status, closing.actor) == ("Failure", "ada")
    assert closing.message.startswith("Manual job sync refused:")
    assert not any(e.status == "Success" and "finished" in e.message for e in _entries(connected, 3))


def test_a_partly_failed_sync_exits_1_and_says_what_was_refused(connected: Xpm):
    assert _cli("sync", "--entities", "custom_field_definitions", "clients").returncode == 0
    client = next(iter(connected.srv.sandbox.main.clients))
    connected.control("faults", {"kind": "business_error", "path": f"{client}/customfield", "description": "Busy"})
    result = _cli("sync", "--entities", "client_custom_fields", "--client", client)
    assert result.returncode == 1
    assert f"client_custom_fields       refused      {client}: Busy" in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("Manual sync partly failed: client_custom_fields did not finish (see the entries above).")
    )
    assert _entries(connected)[0].message.startswith("Manual sync partly failed:")


def test_status_keeps_calls_left_after_an_auth_failure_and_a_reconnect(connected: Xpm):
    assert _cli("sync", "--entities", "staff").returncode == 0
    before = json.loads(_cli("status", "--json").stdout)
    assert before["calls_left_today"] == 4999
    assert before["custom_fields"] == "Custom fields: not read yet."
    connected.control("faults", {"kind": "403", "path": "staff.api"})
    assert _cli("sync", "--entities", "staff").returncode == 1
    assert json.loads(_cli("status", "--json").stdout)["status"] == "needs_reconnect"
    assert _cli_connect(USERS.admin, "--by", "ada").returncode == 0
    after = json.loads(_cli("status", "--json").stdout)
    assert (after["status"], after["calls_today"], after["calls_left_today"]) == ("connected", 2, 4999)


def test_activity_shows_who_acted_and_times_in_the_practices_zone(connected: Xpm):
    _cli("settings", "maintain_jobs_locally", "on", "--by", "ada")
    result = _cli("activity", "--limit", "1", AIRFLOW__XPM_SYNC__TIMEZONE="Pacific/Auckland")
    assert result.returncode == 0
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d NZ[DS]T  Success +ada +Maintain jobs locally turned on", result.stdout.strip()
    )


def test_the_browser_is_told_when_the_connection_is_refused(xpm: Xpm):
    """The page Xero's redirect lands on says what happened, not "Sign-in received"."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpm_sync.cli", "connect", "--by", "noel"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = ""
    while "identity/connect/authorize" not in url:
        url = proc.stdout.readline().strip()
    redirect = requests.post(
        f"{xpm.srv.url}/_sandbox/consent", json={"authorize_url": url, "user": USERS.no_privilege}, timeout=10
    ).json()["redirect"]
    deadline = time.monotonic() + 30
    while True:
        try:
            page = requests.get(redirect, timeout=30)
            break
        except requests.ConnectionError:  # the listener is not up yet
            assert time.monotonic() < deadline
            time.sleep(0.2)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "<h1>XPM was not connected</h1>" in page.text
    assert "Xero connected no XPM practice" in page.text
    assert "Sign-in received" not in page.text
    assert err.strip().startswith("Noel Noaccess signed in to Xero. Xero connected no XPM practice.")
    with Session(xpm.engine) as s:  # the refusal is in Practice Activity, under who tried
        entry = activity.recent(s, 1)[0]
    assert (entry.status, entry.actor) == ("Failure", "Noel Noaccess")
    assert entry.message.startswith("Sign-in refused: Noel Noaccess signed in to Xero.")


@pytest.mark.parametrize("first", ["command line", "dag task"])
def test_an_auth_failure_raises_the_same_alert_and_one_email_whoever_meets_it(
    connected: Xpm, smtp: Inbox, airflow_db: Any, first: str
):
    connected.control("faults", {"kind": "remove_privilege", "path": "staff.api"})

    def command_line() -> None:
        # Meeting the failure, the sync partly fails (1); once XPM needs reconnecting it calls nothing (2).
        assert _cli("sync", "--entities", "staff").returncode == (1 if first == "command line" else 2)

    def dag_task() -> None:
        dag_of("xpm_overnight_sync").test()

    meet = {"command line": command_line, "dag task": dag_task}
    meet[first]()
    meet["dag task" if first == "command line" else "command line"]()
    raised = [e for e in _entries(connected, 60) if e.message.startswith(alerts.AUTH_FAILED)]
    assert len(raised) == 1
    run_id = raised[0].details["run_id"]
    who = f"{getpass.getuser()} (command line)" if first == "command line" else raised[0].actor
    assert raised[0].message == f"{alerts.AUTH_FAILED}. {alerts.WHAT_TO_DO} It was met by {who} in run {run_id}."
    assert (raised[0].status, raised[0].actor) == ("Action Required", who)  # the entry that needs a person
    assert run_id.startswith("cli-" if first == "command line" else "manual__")
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == "XPM needs to reconnect: Harbour View Accountants"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [(["--help"], 0, "usage: xpm-sync"), (["frobnicate"], 2, "invalid choice: 'frobnicate'")],
)
def test_help_and_a_usage_error_answer_without_airflow_and_create_nothing(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    """In a plain shell with an empty HOME and no AIRFLOW_HOME: Airflow (seconds to import, and it
    makes ~/airflow) is not imported, and nothing appears under HOME or the working folder. The time
    itself is measured in bench/cli_start.py, not here."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(REPO / "include")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "xpm_sync.cli", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == code
    timings = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    said = proc.stdout + "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time:"))
    assert words in said
    imported = {line.rsplit("|", 1)[-1].strip() for line in timings}
    assert "xpm_sync.plain_errors" in imported  # the code under test ran (from this checkout's include/)
    assert not [m for m in imported if m == "airflow" or m.startswith("airflow.")]
    assert list(home.rglob("*")) == []


def test_status_answers_without_importing_airflow(connected: Xpm, airflow_db: Any) -> None:
    """`xpm-sync status` reads Airflow's configuration and the store's connection where Airflow
    would (light_config), so it answers without Airflow's seconds of import. Its time is in
    bench/cli_start.py."""
    proc = _cli_timed("status")
    assert proc.returncode == 0, proc.stderr
    assert "practice           Harbour View Accountants" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "xpm_sync.light_config" in imported
    assert not [m for m in imported if m == "airflow" or m.startswith("airflow.")]


def _cli_timed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "xpm_sync.cli", *args],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_plan_says_what_tonight_spends_and_what_another_budget_would_change(connected: Xpm):
    reference = ["staff", "categories", "job_states", "client_groups", "custom_field_definitions"]
    assert _cli("sync", "--full", "--entities", *reference, "clients", "jobs").returncode == 0
    practice = connected.srv.sandbox.main
    backlog = len(practice.clients) + len(practice.jobs)  # custom fields never read yet
    plan = json.loads(_cli("plan", "--json", "--budget", "50").stdout)
    rows = {r["entity"]: r for r in plan["entities"]}
    assert [rows[name]["calls"] for name in reference] == [1, 1, 1, 1, 1]
    assert all(rows[name]["bytes"] > 0 for name in reference)  # measured on the sync just run
    assert rows["tax_returns"]["calls"] == 0
    assert plan["custom_field_backlog"] == backlog
    assert (plan["sweep_budget"], plan["nights_to_clear_backlog"]) == (200, 1)
    assert (plan["what_if_budget"], plan["what_if_nights"]) == (50, -(-backlog // 50))
    assert plan["calls"] == sum(r["calls"] for r in plan["entities"])

    shown = _cli("plan", "--budget", "50")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["Tonight", "calls", "data"]
    assert re.fullmatch(r"Staff +1 +[\d.,]+ (B|KB|MB)", lines[1])
    assert f"Custom field backlog: {backlog:,} records never read" in shown.stdout
    assert f"At 50 calls a night: about {-(-backlog // 50)} nights." in shown.stdout


def test_status_shows_the_scopes_granted_and_the_data_from_xpm(connected: Xpm):
    assert _cli("sync", "--entities", "staff").returncode == 0
    shown = _cli("status")
    assert "scopes             offline_access openid profile email practicemanager.read" in shown.stdout
    assert re.search(r"data egress +[\d.,]+ KB today, [\d.,]+ KB this month of 250 GB \(0\.00%\)", shown.stdout)
    _cli("settings", "maintain_jobs_locally", "on", "--by", "ada")
    needs = _cli("status")
    assert needs.stdout.splitlines()[0] == (
        "XPM needs more access: practicemanager.job (to push changes to XPM while 'Maintain jobs locally' is on). "
        "Reconnect (`xpm-sync connect`) to grant it."
    )
