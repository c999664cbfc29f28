"""The push fault matrix: whatever goes wrong, after the next push XPM holds every change exactly once.

Four records carry changes (a job's state, another job's dates, a client's and a job's custom
fields). A push meets the fault; the fault is cleared (a refused change is put back in line, as an
administrator would); the next push runs. The sandbox's own record of the writes it applied must
hold each record's write exactly once. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from typing import Any

import pytest
import requests

from tests.conftest import REPO
from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.test_push import local  # noqa: F401 - the fixture, for these tests
from xpm_sync import changes
from xpm_sync.errors import XpmError
from xpm_sync.store.models import OutboxStatus
from xpm_sync.sync import push

FAULTS = [
    pytest.param({"kind": "503", "path": "job.api/state", "count": 2}, id="503"),
    pytest.param({"kind": "late", "path": "job.api/update", "seconds": 4}, id="timeout-after-xpm-applied-it"),
    pytest.param({"kind": "business_error", "path": "/customfield", "description": "Busy"}, id="200-ERROR"),
    pytest.param(
        {"kind": "429", "path": "job.api/state", "problem": "minute", "seconds": 2, "count": 2}, id="429-minute"
    ),
    pytest.param({"kind": "401", "path": "job.api/update"}, id="401-mid-run"),
    pytest.param("kill -9", id="kill-9-mid-run"),
]


def _changes(xpm: Xpm) -> dict[str, Any]:
    practice = xpm.srv.sandbox.main
    open_jobs = [j for j in practice.jobs.values() if practice.is_current(j) and j.state != "Review"]
    first, second, third = open_jobs[:3]
    client = next(iter(practice.clients.values()))
    changes.set_job_state(xpm.engine, first.number, "Review", actor="ada")
    changes.update_job(xpm.engine, second.number, due_date="2027-02-01", actor="ada")
    changes.set_custom_field(xpm.engine, "client", client.uuid, "Entity Code", "E-PUSH", actor="ada")
    changes.set_custom_field(xpm.engine, "job", third.number, "Job Reference", "REF-PUSH", actor="ada")
    fields = {d.name: d.uuid for d in practice.field_definitions.values()}
    return {
        "applied": lambda: (
            first.state == "Review"
            and second.due_date == date(2027, 2, 1)
            and client.custom_fields.get(fields["Entity Code"]) == "E-PUSH"
            and third.custom_fields.get(fields["Job Reference"]) == "REF-PUSH"
        ),
        "writes": Counter(
            {
                ("PUT", "job.api/state"): 1,
                ("PUT", "job.api/update"): 1,
                ("PUT", f"client.api/update/{client.uuid}/customfield"): 1,
                ("PUT", f"job.api/update/{third.number}/customfield"): 1,
            }
        ),
    }


def _push(xpm: Xpm) -> None:
    push.push(xpm.hook(timeout=(2.0, 1.0)), xpm.engine, actor="tester", run_id="fault")


def _kill_mid_push(xpm: Xpm) -> None:
    """`xpm-sync push` in another process, killed once XPM has applied its job update."""
    xpm.control("faults", {"kind": "late", "path": "job.api/update", "seconds": 60})
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpm_sync.cli", "push"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while ("PUT", "job.api/update") not in xpm.srv.sandbox.gateway.writes:
        assert proc.poll() is None, "the push ended before XPM applied the job update"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=30)


@pytest.mark.parametrize("fault", FAULTS)
def test_after_any_fault_the_next_push_leaves_every_change_in_xpm_exactly_once(local: Xpm, fault: Any):  # noqa: F811
    expected = _changes(local)
    if fault == "kill -9":
        _kill_mid_push(local)
    else:
        local.control("faults", fault)
        with contextlib.suppress(XpmError):  # the run fails; Airflow would run it again
            _push(local)
    requests.delete(f"{local.srv.url}/_sandbox/faults", timeout=10).raise_for_status()
    for entry in changes.open_changes(local.engine):
        if entry.status == OutboxStatus.FAILED.value:
            changes.retry(local.engine, entry.id, actor="admin")
    _push(local)
    assert expected["applied"]()
    assert Counter(local.srv.sandbox.gateway.writes) == expected["writes"]
    assert changes.open_changes(local.engine) == []
