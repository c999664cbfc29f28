"""Token refresh under concurrency, lost replies, and grants that are gone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.integration.conftest import Xpm
from xpm_sync.errors import XpmReconnectRequired
from xpm_sync.oauth.tokens import TokenStore
from xpm_sync.store.models import ConnectionStatus

WORKERS = 16


def test_an_expired_token_is_refreshed_and_the_new_pair_stored_first(xpm: Xpm):
    xpm.connect()
    before = xpm.stored_tokens()
    xpm.expire_access_token()
    assert len(list(xpm.hook().staff())) == len(xpm.srv.sandbox.main.staff)
    after = xpm.stored_tokens()
    assert after.refresh_token != before.refresh_token
    assert xpm.refreshes == 1
    grant = xpm.grant()
    assert grant.last_refresh_at is not None
    assert grant.version == 2


def test_sixteen_threads_with_an_expired_token_cause_one_refresh(xpm: Xpm):
    xpm.connect()
    xpm.expire_access_token()
    barrier = threading.Barrier(WORKERS)
    results: list[object] = []

    def work() -> None:
        hook = xpm.hook()
        barrier.wait()
        try:
            results.append(len(list(hook.categories())))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [len(xpm.srv.sandbox.main.categories)] * WORKERS
    assert xpm.refreshes == 1


WORKER = """
import sys, time
from pathlib import Path
from tenacity import wait_none
from xpm_sync.hooks.xpm import XpmHook
folder, me = Path(sys.argv[1]), sys.argv[3]
hook = XpmHook(store_url=sys.argv[2], backoff=wait_none())
hook.tokens  # read the connection before the race
(folder / f"ready-{me}").touch()
while not (folder / "go").exists():
    time.sleep(0.005)
print(len(list(hook.categories())))
"""


def test_sixteen_processes_with_an_expired_token_cause_one_refresh(xpm: Xpm, tmp_path):
    xpm.connect()
    xpm.expire_access_token()
    xpm.control("limits", {"concurrent": WORKERS})  # this test is about the refresh, not XPM's limit
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), xpm.store_url, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WORKERS)
    ]
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("ready-*"))) < WORKERS:
        assert time.monotonic() < deadline, "the workers did not all get ready"
        assert all(p.poll() is None for p in procs), "a worker died before the race"
        time.sleep(0.05)
    (tmp_path / "go").touch()  # every worker is waiting: release them together
    outputs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * WORKERS, outputs[0][1][-2000:]
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == [str(len(xpm.srv.sandbox.main.categories))] * WORKERS
    assert xpm.refreshes == 1


def test_a_refresh_whose_reply_is_lost_recovers_through_the_grace(xpm: Xpm):
    xpm.connect()
    xpm.expire_access_token()
    # Xero issues the new pair but the reply never arrives in time.
    xpm.control("faults", {"kind": "hang", "path": "connect/token", "seconds": 3})
    store = TokenStore(xpm.settings, xpm.engine, timeout=1, retry_wait=lambda _state: 0)
    token = store.access_token()
    assert xpm.refreshes == 2  # the lost one and the replay
    assert len(list(xpm.hook().categories())) > 0
    assert xpm.stored_tokens().access_token == token
    # The stored refresh token is the replay's, and it keeps working.
    xpm.expire_access_token()
    assert len(list(xpm.hook().categories())) > 0


def test_invalid_grant_marks_needs_reconnect_and_is_not_retried(xpm: Xpm):
    xpm.connect()
    xpm.control("revoke", {})
    xpm.expire_access_token()
    token_calls = xpm.srv.sandbox.identity.token_requests
    with pytest.raises(XpmReconnectRequired) as caught:
        list(xpm.hook().staff())
    assert isinstance(caught.value, AirflowFailException)
    assert "invalid_grant" in str(caught.value)
    assert xpm.srv.sandbox.identity.token_requests == token_calls + 1  # one try, no retries
    row = xpm.row()
    assert row.status == ConnectionStatus.NEEDS_RECONNECT.value
    assert "invalid_grant" in (row.last_error or "")

    api_calls = len(xpm.srv.sandbox.gateway.calls)
    with pytest.raises(XpmReconnectRequired):
        list(xpm.hook().staff())
    assert len(xpm.srv.sandbox.gateway.calls) == api_calls  # XPM is no longer called
    assert xpm.srv.sandbox.identity.token_requests == token_calls + 1


def test_a_token_that_expires_in_flight_is_refreshed_once_and_the_call_retried(xpm: Xpm):
    xpm.connect()
    hook = xpm.hook()
    assert list(hook.categories())
    xpm.control("clock", {"advance_seconds": 1801})  # expired at XPM, still "fresh" in our cache
    assert list(hook.categories())
    assert xpm.refreshes == 1


def test_a_403_marks_the_connection_and_fails_without_retry(xpm: Xpm):
    from xpm_sandbox.state import USERS
    from xpm_sync.errors import XpmAuthError

    xpm.connect()
    tenant = xpm.row().tenant_id
    xpm.control("privilege", {"user": USERS.admin, "tenant_id": tenant, "admin": True, "third_party": False})
    with pytest.raises(XpmAuthError, match="403") as caught:
        list(xpm.hook().staff())
    assert "Authorise 3rd Party Full Access" in str(caught.value)
    assert xpm.row().status == ConnectionStatus.NEEDS_RECONNECT.value
    assert [c.status for c in xpm.srv.sandbox.gateway.calls] == [403]


def _race(xpm: Xpm, tmp_path: Any, workers: int, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path), xpm.store_url, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("ready-*"))) < workers:
        assert time.monotonic() < deadline, "the workers did not all get ready"
        assert all(p.poll() is None for p in procs), "a worker died before the race"
        time.sleep(0.05)
    (tmp_path / "go").touch()
    return procs


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_four_workers_on_sqlite_wait_out_a_token_endpoint_that_takes_40_seconds(xpm: Xpm, tmp_path):
    """No transaction is held while Xero answers: the others wait for the refresh, not for a lock."""
    xpm.connect()
    xpm.expire_access_token()
    xpm.control("faults", {"kind": "slow", "path": "connect/token", "seconds": 40})
    env = {**os.environ, "AIRFLOW__XPM_SYNC__TOKEN_TIMEOUT_SECONDS": "60"}
    procs = _race(xpm, tmp_path, 4, env)
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-1500:] for _out, err in outputs]
    assert [out.strip().splitlines()[-1] for out, _err in outputs] == [str(len(xpm.srv.sandbox.main.categories))] * 4
    assert xpm.refreshes == 1
    # Each waited for the one slow refresh and called XPM with its token: no call met a 401.
    assert [c.status for c in xpm.srv.sandbox.gateway.calls] == [200] * 4
