"""A partial, odd or hostile answer never removes or hides data (sandbox over HTTP, SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected, sync  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.truth import differences
from xpm_sync import activity, catalog
from xpm_sync.errors import XpmInputError, XpmPayloadError
from xpm_sync.store import models as m


def _entries(xpm: Xpm, n: int = 20) -> list[Any]:
    with Session(xpm.engine) as s:
        return list(activity.recent(s, n))


def _live_values(xpm: Xpm, client: str) -> int:
    with Session(xpm.engine) as s:
        query = select(func.count()).select_from(m.ClientCustomFieldValue)
        return int(
            s.scalar(
                query.where(
                    m.ClientCustomFieldValue.client_uuid == client,
                    m.ClientCustomFieldValue.removed_upstream_at.is_(None),
                )
            )
            or 0
        )


def test_a_record_level_error_keeps_that_records_custom_fields_and_leaves_it_due(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    practice = connected.srv.sandbox.main
    with Session(connected.engine) as s:  # clients in the order their values were read, oldest first
        by_age = list(s.scalars(select(m.Client.uuid).order_by(m.Client.custom_fields_fetched_at, m.Client.uuid)))
    # The refused client is the one read last, so only its "due" mark can put it first next run.
    client = next(u for u in reversed(by_age) if len(practice.clients[u].custom_fields) >= 2)
    stored = _live_values(connected, client)
    assert stored == len(practice.clients[client].custom_fields)
    # The client changes in XPM, so tonight its custom fields are due; XPM refuses that one read.
    practice.clients[client].modified_at = connected.srv.sandbox.clock.now()
    connected.control(
        "faults", {"kind": "business_error", "path": f"{client}/customfield", "description": "Try again later"}
    )
    results = sync(connected, run_id="night-1")
    values = results["client_custom_fields"]
    assert values.failures == [{"key": client, "error": "Try again later"}]
    assert _live_values(connected, client) == stored  # nothing marked removed
    with Session(connected.engine) as s:
        row = s.get(m.Client, (practice.tenant_id, client))
        assert row.custom_fields_due_at is not None  # still due
    entry = next(e for e in _entries(connected) if "partly failed" in e.message)
    assert entry.status == "Failure"
    assert entry.message.startswith("(Client custom fields) partly failed: XPM refused 1 record(s)")
    assert f"{client}: Try again later" in entry.message
    # Other clients change too, each read before it: the next ordinary run still reads the refused
    # one first, and the store equals XPM, with no --full.
    for other in [u for u in by_age if u != client][:3]:
        practice.clients[other].modified_at = connected.srv.sandbox.clock.now()
    calls = len(connected.srv.sandbox.gateway.calls)
    again = sync(connected, ["clients", "client_custom_fields"], run_id="night-2")["client_custom_fields"]
    reads = [c.path for c in connected.srv.sandbox.gateway.calls[calls:] if c.path.endswith("/customfield")]
    assert len(reads) >= 4, reads
    assert client in reads[0], reads
    assert again.failures == []
    assert differences(connected.engine, practice) == []
    with Session(connected.engine) as s:
        assert s.get(m.Client, (practice.tenant_id, client)).custom_fields_due_at is None


def test_a_job_leaving_the_current_list_is_not_marked_removed_on_an_error(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    practice = connected.srv.sandbox.main
    today = connected.srv.sandbox.clock.now().date()
    # Created long enough ago not to be in the night's list of recently created jobs.
    job = next(j for j in practice.jobs.values() if practice.is_current(j) and (today - j.created_on).days > 45)
    job.state, job.completed_date = "Completed", today
    connected.control("faults", {"kind": "business_error", "path": f"job.api/get/{job.number}"})
    result = sync(connected, ["jobs"])["jobs"]
    assert result.failures == [{"key": job.number, "error": "The sandbox was asked to fail this call"}]
    with Session(connected.engine) as s:
        row = s.get(m.Job, (practice.tenant_id, job.number))
        assert row.removed_upstream_at is None
        assert row.is_current is True  # so the next run asks again
    sync(connected, ["jobs"])
    assert differences(connected.engine, practice, custom_fields=False) == []


@pytest.mark.parametrize("kind", ["wrong_wrapper", "malformed"])
def test_an_answer_of_the_wrong_shape_is_an_error_not_an_empty_list(connected: Xpm, kind: str):  # noqa: F811
    sync(connected, [*catalog.REFERENCE, "clients"], full=True)
    connected.control("faults", {"kind": kind, "path": "client.api/list"})
    with pytest.raises(XpmPayloadError):
        sync(connected, ["clients"], full=True)
    with Session(connected.engine) as s:
        live = s.scalar(select(func.count()).select_from(m.Client).where(m.Client.removed_upstream_at.is_(None)))
    assert live == len(connected.srv.sandbox.main.clients)


def test_an_empty_full_list_removes_nothing_and_raises_an_alert(connected: Xpm):  # noqa: F811
    sync(connected, ["staff", "clients"], full=True)
    connected.control("faults", {"kind": "empty", "path": "client.api/list"})
    result = sync(connected, ["clients"], full=True)["clients"]
    assert (result.removed, result.held_back) == (0, len(connected.srv.sandbox.main.clients))
    with Session(connected.engine) as s:
        removed = s.scalar(select(func.count()).select_from(m.Client).where(m.Client.removed_upstream_at.is_not(None)))
    assert removed == 0
    alert = next(e for e in _entries(connected) if e.status == "Alert")
    assert alert.message.startswith(
        f"(Clients) XPM's full list would mark {len(connected.srv.sandbox.main.clients)} of the "
    )
    assert "xpm-sync sync --entities clients --full --confirm-removals" in alert.message


def test_a_full_list_missing_too_many_rows_needs_a_confirmed_full_sync(connected: Xpm):  # noqa: F811
    sync(connected, ["staff", "clients"], full=True)
    practice = connected.srv.sandbox.main
    gone = list(practice.clients)[: len(practice.clients) // 2]
    for uuid in gone:
        del practice.clients[uuid]
    held = sync(connected, ["clients"], full=True)["clients"]
    assert (held.removed, held.held_back) == (0, len(gone))
    confirmed = sync(connected, ["clients"], full=True, confirm_removals=True, manual=True)["clients"]
    assert confirmed.removed == len(gone)
    with Session(connected.engine) as s:
        marked = set(s.scalars(select(m.Client.uuid).where(m.Client.removed_upstream_at.is_not(None))))
    assert marked == set(gone)


def test_a_few_removals_apply_without_confirmation(connected: Xpm):  # noqa: F811
    sync(connected, ["staff", "clients"], full=True)
    practice = connected.srv.sandbox.main
    gone = list(practice.clients)[:3]
    for uuid in gone:
        del practice.clients[uuid]
    assert sync(connected, ["clients"], full=True)["clients"].removed == 3


def test_an_empty_current_job_list_changes_no_job(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    calls = len(connected.srv.sandbox.gateway.calls)
    connected.control("faults", {"kind": "empty", "path": "job.api/current"})
    result = sync(connected, ["jobs"])["jobs"]
    assert result.held_back > 0
    # No job.api/get for each "departed" job: the list call and the recent window only.
    assert len(connected.srv.sandbox.gateway.calls) - calls == 2
    assert differences(connected.engine, connected.srv.sandbox.main) == []


def test_scheduled_runs_become_incremental_after_the_first_full_pass(connected: Xpm):  # noqa: F811
    first = sync(connected, [*catalog.REFERENCE, "clients", "jobs"])
    assert (first["clients"].mode, first["jobs"].mode) == ("full", "full")
    connected.srv.sandbox.gateway.reset_counts()
    second = sync(connected, [*catalog.REFERENCE, "clients", "jobs"])
    assert (second["clients"].mode, second["jobs"].mode) == ("incremental", "incremental")
    assert connected.srv.sandbox.gateway.endpoint_counts()["GET job.api/list"] == 1


def test_identifiers_are_checked_before_any_call(connected: Xpm):  # noqa: F811
    calls = len(connected.srv.sandbox.gateway.calls)
    with pytest.raises(XpmInputError, match="is not a client UUID"):
        sync(connected, ["clients"], client_uuid="../../staff.api/list", manual=True)
    with pytest.raises(XpmInputError, match="is not a job number"):
        sync(connected, ["jobs"], job_number="J1/../../staff.api/list", manual=True)
    assert len(connected.srv.sandbox.gateway.calls) == calls


def test_custom_fields_of_a_client_xpm_does_not_know_are_a_failure(connected: Xpm):  # noqa: F811
    sync(connected, [*catalog.REFERENCE], full=True)
    unknown = "00000000-0000-4000-8000-000000000000"
    result = sync(connected, ["client_custom_fields"], client_uuid=unknown, manual=True)["client_custom_fields"]
    assert result.failures == [{"key": unknown, "error": "Invalid client identifier"}]


def test_an_answer_with_too_many_records_is_refused_and_nothing_is_written(connected: Xpm, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__MAX_ANSWER_ROWS", str(len(connected.srv.sandbox.main.staff) - 1))
    with pytest.raises(XpmPayloadError, match="holds over"):
        sync(connected, ["staff"], full=True)
    with Session(connected.engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Staff)) == 0


def test_an_answer_too_big_is_refused_as_it_arrives(connected: Xpm, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__MAX_ANSWER_MB", "0")
    with pytest.raises(XpmPayloadError, match="is over 0 MB"):
        sync(connected, ["staff"], full=True)


def test_a_timed_out_request_is_counted(connected: Xpm):  # noqa: F811
    from xpm_sync.api.usage import calls_today
    from xpm_sync.errors import XpmTransientError

    connected.control("faults", {"kind": "hang", "path": "staff.api/list", "seconds": 5, "count": 2})
    hook = connected.hook(timeout=(2.0, 0.5), max_attempts=2)
    before, _left = calls_today(connected.engine, connected.row().tenant_id)
    with pytest.raises(XpmTransientError, match="did not answer"):
        list(hook.staff())
    after, _left = calls_today(connected.engine, connected.row().tenant_id)
    assert after - before == 2


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_no_write_transaction_is_open_while_an_answer_is_arriving(xpm: Xpm):
    """Another writer gets SQLite's lock within a second while half of a big answer waits on the wire."""
    import sqlite3
    import threading
    import time

    from xpm_sandbox.generate import _client

    xpm.connect()
    practice = xpm.srv.sandbox.main
    rng = __import__("random").Random(7)
    for i in range(1500):  # more than one write batch arrives before the pause
        extra = _client(rng, practice, xpm.srv.sandbox.clock.now(), 10_000 + i)
        practice.clients[extra.uuid] = extra
    xpm.control("faults", {"kind": "trickle", "path": "client.api/list", "seconds": 12})
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sync(xpm, ["clients"], full=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while not any(c.path == "client.api/list" for c in xpm.srv.sandbox.gateway.calls):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Until the sync ends (the answer's second half is 12 s behind its first), another writer takes
    # the write lock again and again, each time within 3 s: no write transaction waits on the wire.
    # A lock held over the wait would keep one of these out for most of those 12 s ("database is locked").
    while worker.is_alive():
        other = sqlite3.connect(xpm.store_url.removeprefix("sqlite:///"), timeout=3, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE practice_settings SET value = value")
        other.execute("COMMIT")
        other.close()
        time.sleep(0.2)
    worker.join(timeout=120)
    assert errors == []
    with Session(xpm.engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Client)) == len(practice.clients)
