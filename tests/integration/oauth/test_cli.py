"""`xpm-sync connect`, `status` and `disconnect` as a practice administrator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Xpm, conn_env
from xpm_sandbox.state import USERS


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """What is under test here is the command line, not the database: SQLite (the OAuth flow and
    the sync run on PostgreSQL too in test_connect and the sync tests)."""
    return f"sqlite:///{tmp_path / 'practice.db'}"


def _cli(xpm: Xpm, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpm_sync.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__XPM_SYNC__STORE_URL": xpm.store_url, **env},
    )


def test_connect_status_and_disconnect(xpm: Xpm):
    connected = _cli(xpm, "connect", "--sandbox-user", USERS.admin, "--by", "ada")
    assert connected.returncode == 0, connected.stderr
    assert "Connected: XPM practice 'Harbour View Accountants'" in connected.stdout
    assert "signed in as Ada Admin" in connected.stdout

    status = _cli(xpm, "status", "--json")
    info = json.loads(status.stdout)
    assert (info["practice"], info["status"], info["connected_by"]) == (
        "Harbour View Accountants",
        "connected",
        "Ada Admin",
    )
    assert info["calls_today"] == 0

    again = _cli(xpm, "connect", "--sandbox-user", USERS.admin)
    assert "Reconnected" in again.stdout

    gone = _cli(xpm, "disconnect", "--by", "ada")
    assert gone.stdout.strip() == "Disconnected from Harbour View Accountants."
    assert json.loads(_cli(xpm, "status", "--json").stdout)["status"] == "disconnected"


def test_connect_with_two_practices_needs_a_choice_and_takes_one(xpm: Xpm):
    refused = _cli(xpm, "connect", "--sandbox-user", USERS.two_practices)
    assert refused.returncode == 2
    assert "several XPM practices" in refused.stderr
    chosen = _cli(xpm, "connect", "--sandbox-user", USERS.two_practices, "--practice", "Second Street Partners")
    assert "Second Street Partners" in chosen.stdout


def test_a_legacy_connection_is_told_how_to_move(xpm: Xpm):
    legacy = conn_env(xpm.srv, apiKey="ABC123", accountKey="DEF456")
    result = _cli(xpm, "connect", "--sandbox-user", USERS.admin, AIRFLOW_CONN_XPM_DEFAULT=legacy)
    assert result.returncode == 2
    assert "switched that connection method off in 2020" in result.stderr
    assert "Traceback" not in result.stderr


def test_connect_refuses_without_a_fernet_key(xpm: Xpm):
    result = _cli(xpm, "connect", "--sandbox-user", USERS.admin, AIRFLOW__CORE__FERNET_KEY="")
    assert result.returncode == 2
    assert "Fernet key" in result.stderr
    assert "AIRFLOW__CORE__FERNET_KEY" in result.stderr


def test_sync_from_the_command_line(xpm: Xpm):
    assert _cli(xpm, "connect", "--sandbox-user", USERS.admin).returncode == 0
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
