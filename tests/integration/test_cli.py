from __future__ import annotations

import os
import subprocess
import sys

from xpm_sync.store.migrate import head_revision


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpm_sync.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_db_upgrade_settings_and_activity_from_the_command_line(store_url):
    env = {**os.environ, "AIRFLOW__XPM_SYNC__STORE_URL": store_url}

    up = _cli("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert f"is at revision {head_revision()}" in up.stdout

    refused = _cli("settings", "maintain_invoices_locally", "on", env=env)
    assert refused.returncode == 2
    assert "not supported yet" in refused.stderr

    changed = _cli("settings", "maintain_jobs_locally", "on", "--by", "admin", env=env)
    assert changed.returncode == 0, changed.stderr
    assert "Maintain jobs locally          on" in changed.stdout

    log = _cli("activity", env=env)
    assert "Success" in log.stdout
    assert "Maintain jobs locally turned on" in log.stdout


def test_setup_creates_the_xpm_api_pool(airflow_db, tmp_path):
    env = {**os.environ, "AIRFLOW__XPM_SYNC__STORE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    result = _cli("setup", env=env)
    assert result.returncode == 0, result.stderr
    assert "Airflow pool xpm_api has 5 slots" in result.stdout

    from airflow.models.pool import Pool

    assert Pool.get_pool("xpm_api").slots == 5
