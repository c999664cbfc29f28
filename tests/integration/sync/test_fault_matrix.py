"""The fault matrix: whatever goes wrong on a night, the next ordinary run catches up.

For each fault: a full sync, a day of changes in XPM, an overnight run that meets the fault (every
entity is tried, as the DAG does), then the fault is cleared (and XPM reconnected, where the fault
needs that) and the ordinary incremental sync runs. The store must then equal the sandbox field by
field, with no --full. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.truth import differences
from xpm_sync import catalog
from xpm_sync.errors import XpmError
from xpm_sync.store.models import ConnectionStatus
from xpm_sync.sync import policy, runner

# Each fault, with the entity its night must report failed (None: the night gets over it, as with a
# single 401 answered by one refresh, or an empty list held back with an Alert rather than applied).
FAULTS = [
    pytest.param({"kind": "500", "path": "client.api/list", "count": 10}, "clients", id="500"),
    pytest.param({"kind": "503", "path": "job.api/current", "count": 10}, "jobs", id="503"),
    pytest.param({"kind": "hang", "path": "staff.api/list", "count": 10, "seconds": 3}, "staff", id="timeout"),
    pytest.param({"kind": "truncate", "path": "client.api/list"}, "clients", id="truncated"),
    pytest.param({"kind": "business_error", "path": "job.api/current"}, "jobs", id="200-ERROR-on-a-list"),
    pytest.param(
        {"kind": "business_error", "path": "/customfield", "count": 3},
        "client_custom_fields",
        id="200-ERROR-on-one-record",
    ),  # fmt: skip
    pytest.param({"kind": "empty", "path": "staff.api/list"}, None, id="empty-list"),
    pytest.param({"kind": "empty", "path": "job.api/current"}, None, id="empty-current-jobs"),
    pytest.param({"kind": "wrong_wrapper", "path": "job.api/current"}, "jobs", id="wrong-wrapper"),
    pytest.param({"kind": "401", "path": "client.api/list"}, None, id="401"),
    pytest.param({"kind": "403", "path": "job.api/list"}, "jobs", id="403"),
    pytest.param(
        {"kind": "429", "path": "job.api/current", "problem": "minute", "seconds": 2, "count": 10},
        "jobs",
        id="429-minute",
    ),  # fmt: skip
    pytest.param(
        {"kind": "429", "path": "client.api/list", "problem": "day", "seconds": 3600}, "clients", id="429-day"
    ),  # fmt: skip
    pytest.param("invalid_grant", catalog.ALL[0], id="invalid_grant"),
    pytest.param("kill -9", None, id="kill-9"),
]


def overnight(xpm: Xpm, run_id: str) -> list[str]:
    """Every entity in order, each on its own as the DAG's tasks are; the names of those that failed."""
    hook = xpm.hook(timeout=(2.0, 1.0))
    request = policy.Request(store_url=xpm.store_url, run_id=run_id)
    failed = []
    for name in catalog.ALL:
        try:
            result = runner.pull(name, request, hook=hook)
        except XpmError:
            failed.append(name)
        else:
            if result.failures:
                failed.append(name)
    return failed


def _needing(name: str) -> set[str]:
    """The entities whose pull needs `name`'s (custom field values need their clients or jobs)."""
    return {"clients": {"client_custom_fields"}, "jobs": {"job_custom_fields"}}.get(name, set())


def _kill_mid_run(xpm: Xpm) -> None:
    """Start the overnight sync in another process and kill -9 it while it waits on XPM mid-run."""
    xpm.control("faults", {"kind": "slow", "path": "job.api/current", "seconds": 15})
    calls = len(xpm.srv.sandbox.gateway.calls)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpm_sync.cli", "sync"],
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not any(c.path == "job.api/current" for c in xpm.srv.sandbox.gateway.calls[calls:]):
        assert proc.poll() is None, "the sync ended before it reached the current job list"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=30)


@pytest.mark.parametrize(("fault", "fails"), FAULTS)
def test_after_any_fault_the_next_ordinary_run_makes_the_store_equal_xpm(
    connected: Xpm,  # noqa: F811
    fault: Any,
    fails: str | None,
):
    xpm = connected
    xpm.control("limits", {"per_minute": 100_000})  # the subprocess paces with real sleeps
    assert overnight(xpm, "first") == []
    assert differences(xpm.engine, xpm.srv.sandbox.main) == []
    xpm.control("next-day", {"share": 0.1})

    if fault == "invalid_grant":
        xpm.control("revoke", {})
        xpm.expire_access_token()
    elif fault == "kill -9":
        _kill_mid_run(xpm)
    else:
        xpm.control("faults", fault)
    if isinstance(fault, dict):
        failed = overnight(xpm, "faulted")
        pending = xpm.srv.sandbox.gateway.faults
        assert not pending or pending[0].remaining < fault.get("count", 1), "the night never met the fault"
        # The faulted night's own outcome: the entity that met the fault says so; none other is blamed
        # unless it needs what failed, or (403) the connection itself was lost.
        if fails is None:
            assert failed == []
        else:
            assert failed[0] == fails, failed
            if fault["kind"] != "403":
                assert set(failed) <= {fails, *_needing(fails)}, failed
    elif fault == "invalid_grant":
        failed = overnight(xpm, "faulted")
        # Nothing can be read: every list says so (custom fields with nothing due, and the tax-return
        # register derived from the store, call nothing and have nothing to report).
        assert failed[0] == fails
        assert {*catalog.REFERENCE, "clients", "jobs"} <= set(failed), failed

    requests.delete(f"{xpm.srv.url}/_sandbox/faults", timeout=10).raise_for_status()
    if xpm.row().status == ConnectionStatus.NEEDS_RECONNECT.value:
        xpm.connect()  # an administrator reconnects
    assert overnight(xpm, "next") == []
    assert differences(xpm.engine, xpm.srv.sandbox.main) == []
