"""docker-compose.yaml read by a real Compose implementation (Debian's docker-compose, `config`,
which needs no Docker engine), and the process stack reading the same settings from it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from tests.conftest import REPO
from xpm_devtools.stack import Stack, airflow_environment

REQUIRED = {
    "AIRFLOW_FERNET_KEY": "fernet-key-for-the-test",
    "AIRFLOW_JWT_SECRET": "jwt-secret-for-the-test",
    "AIRFLOW_API_SECRET_KEY": "api-secret-key-for-the-test",
    "AIRFLOW_ADMIN_PASSWORD": "admin-password-for-the-test",
    "SMTP_HOST": "mail.practice.example",
    "XPM_CONNECTION": "xpm://client-id:client-secret@?redirect_uri=https%3A%2F%2Fairflow.example%2Fxpm%2Foauth%2Fcallback",
}
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}


def _compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if os.environ.get("XPM_SYNC_REQUIRE_COMPOSE") == "1":
            pytest.fail("docker-compose (Debian's package) is required to check docker-compose.yaml")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return found


def _project(tmp_path: Path, **changes: str) -> Path:
    shutil.copy(REPO / "docker-compose.yaml", tmp_path / "docker-compose.yaml")
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        if name in changes:
            line = f"{name}={changes[name]}"
        lines.append(line)
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    return tmp_path


def _config(compose: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "XPM_", "POSTGRES", "REDIS", "SMTP"))}
    return subprocess.run([compose, "config"], cwd=folder, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def resolved(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    compose = _compose()
    folder = _project(tmp_path, **REQUIRED)
    done = _config(compose, folder)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout), folder


def test_the_services_of_airflows_compose_file_with_healthchecks_and_conditions(resolved):
    spec, _folder = resolved
    services = spec["services"]
    assert set(services) == {"postgres", "redis", *AIRFLOW_SERVICES}
    for name in services.keys() - {"airflow-init"}:
        assert services[name]["healthcheck"]["test"], name
    for name in AIRFLOW_SERVICES:
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy", name
        assert needs["redis"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert needs["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["command"] == "celery worker"
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    # The practice database is its own database, not Airflow's metadata.
    assert env["AIRFLOW__XPM_SYNC__STORE_URL"].endswith("@postgres:5432/practice")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["AIRFLOW_CONN_XPM_DEFAULT"] == REQUIRED["XPM_CONNECTION"]


def _listens_on(service: dict[str, Any]) -> int:
    """The port the api-server listens on inside its container: `--port` in its command, else 8080."""
    command = service["command"] if isinstance(service["command"], list) else str(service["command"]).split()
    return int(command[command.index("--port") + 1]) if "--port" in command else 8080


@pytest.mark.parametrize("published", ["8080", "8090"])
def test_the_workers_reach_the_api_server_where_it_listens_whatever_port_is_published(tmp_path: Path, published):
    compose = _compose()
    done = _config(compose, _project(tmp_path, **REQUIRED, AIRFLOW_API_PORT=published))
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    api = services["airflow-apiserver"]
    listening = _listens_on(api)
    (port,) = api["ports"]
    assert (str(port["published"]), int(port["target"])) == (published, listening)
    assert f"http://localhost:{listening}/" in " ".join(api["healthcheck"]["test"])
    # The XPM page reaches Airflow's REST API inside the api-server's own container.
    assert api["environment"]["AIRFLOW__XPM_SYNC__AIRFLOW_API_URL"] == f"http://localhost:{listening}"
    for name in AIRFLOW_SERVICES:
        url = services[name]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        assert url == f"http://airflow-apiserver:{listening}/execution/", (name, url)


def test_every_container_shares_the_secrets_and_the_scheduler_serves_its_health(resolved):
    spec, _folder = resolved
    for name in AIRFLOW_SERVICES:
        env = spec["services"][name]["environment"]
        assert env["AIRFLOW__API__SECRET_KEY"] == REQUIRED["AIRFLOW_API_SECRET_KEY"], name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == REQUIRED["AIRFLOW_JWT_SECRET"], name
        assert env["AIRFLOW__SMTP__SMTP_HOST"] == REQUIRED["SMTP_HOST"], name
    scheduler = spec["services"]["airflow-scheduler"]
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert "http://localhost:8974/health" in scheduler["healthcheck"]["test"]
    # A lost worker's task is noticed within a minute and tried again 30 s later.
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "60"
    assert scheduler["environment"]["AIRFLOW__XPM_SYNC__TASK_RETRY_DELAY_SECONDS"] == "30"


@pytest.mark.parametrize("unset", ["SMTP_HOST", "AIRFLOW_API_SECRET_KEY"])
def test_a_setting_without_which_alerts_or_logs_fail_is_asked_for(tmp_path: Path, unset: str):
    done = _config(_compose(), _project(tmp_path, **{**REQUIRED, unset: ""}))
    assert done.returncode != 0
    assert f"set {unset} in .env" in done.stderr


def test_the_process_stack_reads_the_same_settings_as_compose(resolved):
    spec, folder = resolved
    variables = {k: v or "" for k, v in dotenv_values(folder / ".env").items()}
    ours = airflow_environment(folder / "docker-compose.yaml", variables)
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        theirs = {k: str(v) for k, v in spec["services"][name]["environment"].items()}
        assert {k: theirs[k] for k in ours} == ours, name
    # Where the local processes listen is the stack's own (one machine, no compose network).
    local = Stack(folder, folder / "home", {**variables, "AIRFLOW_API_PORT": "8123"})._base_env()
    assert local["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert local["AIRFLOW__XPM_SYNC__AIRFLOW_API_URL"] == "http://127.0.0.1:8123"
    assert local["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] != "8974"


def test_a_missing_secret_is_named_by_compose_and_by_the_stack(tmp_path: Path):
    compose = _compose()
    folder = _project(tmp_path, **{**REQUIRED, "AIRFLOW_FERNET_KEY": ""})
    done = _config(compose, folder)
    assert done.returncode != 0
    assert "set AIRFLOW_FERNET_KEY in .env" in done.stderr
    variables = {k: v or "" for k, v in dotenv_values(folder / ".env").items()}
    with pytest.raises(SystemExit, match="Set AIRFLOW_FERNET_KEY in the .env file"):
        airflow_environment(folder / "docker-compose.yaml", variables)
