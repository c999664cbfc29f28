"""The pull engine against the sandbox, on SQLite and PostgreSQL: the store equals XPM's truth."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.truth import differences
from xpm_sync import activity, catalog, settings
from xpm_sync.errors import XpmDailyLimitReached, XpmError, XpmPayloadError
from xpm_sync.store import models as m
from xpm_sync.store.types import utcnow
from xpm_sync.sync import custom_fields, outcome, policy, runner

# What these tests sync unless they say: everything but the read-only lists beside the jobs (time,
# costs, invoices, quotes), which `test_work.py` syncs and checks (and which double a full sync's time).
SYNCED = tuple(name for name in catalog.ALL if name not in catalog.WORK)


def sync(xpm: Xpm, names: Any = SYNCED, **request: Any) -> dict[str, Any]:
    hook = xpm.hook()
    req = policy.Request(store_url=xpm.store_url, run_id=request.pop("run_id", "test"), **request)
    results = {}
    for name in policy.order(list(names)):
        results[name] = runner.pull(name, req, hook=hook)
    return results


def written(results: dict[str, Any]) -> int:
    return sum(r.written for r in results.values())


def calls(results: dict[str, Any]) -> int:
    return sum(r.calls for r in results.values())


@pytest.fixture
def connected(xpm: Xpm) -> Xpm:
    xpm.connect()
    # Tokens that outlive the sandbox's "next day" step keep these tests about syncing.
    xpm.control("identity", {"access_lifetime_seconds": 30 * 86_400})
    xpm.connect()
    return xpm


def test_a_full_sync_makes_the_store_equal_xpm_and_a_second_writes_nothing(connected: Xpm):
    first = sync(connected, full=True)
    assert differences(connected.engine, connected.srv.sandbox.main) == []
    assert all(r.complete for r in first.values())
    assert written(first) > 0

    again = sync(connected)
    assert written(again) == 0, {n: r.written for n, r in again.items() if r.written}


def test_a_list_answered_exactly_as_last_time_is_not_parsed_and_a_changed_one_is(connected: Xpm):
    from sqlalchemy.orm import Session

    from xpm_sync.api import fingerprint
    from xpm_sync.store.models import Job

    sync(connected, full=True)
    tenant = connected.row().tenant_id

    def current_jobs() -> tuple[fingerprint.Fingerprints, list]:
        with Session(connected.engine) as session:
            prints = fingerprint.job_fingerprints(session, Job, tenant, skip_known=False)
        return prints, list(connected.hook().current_jobs(fingerprints=prints))

    prints, rows = current_jobs()
    assert prints.answers_skipped == 1
    assert rows
    assert all(r.get(fingerprint.UNCHANGED) for r in rows)
    connected.control("next-day", {"share": 0.1})
    # The day's changes may fall outside the current jobs: one is renamed in XPM for certain.
    practice = connected.srv.sandbox.main
    renamed = next(j for j in practice.jobs.values() if practice.is_current(j))
    renamed.name += " (renamed)"
    prints, rows = current_jobs()
    assert prints.answers_skipped == 0
    assert [r["job_number"] for r in rows if not r.get(fingerprint.UNCHANGED)].count(renamed.number) == 1
    sync(connected)
    assert differences(connected.engine, connected.srv.sandbox.main) == []


def test_an_incremental_sync_after_a_day_of_changes_catches_up_with_far_fewer_calls(connected: Xpm):
    full = sync(connected, full=True)
    changes = connected.control("next-day", {"share": 0.1})
    assert changes["jobs_added"]
    assert changes["clients_archived"] is not None
    incremental = sync(connected)
    assert differences(connected.engine, connected.srv.sandbox.main) == []
    assert incremental["clients"].mode == "incremental"
    assert incremental["jobs"].mode == "incremental"
    assert calls(incremental) < calls(full)
    # Only the changed clients' custom fields were fetched first; the rest come from staleness.
    assert incremental["clients"].fetched < len(connected.srv.sandbox.main.clients)


def test_a_truncated_answer_mid_run_is_rolled_back_and_a_rerun_completes(connected: Xpm):
    connected.control("faults", {"kind": "truncate", "path": "client.api/list"})
    with pytest.raises(XpmPayloadError):
        sync(connected, full=True)
    with Session(connected.engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Client)) == 0  # nothing half-written
        assert s.get(m.SyncState, (connected.row().tenant_id, "clients")) is None  # checkpoint not moved
    sync(connected, full=True)
    assert differences(connected.engine, connected.srv.sandbox.main) == []


def test_503s_mid_run_are_retried_and_leave_no_duplicates(connected: Xpm):
    connected.control("faults", {"kind": "503", "path": "job.api/list", "count": 3})
    sync(connected, full=True)
    assert differences(connected.engine, connected.srv.sandbox.main) == []
    with Session(connected.engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Job)) == len(connected.srv.sandbox.main.jobs)


def test_the_daily_limit_stops_custom_fields_and_the_next_day_resumes(connected: Xpm):
    sync(connected, [*catalog.REFERENCE, "clients", "jobs"], full=True)
    used = len(connected.srv.sandbox.gateway.calls)
    connected.control("limits", {"per_day": used + 10})
    with pytest.raises(XpmDailyLimitReached):
        sync(connected, ["client_custom_fields"])
    with Session(connected.engine) as s:
        fetched = s.scalar(
            select(func.count()).select_from(m.Client).where(m.Client.custom_fields_fetched_at.is_not(None))
        )
        entry = activity.recent(s, 1)[0]
    assert 0 < fetched < len(connected.srv.sandbox.main.clients)  # what was fetched is kept
    assert "rate limiting" in entry.message
    connected.control("clock", {"advance_seconds": 86_400})
    connected.control("limits", {"per_day": 5000})
    sync(connected, ["client_custom_fields", "job_custom_fields", "tax_returns"])
    assert differences(connected.engine, connected.srv.sandbox.main) == []


def test_custom_fields_stop_at_the_days_budget_and_resume(connected: Xpm, monkeypatch):
    sync(connected, [*catalog.REFERENCE, "clients"], full=True)
    spent = len(connected.srv.sandbox.gateway.calls)  # reference data and clients
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__DAILY_CALL_LIMIT", "40")  # 80% of it: 32 calls today
    first = sync(connected, ["client_custom_fields"])["client_custom_fields"]
    assert not first.complete
    assert first.calls == 32 - spent
    assert "left for the next run" in (first.note or "")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__DAILY_CALL_LIMIT", "5000")
    second = sync(connected, ["client_custom_fields"])["client_custom_fields"]
    assert second.complete
    # It resumed with the clients not fetched yet; the others are not due for a week.
    assert second.fetched == len(connected.srv.sandbox.main.clients) - first.fetched


def test_records_removed_upstream_are_marked_not_deleted(connected: Xpm):
    sync(connected, ["staff"], full=True)
    practice = connected.srv.sandbox.main
    gone = next(
        u for u in practice.staff if u != connected.srv.sandbox.identity.users["admin@harbourview.example"].staff_uuid
    )
    del practice.staff[gone]
    result = sync(connected, ["staff"])["staff"]
    assert result.removed == 1
    with Session(connected.engine) as s:
        row = s.get(m.Staff, (practice.tenant_id, gone))
        assert row is not None
        assert row.removed_upstream_at is not None


def test_a_dry_run_counts_but_writes_nothing(connected: Xpm):
    results = sync(connected, [*catalog.REFERENCE, "clients"], full=True, dry_run=True)
    practice = connected.srv.sandbox.main
    contacts = sum(len(c.contacts) for c in practice.clients.values())
    # Each client, each contact and its link would be written.
    assert results["clients"].written >= len(practice.clients) + 2 * contacts
    with Session(connected.engine) as s:
        assert s.scalar(select(func.count()).select_from(m.Client)) == 0
        assert s.scalar(select(func.count()).select_from(m.SyncState)) == 0


def test_one_client_or_one_job(connected: Xpm):
    practice = connected.srv.sandbox.main
    client = next(iter(practice.clients))
    job = next(iter(practice.jobs))
    sync(connected, ["clients"], client_uuid=client, manual=True)
    sync(connected, ["jobs"], job_number=job, manual=True)
    with Session(connected.engine) as s:
        assert [c.uuid for c in s.scalars(select(m.Client))] == [client]
        assert [j.job_number for j in s.scalars(select(m.Job))] == [job]


def test_maintain_jobs_locally_keeps_local_jobs_through_manual_and_overnight_pulls(connected: Xpm):
    sync(connected, [*catalog.REFERENCE, "clients", "jobs"], full=True)
    tenant = connected.row().tenant_id
    with Session(connected.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
        job = s.scalars(select(m.Job).where(m.Job.is_current.is_(True))).first()
        job.name = "Renamed in the practice database"
        number = job.job_number
    practice = connected.srv.sandbox.main
    practice.jobs[number].name = "Renamed in XPM"
    # No local change is waiting to be pushed (that refusal is in test_push), so a manual job sync
    # runs, and adds jobs without overwriting the ones held here.
    manual = sync(connected, ["jobs"], manual=True)["jobs"]
    assert manual.mode == "incremental"
    connected.control("next-day", {"share": 0.05})
    sync(connected, ["jobs"])  # the overnight pull
    with Session(connected.engine) as s:
        assert s.get(m.Job, (tenant, number)).name == "Renamed in the practice database"
        new = max(practice.jobs)
        assert s.get(m.Job, (tenant, new)) is not None  # jobs created in XPM still arrive


def test_custom_fields_off_skips_them_overnight_but_a_manual_sync_pulls_them(connected: Xpm):
    sync(connected, [*catalog.REFERENCE, "clients"], full=True)
    with Session(connected.engine) as s, s.begin():
        settings.change(s, "sync_custom_fields_from_xpm", False, actor="admin")
    overnight = sync(connected, ["client_custom_fields"])["client_custom_fields"]
    assert overnight.mode == "skipped"
    assert overnight.calls == 0
    manual = sync(connected, ["client_custom_fields"], manual=True)["client_custom_fields"]
    assert manual.complete
    assert manual.calls == len(connected.srv.sandbox.main.clients)


def test_the_tax_return_register_follows_tax_settings_and_tax_return_jobs(connected: Xpm):
    sync(connected, full=True)
    practice = connected.srv.sandbox.main
    with Session(connected.engine) as s:
        rows = s.scalars(select(m.TaxReturn).where(m.TaxReturn.removed_upstream_at.is_(None))).all()
    preparing = {c.uuid for c in practice.clients.values() if c.prepare_tax_return}
    assert {r.client_uuid for r in rows} == preparing
    with_jobs = [r for r in rows if r.job_number]
    assert with_jobs
    for r in with_jobs:
        job = practice.jobs[r.job_number]
        assert job.job_type == "Tax Return"
        assert str(r.tax_year) in job.name
        assert r.job_state == job.state


def test_client_and_job_custom_fields_share_the_budget(connected: Xpm, monkeypatch):
    sync(connected, [*catalog.REFERENCE, "clients", "jobs"], full=True)
    spent = len(connected.srv.sandbox.gateway.calls)
    with Session(connected.engine) as s:
        clients = s.scalar(select(func.count()).select_from(m.Client))
        jobs = s.scalar(select(func.count()).select_from(m.Job).where(m.Job.is_current.is_(True)))
    share = 40  # calls for custom fields today, over both kinds
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__CUSTOM_FIELD_SWEEP_CALLS", "0")  # only what has evidence of change
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__CUSTOM_FIELD_BUDGET_SHARE", "1.0")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__DAILY_CALL_LIMIT", str(share + spent))
    done = sync(connected, ["client_custom_fields", "job_custom_fields"])
    client_calls, job_calls = done["client_custom_fields"].calls, done["job_custom_fields"].calls
    assert client_calls == share * clients // (clients + jobs)
    # Not starved by the clients, which ran first: the clients now wait for nothing, so the jobs
    # get everything left of the share.
    assert job_calls == share - client_calls


def _job_gets(xpm: Xpm) -> int:
    return int(xpm.srv.sandbox.gateway.endpoint_counts().get("GET job.api/get/{id}", 0))


def _older_than_the_nightly_window(xpm: Xpm, numbers: list[str]) -> list[str]:
    today = xpm.srv.sandbox.clock.now().date()
    jobs = xpm.srv.sandbox.main.jobs
    return [n for n in numbers if (today - jobs[n].created_on).days > 31 and jobs[n].state == "Completed"]


def test_closed_back_dated_jobs_reach_the_store_with_the_ordinary_incremental(connected: Xpm):
    sync(connected, full=True)
    day = connected.control("next-day", {"share": 0.05, "closed_backdated": 6, "days_back": 200})
    missed_by_window = _older_than_the_nightly_window(connected, day["jobs_added"])
    assert missed_by_window  # created closed, before the window the nightly job list reads
    assert not set(missed_by_window) & {j.number for j in connected.srv.sandbox.main.jobs.values()
                                         if connected.srv.sandbox.main.is_current(j)}  # fmt: skip

    result = sync(connected)
    assert result["jobs"].mode == "incremental"
    assert differences(connected.engine, connected.srv.sandbox.main) == []
    with Session(connected.engine) as s:
        stored = set(s.scalars(select(m.Job.job_number)))
        found = [e for e in activity.recent(s, 20) if e.message.startswith("(Jobs) Reconciliation found")]
    assert stored == set(connected.srv.sandbox.main.jobs)
    assert len(found) == 1
    assert found[0].status == "Alert"
    assert all(n in found[0].message for n in missed_by_window)

    # Nothing is missing now: the next night asks for no single job.
    gets = _job_gets(connected)
    sync(connected, ["jobs"])
    assert _job_gets(connected) == gets


def test_a_job_number_xpm_does_not_know_is_asked_for_once(connected: Xpm):
    sync(connected, [*catalog.REFERENCE, "clients", "jobs"], full=True)
    practice = connected.srv.sandbox.main
    numbers = sorted(practice.jobs)
    deleted, lost = numbers[10], numbers[20]
    del practice.jobs[deleted]  # deleted in XPM: a gap on both sides
    with Session(connected.engine) as s, s.begin():
        for number in (deleted, lost):  # `lost`: a row the store lacks (restored from an old backup)
            s.delete(s.scalars(select(m.Job).where(m.Job.job_number == number)).one())
    gets = _job_gets(connected)
    sync(connected, ["jobs"])
    assert _job_gets(connected) == gets + 2
    with Session(connected.engine) as s:
        stored = set(s.scalars(select(m.Job.job_number)))
    assert lost in stored
    assert deleted not in stored
    sync(connected, ["jobs"])
    assert _job_gets(connected) == gets + 2  # the deleted number is not asked for again


def test_the_periodic_job_list_finds_back_dated_jobs_without_single_calls(connected: Xpm, monkeypatch):
    sync(connected, full=True)
    day = connected.control("next-day", {"share": 0.05, "closed_backdated": 4, "days_back": 100})
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__JOB_RECONCILE_DAYS", "0")  # the wide list is due tonight
    gets = _job_gets(connected)
    lists = connected.srv.sandbox.gateway.endpoint_counts().get("GET job.api/list", 0)
    sync(connected, ["jobs"])
    assert connected.srv.sandbox.gateway.endpoint_counts()["GET job.api/list"] == lists + 2  # nightly + wide
    departed = [n for n in day["jobs_state_changed"] if not connected.srv.sandbox.main.is_current(
        connected.srv.sandbox.main.jobs[n])]  # fmt: skip
    assert _job_gets(connected) - gets <= len(departed)  # no single call for a back-dated job
    with Session(connected.engine) as s:
        assert set(s.scalars(select(m.Job.job_number))) == set(connected.srv.sandbox.main.jobs)


def _age_custom_fields(xpm: Xpm, days: int) -> None:
    """As if every record's values were read `days` ago and nothing changed since (the sync's
    clock is the real one, not the sandbox's)."""
    read = utcnow() - timedelta(days=days)
    with Session(xpm.engine) as s, s.begin():
        for model in (m.Client, m.Job):
            s.execute(update(model).values(custom_fields_fetched_at=read, synced_at=read - timedelta(seconds=1)))


def test_custom_fields_read_where_there_is_evidence_then_a_small_sweep(connected: Xpm, monkeypatch):
    sync(connected, full=True)
    assert differences(connected.engine, connected.srv.sandbox.main) == []
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__CUSTOM_FIELD_SWEEP_CALLS", "5")
    # Eight quiet days later nothing has changed: no client or open job is read again.
    _age_custom_fields(connected, 8)
    quiet = sync(connected)
    assert quiet["client_custom_fields"].calls == 0
    assert quiet["job_custom_fields"].calls == 0

    day = connected.control("next-day", {"share": 0.05})
    night = sync(connected)
    assert differences(connected.engine, connected.srv.sandbox.main) == []
    assert night["client_custom_fields"].calls <= day["clients_edited"]
    assert night["job_custom_fields"].calls <= len(day["jobs_state_changed"]) + len(day["jobs_added"])

    # Values older than the refresh age are swept a few a night, the stalest first.
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__CUSTOM_FIELD_REFRESH_DAYS", "30")
    _age_custom_fields(connected, 40)
    info = custom_fields.coverage(connected.engine, connected.row().tenant_id)
    swept = sync(connected, ["client_custom_fields", "job_custom_fields"])
    spent = swept["client_custom_fields"].calls + swept["job_custom_fields"].calls
    assert 5 <= spent <= 6  # each kind's share is rounded up
    assert info["never_read"] == 0
    assert info["complete_to"] is not None
    assert custom_fields.describe_coverage(info).startswith("Custom fields complete to ")


def test_an_entity_that_fails_and_then_succeeds_on_its_retry_leaves_the_run_finished(connected: Xpm):
    """Airflow retries a failed task; the run closes on how each entity last ended, not on a try
    that a retry made good. An entity whose last try failed still fails the run."""
    request = policy.Request(store_url=connected.store_url, run_id="retried")
    connected.control("faults", {"kind": "503", "path": "staff.api", "count": 2})
    connected.control("faults", {"kind": "503", "path": "category.api", "count": 4})
    with pytest.raises(XpmError):
        runner.pull("staff", request, hook=connected.hook(max_attempts=2))  # the first try
    staff = runner.pull("staff", request, hook=connected.hook(max_attempts=2))  # its retry
    with pytest.raises(XpmError):
        runner.pull("categories", request, hook=connected.hook(max_attempts=2))
    with pytest.raises(XpmError):
        runner.pull("categories", request, hook=connected.hook(max_attempts=2))

    summary = outcome.summarise([staff.as_dict()], request)
    assert (summary["failed"], summary["not_run"]) == (["categories"], [])
    with Session(connected.engine) as session:
        messages = [e.message for e in activity.recent(session, 10, category="Sync")]
    assert messages[0].startswith("Overnight sync partly failed: categories did not finish"), messages
    assert any(m.startswith("(Staff) failed") for m in messages)  # the failed try is still shown


def test_a_pull_that_finds_xpm_must_be_reconnected_before_it_starts_says_so(connected: Xpm):
    """Another task found the grant revoked between this task's check and its first step: the pull
    is refused before calling XPM, and that is recorded against the entity, as any failure is."""
    hook = connected.hook()
    hook.tokens.mark_needs_reconnect("XPM needs to reconnect: test")
    calls = len(connected.srv.sandbox.gateway.calls)
    request = policy.Request(store_url=connected.store_url, run_id="raced")
    with pytest.raises(XpmError):
        runner.pull("categories", request, hook=connected.hook())
    assert len(connected.srv.sandbox.gateway.calls) == calls
    assert outcome.summarise([], request)["failed"] == ["categories"]
    with Session(connected.engine) as session:
        entry = next(e for e in activity.recent(session, 10, category="Sync") if e.message.startswith("(Job"))
    assert entry.message.startswith("(Job categories) failed: authentication with XPM failed."), entry.message
