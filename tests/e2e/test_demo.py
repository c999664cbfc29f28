"""A newcomer's first steps: a fresh copy of the project, `make demo`, the README's one line to point
a shell at the demo, then `xpm-sync status`."""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests import queries, readme_sample
from tests.conftest import REPO

LEFT_BEHIND = shutil.ignore_patterns(
    ".git", ".venv", ".demo", ".airflow", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info"
)


def _readme_line() -> str:
    """The line the README gives for pointing a shell at the demo."""
    for line in (REPO / "README.md").read_text().splitlines():
        if line.strip().startswith("$ source .demo/env"):
            return line.strip().removeprefix("$ ").split("#")[0].strip()
    raise AssertionError("the README does not show how to point a shell at the demo")


def test_make_demo_then_the_readmes_one_line_then_status(tmp_path: Path):
    clone = tmp_path / "xpm-sync"
    shutil.copytree(REPO, clone, ignore=LEFT_BEHIND)
    # The project's own virtualenv, as `make` would have built it here (building it again takes minutes).
    (clone / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env["HOME"] = str(tmp_path)
    demo = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "To use the demo from this shell:  source .demo/env" in demo.stdout
    # The README shows what the demo prints (its figures from `python -m tests.readme_sample`).
    assert readme_sample.mismatches((REPO / "README.md").read_text(), demo.stdout) == []
    assert list((clone / ".demo" / "mail").glob("*.eml")) == []  # the sink is there; nothing was wrong

    shell = f"{_readme_line()} && xpm-sync status"
    status = subprocess.run(["bash", "-c", shell], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert readme_sample.status_mismatches((REPO / "README.md").read_text(), status.stdout) == []
    assert "practice           Harbour View Accountants" in status.stdout
    assert "status             connected" in status.stdout
    assert (clone / ".demo" / "practice.db").exists()
    assert not (tmp_path / "airflow" / "xpm_practice.db").exists()  # nothing made in the default home
    _the_example_queries_answer_what_the_sandbox_says(clone / ".demo")

    _make_airflow_reuses_the_demo(clone, env)


def _the_example_queries_answer_what_the_sandbox_says(demo: Path) -> None:
    """docs/schema.md's example queries on the demo's store, against the sandbox's own answers (kept by the demo)."""
    from sqlalchemy import create_engine, select

    from xpm_sync.store.models import XpmConnection

    engine = create_engine(f"sqlite:///{demo / 'practice.db'}")
    with engine.connect() as conn:
        tenant_id = conn.scalar(select(XpmConnection.tenant_id))
    expected = queries.plain(json.loads((demo / "sandbox-answers.json").read_text()))
    assert all(expected.values())
    assert queries.run(engine, tenant_id) == expected
    engine.dispose()


def _make_airflow_reuses_the_demo(clone: Path, env: dict[str, str]) -> None:
    """`make airflow` after the demo: no second demo, the API server before anything scheduled, no
    traceback, and the outage email in the demo's mail sink. (Its start-up time is in
    bench/airflow_start.py, not asserted here.)"""
    from xpm_sandbox.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        ["make", "airflow", f"PORT={port}"], cwd=clone, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    url, out = f"http://localhost:{port}", ""
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert proc.poll() is None, "make airflow stopped"
        password = json.loads((clone / ".demo" / "airflow" / "passwords.json").read_text())["admin"]
        token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=10)
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        sandbox = ""
        while not sandbox and time.monotonic() < deadline:  # the ready message names the sandbox
            line = proc.stdout.readline() if proc.stdout else ""
            out += line
            sandbox = next(iter(re.findall(r"XPM sandbox at (http://\S+)", line)), "")
        requests.post(f"{sandbox}/_sandbox/revoke", json={}, timeout=10).raise_for_status()  # an outage
        run = requests.post(
            f"{url}/api/v2/dags/xpm_overnight_sync/dagRuns", json={"logical_date": None}, headers=headers, timeout=30
        ).json()["dag_run_id"]
        mail: list[Path] = []
        while not mail and time.monotonic() < deadline + 120:
            mail = sorted((clone / ".demo" / "mail").glob("*.eml"))
            time.sleep(1)
        assert mail, f"no alert email arrived for {run}"
        message = email.message_from_bytes(mail[0].read_bytes())
        assert message["Subject"] == "XPM needs to reconnect: Harbour View Accountants"
        assert message["To"] == "practice-admin@harbourview.example"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a person stops it
        rest, _ = proc.communicate(timeout=120)
        out += rest
    assert "Reusing the finished demo" in out
    assert "Running xpm_overnight_sync" not in out  # no second demo
    assert "Airflow is ready" in out
    assert "== Email to practice-admin@harbourview.example: XPM needs to reconnect" in out
    logs = "".join(p.read_text(errors="replace") for p in (clone / ".demo" / "logs").glob("*.log"))
    assert "Traceback" not in out
    assert "Traceback" not in logs
