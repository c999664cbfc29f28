"""The production stack as processes (`xpm_devtools.stack`, what `make stack` runs): CeleryExecutor with
two workers, Redis at 127.0.0.1:6379 as the broker, PostgreSQL for Airflow's metadata, Celery's
results and the practice database, the XPM sandbox, a real SMTP server. Its settings come from
docker-compose.yaml and .env.example, as in production.

One stack serves the tests of this module, in order: they share its setup (about a minute).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import _PG_PROBLEM, PG_ADMIN_URL, REPO, REQUIRE_PG
from tests.e2e.browser import RUN_TIMEOUT, back_in_airflow, chromium, open_xpm, shot, sign_in, sign_in_at_xero
from tests.e2e.conftest import PASSWORD, Airflow, loopback_inbox
from tests.integration.conftest import Inbox
from tests.integration.sync.truth import differences
from xpm_devtools.stack import Stack, drop_databases, local_variables, throwaway_database
from xpm_sandbox.server import SandboxServer, connection_extras, free_port
from xpm_sandbox.state import USERS
from xpm_sync import catalog
from xpm_sync.oauth.tokens import TokenSet, decrypt_tokens, encrypt_tokens
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import XpmConnection, XpmGrant

OVERNIGHT = "xpm_overnight_sync"


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    yield from loopback_inbox()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]) -> Iterator[tuple[Stack, Airflow]]:
    with celery_stack(tmp_path_factory.mktemp("stack"), inbox[1], clients=40, jobs=160) as (st, af):
        connected = af.connect(USERS.admin, "--by", "ada", "--no-sync")
        assert connected.returncode == 0, connected.stderr
        yield st, af


@contextmanager
def celery_stack(
    home: Path, smtp_port: int, *, clients: int, jobs: int, practices: dict[str, dict[str, str]] | None = None
) -> Iterator[tuple[Stack, Airflow]]:
    """The stack as processes on throwaway databases, with the sandbox unthrottled per minute; with
    `practices` ({conn id: its extra's own options}), those practices beside `xpm_default`."""
    if _PG_PROBLEM:
        if REQUIRE_PG:
            pytest.fail(_PG_PROBLEM)
        pytest.skip(_PG_PROBLEM)
    import os

    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        problem = f"the stack needs Redis at 127.0.0.1:6379 as Celery's broker: {exc}"
        if os.environ.get("XPM_SYNC_REQUIRE_REDIS") == "1":
            pytest.fail(problem)
        pytest.skip(problem)

    databases = [throwaway_database(PG_ADMIN_URL, f"xpm_e2e_stack_{kind}") for kind in ("airflow", "practice")]
    srv = SandboxServer(clients=clients, jobs=jobs, staff=6).start()
    srv.sandbox.gateway.limits.per_minute = 100_000  # the point here is the workers, not XPM's pacing
    port = free_port()
    # The XPM page's redirect URI, registered on the sandbox's app as on a Xero app.
    srv.sandbox.identity.apps[srv.client_id].redirect_uris.append(f"http://127.0.0.1:{port}/xpm/oauth/callback")
    connection = {
        "conn_type": "xpm",
        "login": srv.client_id,
        "password": srv.client_secret,
        "extra": {**connection_extras(srv.url), "redirect_uri": "http://localhost:8765/callback"},
    }
    redis_db = random.randint(8, 15)  # noqa: S311 - a broker database of its own, not a secret
    variables = local_variables(
        REPO,
        None,
        AIRFLOW_API_PORT=str(port),
        AIRFLOW_BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW_FERNET_KEY=os.environ["AIRFLOW__CORE__FERNET_KEY"],
        AIRFLOW_JWT_SECRET="stack-e2e-jwt-secret-not-for-production",
        AIRFLOW_API_SECRET_KEY="stack-e2e-api-secret-not-for-production",
        AIRFLOW_ADMIN_PASSWORD=PASSWORD,
        POSTGRES_USER="postgres",
        POSTGRES_PASSWORD="",
        AIRFLOW_DB=databases[0],
        PRACTICE_DB=databases[1],
        REDIS_DB=str(redis_db),
        SMTP_PORT=str(smtp_port),
        XPM_CONNECTION=json.dumps(connection),
        XPM_ALERT_RECIPIENTS="admin@practice.example",
        # A worker killed mid-task is noticed in 20 s and its task retried 3 s later.
        AIRFLOW_TASK_HEARTBEAT_TIMEOUT="20",
        XPM_TASK_RETRY_DELAY_SECONDS="3",
    )
    extra = {"AIRFLOW__XPM_SYNC__JOB_START_YEAR": "2022", "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1"}
    for conn_id, own in (practices or {}).items():
        extra[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({**connection, "extra": {**connection["extra"], **own}})
    if practices:
        extra["AIRFLOW__XPM_SYNC__PRACTICES"] = ", ".join(["xpm_default", *practices])
    st = Stack(REPO, home / "airflow", variables, workers=2, extra_env=extra)
    practice_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{databases[1]}"
    try:
        st.start()
        yield st, Airflow(st.url, st.env, srv, practice_url, st.home)
    finally:
        st.stop()
        srv.stop()
        from xpm_sync.store.engine import dispose_engines

        dispose_engines()
        drop_databases(PG_ADMIN_URL, databases)
        redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()


def _task_instances(af: Airflow, run_id: str, dag_id: str = OVERNIGHT) -> list[dict[str, Any]]:
    reply = af.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    reply.raise_for_status()
    return list(reply.json()["task_instances"])


def _expire_access_token(store_url: str) -> None:
    with Session(get_engine(store_url)) as session, session.begin():
        row = session.scalars(select(XpmConnection).where(XpmConnection.active.is_(True))).one()
        grant = session.get(XpmGrant, row.grant_id)
        tokens = decrypt_tokens(grant.token_ciphertext or "")
        expired_at = tokens.expires_at.replace(year=2000)
        expired = TokenSet(tokens.access_token, tokens.refresh_token, expired_at, tokens.scope)
        grant.token_ciphertext = encrypt_tokens(expired)


def test_the_overnight_sync_runs_on_both_workers_with_one_refresh(stack: tuple[Stack, Airflow]):
    _st, af = stack
    _expire_access_token(af.store_url)
    refreshes = af.srv.sandbox.identity.token_requests
    requests.delete(f"{af.srv.url}/_sandbox/calls", timeout=10)
    started = time.monotonic()
    run = af.trigger(OVERNIGHT)
    assert af.wait(OVERNIGHT, run, timeout=420) == "success"
    seconds = time.monotonic() - started

    ran = [ti for ti in _task_instances(af, run) if ti["state"] == "success"]
    workers = {ti["hostname"] for ti in ran}
    assert {"worker-1", "worker-2"} <= workers, workers
    assert differences(get_engine(af.store_url), af.srv.sandbox.main) == []
    # Tasks started at once on both workers with an expired token: one refresh at Xero.
    assert af.srv.sandbox.identity.token_requests - refreshes == 1
    calls = requests.get(f"{af.srv.url}/_sandbox/calls", timeout=10).json()
    assert calls["peak_in_flight"] <= 5, calls
    assert "429" not in calls["by_status"], calls["by_status"]
    Path(af.logs / "overnight-seconds.txt").write_text(f"{seconds:.1f}\n")  # for bench/REPORT.md


def test_two_syncs_at_once_share_the_five_slots_of_the_xpm_pool(stack: tuple[Stack, Airflow]):
    """The overnight and a manual sync started together have ten tasks that call XPM ready at once
    (five reference lists each), more than XPM allows in flight: the `xpm_api` pool lets five run,
    the rest wait for a slot. The first ten calls answer slowly, so the five admitted overlap."""
    _st, af = stack
    requests.delete(f"{af.srv.url}/_sandbox/calls", timeout=10)
    requests.post(
        f"{af.srv.url}/_sandbox/faults", json={"kind": "slow", "path": "", "count": 10, "seconds": 8}, timeout=10
    ).raise_for_status()
    overnight = af.trigger(OVERNIGHT)
    manual = af.trigger("xpm_manual_sync", {"entities": list(catalog.ALL), "full": True})
    assert af.wait(OVERNIGHT, overnight, timeout=420) == "success"
    assert af.wait("xpm_manual_sync", manual, timeout=420) == "success"
    calls = requests.get(f"{af.srv.url}/_sandbox/calls", timeout=10).json()
    assert calls["peak_in_flight"] == 5, calls
    assert "429" not in calls["by_status"], calls["by_status"]
    assert differences(get_engine(af.store_url), af.srv.sandbox.main) == []


def _running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_worker_killed_mid_sync_is_retried_on_the_other(stack: tuple[Stack, Airflow]):
    st, af = stack
    # The client list answers slowly this once, so its task is mid-call when its worker dies.
    requests.post(
        f"{af.srv.url}/_sandbox/faults",
        json={"kind": "slow", "path": "client.api/list", "count": 1, "seconds": 40},
        timeout=10,
    ).raise_for_status()
    run = af.trigger(OVERNIGHT, {})
    deadline = time.monotonic() + 180
    victim = None
    while time.monotonic() < deadline and victim is None:
        for ti in _task_instances(af, run):
            if ti["task_id"] == "clients" and ti["state"] == "running" and ti["hostname"]:
                victim = ti["hostname"]
        time.sleep(1)
    assert victim in ("worker-1", "worker-2"), victim
    killed = st.kill(victim)
    assert len(killed) > 1  # the worker, its pool and the task's own process group
    assert [pid for pid in killed if _running(pid)] == []
    try:
        assert af.wait(OVERNIGHT, run, timeout=420) == "success"
        clients = next(ti for ti in _task_instances(af, run) if ti["task_id"] == "clients")
        assert clients["try_number"] >= 2
        assert clients["hostname"] != victim
        assert differences(get_engine(af.store_url), af.srv.sandbox.main) == []
    finally:
        st.start_worker(int(victim.rsplit("-", 1)[1]))
        st.wait_healthy(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_an_auth_failure_sends_one_email_and_the_administrator_reconnects_in_the_browser(
    stack: tuple[Stack, Airflow], inbox: tuple[Inbox, int], browser: Any
):
    from playwright.sync_api import expect

    _st, af = stack
    box, _port = inbox
    before = len(box.messages)
    af.srv.sandbox.identity.revoke_all()
    run = af.trigger(OVERNIGHT)
    assert af.wait(OVERNIGHT, run, timeout=300) == "failed"
    time.sleep(5)  # any late task on the other worker has had its chance to send another
    assert len(box.messages) - before == 1
    assert box.messages[-1]["Subject"].startswith("XPM needs to reconnect")

    # The administrator, in the stack's Airflow UI, reconnects from the XPM page.
    page = sign_in(browser, af)
    xpm = open_xpm(page, af)
    banner = xpm.locator("#reconnect-banner")
    expect(banner).to_contain_text("XPM needs to reconnect")
    shot(page, "stack-01-needs-reconnect")
    banner.get_by_role("button", name="Reconnect XPM").click()
    sign_in_at_xero(page, af, "stack-02-xero-sign-in")
    xpm = back_in_airflow(page, af)
    expect(xpm.locator("#notice")).to_contain_text("XPM is reconnected.")
    expect(xpm.locator("#notice .state")).to_have_text("success", timeout=RUN_TIMEOUT)
    shot(page, "stack-03-reconnected-full-sync-done")
    # The full sync that follows a reconnect ran on the stack's workers.
    resync = af.latest_run("xpm_manual_sync")["dag_run_id"]
    ran = [ti for ti in _task_instances(af, resync, "xpm_manual_sync") if ti["state"] == "success"]
    assert ran, resync
    assert {ti["hostname"] for ti in ran} <= {"worker-1", "worker-2"}, ran
    assert differences(get_engine(af.store_url), af.srv.sandbox.main) == []
