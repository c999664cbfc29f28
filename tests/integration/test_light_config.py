"""The command line's reading of Airflow's configuration and connections without Airflow
(`light_config`) gives Airflow's own answers, and hands what is not plain back to Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xpm_sync import light_config


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "airflow"
    folder.mkdir()
    (folder / "airflow.cfg").write_text(
        "[xpm_sync]\ndaily_call_limit = 1234\ntimezone = Australia/Sydney\nalert_recipients = $HOME_MAIL\n"
        f"[database]\nsql_alchemy_conn = sqlite:///{folder / 'airflow.db'}\n"
        "[core]\nload_examples = False\n"
    )
    monkeypatch.setenv("AIRFLOW_HOME", str(folder))
    monkeypatch.delenv("AIRFLOW_CONFIG", raising=False)
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.setenv("HOME_MAIL", "ada@practice.example")
    light_config._file.cache_clear()
    yield folder
    light_config._file.cache_clear()


def _airflow_says(code: str) -> Any:
    """What Airflow itself answers, in a process of its own with this environment."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=os.environ)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_options_are_read_as_airflow_reads_them(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__TIMEZONE", "Pacific/Auckland")  # the environment wins
    names = [("xpm_sync", "daily_call_limit"), ("xpm_sync", "timezone"), ("xpm_sync", "alert_recipients"),
             ("core", "load_examples")]  # fmt: skip
    airflow = _airflow_says(
        "import json; from airflow.configuration import conf; "
        f"print(json.dumps([conf.get(s, o, fallback=None) for s, o in {names!r}]))"
    )
    assert [light_config.option(s, o) for s, o in names] == airflow
    assert airflow[:3] == ["1234", "Pacific/Auckland", "ada@practice.example"]


def test_an_option_from_a_command_or_a_secret_is_left_to_airflow(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD", "echo sqlite://")
    with pytest.raises(light_config.NotPlain):
        light_config.option("database", "sql_alchemy_conn")
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD")
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "airflow.secrets.local_filesystem.LocalFilesystemBackend")
    with pytest.raises(light_config.NotPlain):
        light_config.connection("xpm_store")


def test_connections_from_the_environment_and_from_airflows_database(home: Path, monkeypatch: pytest.MonkeyPatch):
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    added = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "add", "xpm_store", "--conn-json",
         json.dumps({"conn_type": "postgres", "host": "db.example", "login": "sync", "password": "s3cr:et/",
                     "schema": "practice", "port": 5433})],
        capture_output=True, text=True, env=os.environ,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr[-2000:]
    stored = light_config.connection("xpm_store")
    assert stored == light_config.Conn("postgres", "db.example", "sync", "s3cr:et/", "practice", 5433)
    assert light_config.connection("no_such_connection") is None

    monkeypatch.setenv("AIRFLOW_CONN_XPM_STORE", "postgresql://u%40x:p%2Fw@h.example:6543/books")
    given = light_config.Conn("postgresql", "h.example", "u@x", "p/w", "books", 6543)
    assert light_config.connection("xpm_store") == given
    monkeypatch.setenv("AIRFLOW_CONN_XPM_STORE", json.dumps({"conn_type": "sqlite", "host": "/data/practice.db"}))
    assert light_config.connection("xpm_store") == light_config.Conn("sqlite", "/data/practice.db")


def test_asking_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "nowhere"))
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    light_config._file.cache_clear()
    assert light_config.option("xpm_sync", "timezone") is None
    assert light_config.connection("xpm_store") is None
    assert not (tmp_path / "nowhere").exists()
    light_config._file.cache_clear()
