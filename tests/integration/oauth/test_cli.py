"""`xpm-sync connect`, `status` and `disconnect` as a practice administrator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Xpm, conn_env, connect_command
from xpm_sandbox.state import USERS


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """What is under test here is the command line, not the database: SQLite (the OAuth flow and
    the sync run on PostgreSQL too in test_connect and the sync tests)."""
    return f"sqlite:///{tmp_path / 'practice.db'}"


def _cli(xpm: Xpm, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(xpm, [sys.executable, "-m", "xpm_sync.cli", *args], **env)


def _connect(xpm: Xpm, user: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(xpm, connect_command(user, *args), **env)


def _run(xpm: Xpm, command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__XPM_SYNC__STORE_URL": xpm.store_url, **env},
    )


def test_connect_status_and_disconnect(xpm: Xpm, tmp_path: Path):
    # An Airflow whose database this shell cannot use: the sync a first connect calls for is named.
    no_airflow = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'not-airflow.db'}"}
    connected = _connect(xpm, USERS.admin, "--by", "ada", **no_airflow)
    assert connected.returncode == 0, connected.stderr
    assert "Connected: XPM practice 'Harbour View Accountants'" in connected.stdout
    assert "signed in as Ada Admin" in connected.stdout
    assert "No sync was started in Airflow (Airflow's database could not be used from here" in connected.stderr
    assert "Trigger xpm_manual_sync from the Airflow UI, or run `xpm-sync sync --full` now." in connected.stderr

    status = _cli(xpm, "status", "--json")
    info = json.loads(status.stdout)
    assert (info["practice"], info["status"], info["connected_by"]) == (
        "Harbour View Accountants",
        "connected",
        "Ada Admin",
    )
    assert info["calls_today"] == 0

    again = _connect(xpm, USERS.admin, **no_airflow)
    assert "Reconnected" in again.stdout
    # A reconnect of a working connection changes no data: no sync is due, so none is tried.
    assert "sync" not in again.stdout.split("Reconnected", 1)[1]
    assert "No sync" not in again.stderr

    gone = _cli(xpm, "disconnect", "--by", "ada")
    assert gone.stdout.strip() == "Disconnected from Harbour View Accountants."
    assert json.loads(_cli(xpm, "status", "--json").stdout)["status"] == "disconnected"


def test_connect_can_leave_the_first_sync_for_later(xpm: Xpm):
    connected = _connect(xpm, USERS.admin, "--by", "ada", "--no-sync")
    assert connected.returncode == 0, connected.stderr
    assert connected.stdout.splitlines()[-1] == (
        "No sync started (--no-sync). Run `xpm-sync sync --full` or trigger xpm_manual_sync when ready."
    )
    assert connected.stderr == ""


def test_connect_with_two_practices_needs_a_choice_and_takes_one(xpm: Xpm):
    refused = _connect(xpm, USERS.two_practices)
    assert refused.returncode == 2
    assert "several XPM practices" in refused.stderr
    chosen = _connect(xpm, USERS.two_practices, "--practice", "Second Street Partners")
    assert "Second Street Partners" in chosen.stdout


def test_a_legacy_connection_is_told_how_to_move(xpm: Xpm):
    legacy = conn_env(xpm.srv, apiKey="ABC123", accountKey="DEF456")
    result = _connect(xpm, USERS.admin, AIRFLOW_CONN_XPM_DEFAULT=legacy)
    assert result.returncode == 2
    assert "switched that connection method off in 2020" in result.stderr
    assert "Traceback" not in result.stderr


def test_connect_refuses_without_a_fernet_key(xpm: Xpm):
    result = _connect(xpm, USERS.admin, AIRFLOW__CORE__FERNET_KEY="")
    assert result.returncode == 2
    assert "Fernet key" in result.stderr
    assert "AIRFLOW__CORE__FERNET_KEY" in result.stderr


def test_sync_from_the_command_line(xpm: Xpm):
    assert _connect(xpm, USERS.admin).returncode == 0
    xpm.control("limits", {"per_minute": 100_000})
    result = _cli(xpm, "sync", "--entities", "staff", "clients", "--full", "--by", "ada")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["staff", "full"]
    assert lines[1].startswith("clients")
    assert f"read {len(xpm.srv.sandbox.main.clients)}," in lines[1]
    assert lines[-1].startswith("total")
    again = _cli(xpm, "sync", "--entities", "clients")
    assert "wrote 0," in again.stdout.splitlines()[0]


def test_a_sign_in_the_sandbox_refuses_ends_the_connect_with_its_reason(xpm: Xpm):
    refused = _connect(xpm, "nobody@elsewhere.example")
    assert refused.returncode == 2
    assert "xpm-dev connect: The sandbox refused the sign-in" in refused.stderr
    assert "no sandbox user nobody@elsewhere.example" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert json.loads(_cli(xpm, "status", "--json").stdout)["status"] == "not connected"
