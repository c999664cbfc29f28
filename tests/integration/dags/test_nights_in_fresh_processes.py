"""Two overnight syncs as a real night runs them: each `airflow dags test` a process of its own.

Airflow starts every task in a new process, so what one night stores (row fingerprints, answer
fingerprints) must be reproducible by the next night's process, or an unchanged night rewrites
every row and reads every custom field again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from sqlalchemy.orm import Session

from tests.conftest import REPO
from tests.integration.conftest import Xpm
from tests.integration.sync.truth import differences
from xpm_sync import activity


def _night(xpm: Xpm) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "xpm_overnight_sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _closing(xpm: Xpm) -> Any:
    with Session(xpm.engine) as s:
        return next(e for e in activity.recent(s, 40) if e.message.startswith("Overnight sync"))


def test_an_unchanged_night_in_a_new_process_writes_nothing_and_reads_no_custom_field(xpm: Xpm, airflow_db: Any):
    xpm.connect()
    xpm.control("limits", {"per_minute": 100_000})
    _night(xpm)
    first = _closing(xpm)
    assert first.status == "Success", first.message
    assert first.details["written"] > 0
    assert differences(xpm.engine, xpm.srv.sandbox.main) == []
    before = len(xpm.srv.sandbox.gateway.calls)

    _night(xpm)
    second = _closing(xpm)
    assert second.id != first.id
    assert second.status == "Success", second.message
    assert second.details["written"] == 0, second.message
    made = [c for c in xpm.srv.sandbox.gateway.calls[before:] if c.status == 200]
    assert not [c for c in made if c.path.endswith("/customfield")], (
        "custom fields were read again on an unchanged night"
    )
    assert differences(xpm.engine, xpm.srv.sandbox.main) == []
