"""A newcomer's first steps: a fresh copy of the project, `make demo`, the README's one line to point
a shell at the demo, then `xpm-sync status`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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

    shell = f"{_readme_line()} && xpm-sync status"
    status = subprocess.run(["bash", "-c", shell], cwd=clone, env=env, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "practice           Harbour View Accountants" in status.stdout
    assert "status             connected" in status.stdout
    assert (clone / ".demo" / "practice.db").exists()
    assert not (tmp_path / "airflow" / "xpm_practice.db").exists()  # nothing made in the default home
