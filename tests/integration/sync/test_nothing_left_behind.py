"""Changes XPM made are not left behind by an answer that was wrong but looked right: an empty
incremental client list, a full list whose removals were held back, or a job created "today" in
a practice whose date runs ahead of UTC (sandbox over HTTP, SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected, sync  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.truth import differences
from xpm_sandbox.model import Job
from xpm_sync import activity
from xpm_sync.store import models as m


def _entries(xpm: Xpm, n: int = 20) -> list[Any]:
    with Session(xpm.engine) as s:
        return list(activity.recent(s, n))


def _phones(xpm: Xpm, uuids: list[str]) -> list[str | None]:
    tenant = xpm.srv.sandbox.main.tenant_id
    with Session(xpm.engine) as s:
        return [s.get(m.Client, (tenant, u)).phone for u in uuids]


def _change_phones(xpm: Xpm, count: int) -> tuple[list[str], list[str]]:
    practice, now = xpm.srv.sandbox.main, xpm.srv.sandbox.clock.now()
    changed = list(practice.clients)[:count]
    for n, uuid in enumerate(changed):
        practice.clients[uuid].phone, practice.clients[uuid].modified_at = f"09 555 01{n:02d}", now
    return changed, [practice.clients[u].phone for u in changed]


def test_an_empty_incremental_answer_keeps_the_watermark_so_the_changes_before_it_arrive(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    connected.control("clock", {"advance_seconds": 3600})
    _change_phones(connected, 2)
    assert sync(connected, ["clients"])["clients"].fetched == 2  # a night that listed changes
    connected.control("clock", {"advance_seconds": 3600})
    changed, phones = _change_phones(connected, 3)
    connected.control("faults", {"kind": "empty", "path": "client.api/list", "count": 1})
    quiet = sync(connected, ["clients"])["clients"]
    assert quiet.fetched == 0
    assert "the watermark was kept" in (quiet.note or "")
    alert = _entries(connected)[1]
    assert alert.status == "Alert"
    assert alert.message.startswith("(Clients) XPM listed no client modified since ")
    assert _phones(connected, changed) != phones

    again = sync(connected, ["clients"])["clients"]
    assert again.fetched >= 3
    assert _phones(connected, changed) == phones
    assert differences(connected.engine, connected.srv.sandbox.main, custom_fields=False) == []


def test_a_full_list_whose_removals_are_held_back_does_not_move_the_watermark(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    tenant = connected.srv.sandbox.main.tenant_id
    with Session(connected.engine) as s:
        before = s.get(m.SyncState, (tenant, "clients"))
        watermark, whole = before.watermark, before.last_full_sync_at
    connected.control("clock", {"advance_seconds": 3600})
    changed, phones = _change_phones(connected, 3)
    practice = connected.srv.sandbox.main
    # Half the practice missing from one answer (put back afterwards: XPM still has them).
    hidden = {u: practice.clients.pop(u) for u in list(practice.clients)[10:30]}
    held = sync(connected, ["clients"], full=True)["clients"]
    practice.clients.update(hidden)
    assert held.held_back == len(hidden)
    with Session(connected.engine) as s:
        after = s.get(m.SyncState, (tenant, "clients"))
        assert (after.watermark, after.last_full_sync_at) == (watermark, whole)
    assert _phones(connected, changed) == phones  # what the answer did hold is stored
    connected.control("clock", {"advance_seconds": 3600})
    sync(connected, ["clients"])
    assert differences(connected.engine, connected.srv.sandbox.main, custom_fields=False) == []


def test_the_whole_client_list_is_read_every_reconcile_days_and_finds_what_a_lost_answer_missed(
    connected: Xpm,  # noqa: F811
    monkeypatch: Any,
):
    sync(connected, ["clients"], full=True)
    connected.control("clock", {"advance_seconds": 3600})
    changed, phones = _change_phones(connected, 3)
    practice = connected.srv.sandbox.main
    for uuid in changed:  # as if XPM had not moved their modified date: no incremental answer names them
        practice.clients[uuid].modified_at -= timedelta(days=30)
    assert sync(connected, ["clients"])["clients"].fetched == 0
    assert _phones(connected, changed) != phones
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__CLIENT_RECONCILE_DAYS", "0")
    whole = sync(connected, ["clients"])["clients"]
    assert (whole.mode, whole.note) == ("full", "the periodic read of the whole list")
    assert _phones(connected, changed) == phones


def test_a_full_job_sync_keeps_a_job_created_today_in_a_practice_ahead_of_utc(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    practice, now = connected.srv.sandbox.main, connected.srv.sandbox.clock.now()
    tomorrow_utc = now.date() + timedelta(days=1)  # "today" in Auckland for much of UTC's day
    client = next(iter(practice.clients))
    job = Job(
        number="J900001", uuid="9a0c1f2e-0000-4000-8000-000000000001", name="Same-day advice", client_uuid=client,
        state="Completed", created_on=tomorrow_utc, start_date=tomorrow_utc, due_date=tomorrow_utc,
        completed_date=tomorrow_utc,
    )  # fmt: skip
    practice.jobs[job.number] = job
    assert sync(connected, ["jobs"])["jobs"].mode == "incremental"
    full = sync(connected, ["jobs"], full=True)["jobs"]
    assert full.removed == 0
    with Session(connected.engine) as s:
        row = s.get(m.Job, (practice.tenant_id, job.number))
        assert row is not None
        assert row.removed_upstream_at is None
    assert differences(connected.engine, practice, custom_fields=False) == []
