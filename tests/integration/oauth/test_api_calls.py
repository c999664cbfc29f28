"""The hook's calls against the sandbox's limits and faults; usage accounting; no secrets leak."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import requests
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from xpm_sync.api.usage import calls_today
from xpm_sync.errors import XpmDailyLimitReached, XpmPayloadError, XpmRateLimitError, XpmTransientError
from xpm_sync.store.models import ApiUsage
from xpm_sync.store.types import utcnow


def test_429_minute_waits_retry_after_and_succeeds(xpm: Xpm):
    xpm.connect()
    xpm.control("limits", {"per_minute": 2})
    headers = {"Authorization": f"Bearer {xpm.stored_tokens().access_token}", "xero-tenant-id": xpm.row().tenant_id}
    for _ in range(2):  # another process spends the minute's calls
        requests.get(xpm.settings.api_url + "staff.api/list", headers=headers, timeout=10).raise_for_status()
    hook = xpm.hook()
    assert list(hook.categories())
    statuses = [c.status for c in xpm.srv.sandbox.gateway.calls]
    assert statuses == [200, 200, 429, 200]
    assert len(xpm.slept) == 1
    assert 1 <= xpm.slept[0] <= 61  # XPM's Retry-After, honoured


def test_a_single_401_is_answered_by_one_refresh_and_one_more_try(xpm: Xpm):
    xpm.connect()
    xpm.control("faults", {"kind": "401", "path": "staff.api"})
    assert len(list(xpm.hook().staff())) == len(xpm.srv.sandbox.main.staff)
    assert [c.status for c in xpm.srv.sandbox.gateway.calls] == [401, 200]
    assert xpm.refreshes == 1
    assert xpm.row().status == "connected"


def test_a_401_after_a_fresh_token_is_an_authentication_failure(xpm: Xpm):
    from xpm_sync.errors import XpmAuthError

    xpm.connect()
    xpm.control("faults", {"kind": "401", "path": "staff.api", "count": 2})
    with pytest.raises(XpmAuthError, match="refused a freshly refreshed token"):
        list(xpm.hook().staff())
    assert xpm.row().status == "needs_reconnect"


def test_pacing_keeps_a_busy_worker_under_the_minute_limit(xpm: Xpm):
    xpm.connect()
    hook = xpm.hook()
    for _ in range(150):
        list(hook.categories())
    statuses = [c.status for c in xpm.srv.sandbox.gateway.calls]
    assert statuses == [200] * 150  # steady state: the limit is never hit
    # 150 calls at XPM's 60 a minute need two minutes; pacing took them, and not much more.
    assert 115 <= sum(xpm.slept) <= 130
    assert all(0 < w <= 60 for w in xpm.slept)


def test_429_day_stops_with_a_resumable_error_and_no_retry(xpm: Xpm):
    xpm.connect()
    hook = xpm.hook()
    xpm.control("limits", {"per_day": 1})
    list(hook.categories())
    with pytest.raises(XpmDailyLimitReached) as caught:
        list(hook.categories())
    assert "resumes" in str(caught.value)
    assert isinstance(caught.value, XpmRateLimitError)
    assert [c.status for c in xpm.srv.sandbox.gateway.calls] == [200, 429]
    assert not [w for w in xpm.slept if w > 60]  # it did not sleep until tomorrow


def test_5xx_are_retried_with_backoff_then_succeed(xpm: Xpm):
    xpm.connect()
    xpm.control("faults", {"kind": "503", "path": "staff.api", "count": 2})
    assert list(xpm.hook().staff())
    assert [c.status for c in xpm.srv.sandbox.gateway.calls] == [503, 503, 200]


def test_5xx_that_persist_end_in_a_transient_error(xpm: Xpm):
    xpm.connect()
    xpm.control("faults", {"kind": "500", "path": "staff.api", "count": 10})
    with pytest.raises(XpmTransientError, match="500"):
        list(xpm.hook(max_attempts=3).staff())
    assert len(xpm.srv.sandbox.gateway.calls) == 3


def test_a_timeout_is_retried(xpm: Xpm):
    xpm.connect()
    xpm.control("faults", {"kind": "slow", "path": "staff.api", "seconds": 2})
    assert list(xpm.hook(timeout=(5, 0.5)).staff())


def test_truncated_xml_is_a_payload_error(xpm: Xpm):
    xpm.connect()
    xpm.control("faults", {"kind": "truncate", "path": "client.api/list"})
    with pytest.raises(XpmPayloadError, match="not well-formed"):
        list(xpm.hook().clients())


def test_every_call_is_counted_per_practice_and_day(xpm: Xpm):
    xpm.connect()
    hook = xpm.hook()
    list(hook.staff())
    list(hook.categories())
    calls, left = calls_today(xpm.engine, hook.tenant_id)
    assert calls == 2
    assert left == 4998
    with Session(xpm.engine) as s:
        row = s.get(ApiUsage, (hook.tenant_id, utcnow().date()))
        assert (row.errors, row.rate_limited, row.min_remaining) == (0, 0, 58)


def test_calls_that_fail_are_counted_too(xpm: Xpm):
    """XPM counts the calls it answers with an error, and may have counted one it never answered."""
    from xpm_sync.api import usage

    xpm.connect()
    xpm.control("limits", {"per_minute": 2})
    headers = {"Authorization": f"Bearer {xpm.stored_tokens().access_token}", "xero-tenant-id": xpm.row().tenant_id}
    for _ in range(2):  # another process spends the minute's calls: this one meets a 429 first
        requests.get(xpm.settings.api_url + "staff.api/list", headers=headers, timeout=10).raise_for_status()
    xpm.control("faults", {"kind": "503", "path": "staff.api", "count": 1})
    xpm.control("faults", {"kind": "slow", "path": "category.api", "seconds": 2})
    hook = xpm.hook(timeout=(5, 0.5))
    list(hook.staff())  # 429, 503, 200
    list(hook.categories())  # no answer in time, then 200
    usage.flush_all(hook.tenant_id)
    with Session(xpm.engine) as s:
        row = s.get(ApiUsage, (hook.tenant_id, utcnow().date()))
        assert (row.calls, row.errors, row.rate_limited) == (5, 2, 1)
    assert calls_today(xpm.engine, hook.tenant_id)[0] == 5


def _stored_calls(xpm: Xpm, tenant_id: str) -> int:
    """What another worker reads from the practice database, without this process's help."""
    with Session(xpm.engine) as s:
        row = s.get(ApiUsage, (tenant_id, utcnow().date()))
        return row.calls if row else 0


def test_call_counts_reach_the_database_in_batches_and_at_the_end_of_a_task(xpm: Xpm):
    from xpm_sync.api import usage

    xpm.connect()
    hook = xpm.hook()
    hook.api.usage.clock = lambda: 0.0  # no batch falls due by time in this test
    for _ in range(usage.FLUSH_CALLS - 1):
        list(hook.categories())
    assert _stored_calls(xpm, hook.tenant_id) == 0  # one write for many calls, not one a call
    list(hook.categories())
    assert _stored_calls(xpm, hook.tenant_id) == usage.FLUSH_CALLS
    list(hook.staff())
    assert calls_today(xpm.engine, hook.tenant_id)[0] == usage.FLUSH_CALLS + 1  # this process's own count
    list(hook.staff())
    hook.flush_usage()  # what the runner does when a task ends
    assert _stored_calls(xpm, hook.tenant_id) == usage.FLUSH_CALLS + 2


def test_no_token_reaches_logs_output_or_errors(xpm: Xpm, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    xpm.connect()
    first = xpm.stored_tokens()
    hook = xpm.hook()
    list(hook.staff())
    xpm.expire_access_token()
    list(hook.clients())
    second = xpm.stored_tokens()
    errors = []
    xpm.control("revoke", {})
    xpm.expire_access_token()
    try:
        list(xpm.hook().staff())
    except Exception as exc:
        errors.append(f"{exc!r} {exc}")
    status = subprocess.run(
        [sys.executable, "-m", "xpm_sync.cli", "status", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRFLOW__XPM_SYNC__STORE_URL": xpm.store_url},
        timeout=120,
    )
    out = capsys.readouterr()
    seen = caplog.text + out.out + out.err + "".join(errors) + status.stdout + status.stderr
    assert errors  # the revoked grant did fail
    for secret in (first.access_token, first.refresh_token, second.access_token, second.refresh_token):
        assert secret not in seen
    assert xpm.srv.client_secret not in seen
    assert "needs_reconnect" in status.stdout


@pytest.mark.parametrize("method", ["run", "run_and_check", "run_with_advanced_retry"])
def test_httphooks_own_request_methods_are_refused_and_call_nothing(xpm: Xpm, method: str):
    """The methods XpmHook inherits from HttpHook would skip pacing, counting, the token refresh and
    the unanswered-write rule: they refuse with a sentence, and XPM is not called."""
    from xpm_sync.errors import XpmConfigError

    xpm.connect()
    hook = xpm.hook()
    with pytest.raises(XpmConfigError, match=rf"XpmHook\.{method}\(\) is not available: every call to XPM goes"):
        getattr(hook, method)("staff.api/list")
    assert xpm.srv.sandbox.gateway.calls == []
    assert calls_today(xpm.engine, hook.tenant_id)[0] == 0
