"""Local changes pushed to XPM (the sandbox over HTTP), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected, sync  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.truth import differences
from xpm_sync import activity, changes, settings
from xpm_sync.store import models as m
from xpm_sync.sync import policy, push

CODES = {"Planned": "PLANNED", "In Progress": "INPROGRESS", "Waiting on Client": "WAITING", "Review": "REVIEW",
         "Completed": "COMPLETED", "Cancelled": "CANCELLED"}  # fmt: skip


def pushed(xpm: Xpm) -> dict[str, Any]:
    return {r.entity: r for r in push.push(xpm.hook(), xpm.engine, actor="tester", run_id="push-test")}


def writes(xpm: Xpm) -> list[tuple[str, str]]:
    return list(xpm.srv.sandbox.gateway.writes)


@pytest.fixture
def local(connected: Xpm) -> Xpm:  # noqa: F811
    """A synced practice that keeps jobs and custom fields here, with XPM's job state codes known."""
    sync(connected, full=True)
    with Session(connected.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
        settings.change(s, "sync_custom_fields_from_xpm", False, actor="admin")
    connected.connect()  # the reconnect that grants what these settings push (practicemanager.job, .client)
    for name, code in CODES.items():
        changes.set_state_code(connected.engine, name, code, actor="admin")
    connected.srv.sandbox.gateway.reset_counts()
    return connected


def _open_job(xpm: Xpm, state: str = "Planned") -> Any:
    return next(j for j in xpm.srv.sandbox.main.jobs.values() if j.state == state and j.tasks)


def test_a_job_state_change_reaches_xpm_and_the_next_pull_changes_nothing(local: Xpm):
    job = _open_job(local)
    recorded = changes.set_job_state(local.engine, job.number, "in progress", actor="ada")
    assert recorded.message == f"Job {job.number} is now In Progress here; it goes to XPM with the next push."
    with Session(local.engine) as s:
        row = s.get(m.Job, (local.row().tenant_id, job.number))
        assert (row.state, row.pending_push) == ("In Progress", True)
        entry = s.get(m.OutboxEntry, recorded.entry_id)
        assert entry.created_by == "ada"
        assert entry.payload == {"fields": {"state": {"before": "Planned", "after": "In Progress"}}}
    result = pushed(local)["job"]
    assert (result.written, result.failures) == (1, [])
    assert job.state == "In Progress"  # in XPM
    assert writes(local) == [("PUT", "job.api/state")]
    with Session(local.engine) as s:
        assert s.get(m.Job, (local.row().tenant_id, job.number)).pending_push is False
        assert s.get(m.OutboxEntry, recorded.entry_id).status == "done"
    again = sync(local, ["jobs"])
    assert again["jobs"].written == 0
    assert differences(local.engine, local.srv.sandbox.main) == []


def test_a_job_date_change_sends_every_field_so_nothing_is_blanked(local: Xpm):
    job = _open_job(local)
    description, budget, order = job.description, job.budget, job.client_order_number
    changes.update_job(local.engine, job.number, due_date="2026-12-24", name="Renamed here", actor="ada")
    assert pushed(local)["job"].written == 1
    assert (job.due_date, job.name) == (date(2026, 12, 24), "Renamed here")
    assert (job.description, job.budget, job.client_order_number) == (description, budget, order)
    assert writes(local) == [("PUT", "job.api/update")]
    assert sync(local, ["jobs"])["jobs"].written == 0
    assert differences(local.engine, local.srv.sandbox.main) == []


def test_client_and_job_custom_fields_reach_xpm_and_read_back_equal(local: Xpm):
    practice = local.srv.sandbox.main
    client = next(iter(practice.clients.values()))
    job = _open_job(local)
    defs = {d.name: d for d in practice.field_definitions.values()}
    changes.set_custom_field(local.engine, "client", client.uuid, "Engagement Letter Signed", "yes", actor="ada")
    changes.set_custom_field(local.engine, "client", client.uuid, "Fee Estimate", "1234.50", actor="ada")
    changes.set_custom_field(local.engine, "client", client.uuid, "Next Review", "2027-03-31", actor="ada")
    changes.set_custom_field(local.engine, "job", job.number, "Priority", "7", actor="ada")
    changes.set_custom_field(local.engine, "job", job.number, "Job Reference", "REF-9", actor="ada")
    result = pushed(local)
    assert (result["client_custom_field"].written, result["job_custom_field"].written) == (3, 2)
    assert client.custom_fields[defs["Engagement Letter Signed"].uuid] is True
    assert client.custom_fields[defs["Fee Estimate"].uuid] == Decimal("1234.50")
    assert client.custom_fields[defs["Next Review"].uuid] == date(2027, 3, 31)
    assert job.custom_fields[defs["Priority"].uuid] == 7
    assert job.custom_fields[defs["Job Reference"].uuid] == "REF-9"
    # Three changes to one client, two to one job: one call each.
    assert sorted(writes(local)) == [
        ("PUT", f"client.api/update/{client.uuid}/customfield"),
        ("PUT", f"job.api/update/{job.number}/customfield"),
    ]
    again = sync(local, ["client_custom_fields", "job_custom_fields"], manual=True, full=True)
    assert (again["client_custom_fields"].written, again["job_custom_fields"].written) == (0, 0)
    assert differences(local.engine, practice) == []


def test_clearing_a_custom_field_clears_it_in_xpm(local: Xpm):
    practice = local.srv.sandbox.main
    field = next(d for d in practice.field_definitions.values() if d.name == "Engagement Letter Signed")
    client = next(c for c in practice.clients.values() if c.custom_fields.get(field.uuid) is True)
    changes.set_custom_field(local.engine, "client", client.uuid, field.uuid, "no", actor="ada")
    pushed(local)
    assert field.uuid not in client.custom_fields
    again = sync(local, ["client_custom_fields"], manual=True, full=True)
    assert again["client_custom_fields"].written == 0


def test_a_pull_never_overwrites_a_change_waiting_to_be_pushed(local: Xpm):
    practice = local.srv.sandbox.main
    client = next(iter(practice.clients.values()))
    field = next(d for d in practice.field_definitions.values() if d.name == "Entity Code")
    practice.clients[client.uuid].custom_fields.pop(field.uuid, None)
    changes.set_custom_field(local.engine, "client", client.uuid, "Entity Code", "LOCAL-1", actor="ada")
    sync(local, ["client_custom_fields"], manual=True, full=True)  # XPM has no value for it yet
    with Session(local.engine) as s:
        row = s.get(m.ClientCustomFieldValue, (local.row().tenant_id, client.uuid, field.uuid))
        assert (row.text_value, row.pending_push, row.removed_upstream_at) == ("LOCAL-1", True, None)


def test_changes_the_settings_leave_to_xpm_are_refused_with_the_reason(connected: Xpm):  # noqa: F811
    sync(connected, full=True)
    job = next(iter(connected.srv.sandbox.main.jobs))
    client = next(iter(connected.srv.sandbox.main.clients))
    with pytest.raises(changes.ChangeRefused, match="Jobs are mastered in XPM"):
        changes.set_job_state(connected.engine, job, "Review", actor="ada")
    with pytest.raises(changes.ChangeRefused, match="Custom fields come from XPM"):
        changes.set_custom_field(connected.engine, "client", client, "Entity Code", "X", actor="ada")
    with Session(connected.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
    with pytest.raises(changes.ChangeRefused) as caught:
        changes.set_job_state(connected.engine, job, "Review", actor="ada")
    assert str(caught.value) == changes.NO_CODE.format(state="Review", quoted='"Review"')
    with pytest.raises(changes.ChangeRefused, match="is not one of the practice's job states"):
        changes.set_job_state(connected.engine, job, "Done-ish", actor="ada")


def test_several_changes_to_one_job_are_coalesced(local: Xpm):
    job = _open_job(local)
    changes.set_job_state(local.engine, job.number, "In Progress", actor="ada")
    changes.update_job(local.engine, job.number, due_date="2027-01-10", actor="ada")
    changes.set_job_state(local.engine, job.number, "Review", actor="bo")
    changes.update_job(local.engine, job.number, due_date="2027-01-20", actor="bo")
    result = pushed(local)["job"]
    assert result.written == 4
    assert (job.state, job.due_date) == ("Review", date(2027, 1, 20))
    assert writes(local) == [("PUT", "job.api/state"), ("PUT", "job.api/update")]


def test_a_change_back_to_what_xpm_holds_costs_no_write(local: Xpm):
    job = _open_job(local)
    changes.set_job_state(local.engine, job.number, "Review", actor="ada")
    changes.set_job_state(local.engine, job.number, "Planned", actor="ada")
    assert pushed(local)["job"].fetched == 2
    assert writes(local) == []


def test_xpms_newer_value_is_overwritten_while_the_practice_masters_it_and_kept(local: Xpm):
    job = _open_job(local)
    recorded = changes.set_job_state(local.engine, job.number, "In Progress", actor="ada")
    job.state = "Waiting on Client"  # someone changed it in XPM meanwhile
    result = pushed(local)["job"]
    assert job.state == "In Progress"
    assert "XPM's value overwritten" in (result.note or "")
    with Session(local.engine) as s:
        entry = s.get(m.OutboxEntry, recorded.entry_id)
        assert entry.payload["xpm"] == {"state": "Waiting on Client"}
        logged = activity.recent(s, 1, category="Push")[0]
    assert "XPM's value overwritten" in logged.message
    assert "Waiting on Client" in logged.message


def test_when_xpm_masters_the_field_again_a_conflict_sends_nothing(local: Xpm):
    job = _open_job(local)
    recorded = changes.set_job_state(local.engine, job.number, "In Progress", actor="ada")
    job.state = "Waiting on Client"
    with Session(local.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", False, actor="admin")
    result = pushed(local)["job"]
    assert job.state == "Waiting on Client"
    assert writes(local) == []
    assert len(result.failures) == 1
    assert "XPM's value changed since this change was made" in result.failures[0]["error"]
    with Session(local.engine) as s:
        entry = s.get(m.OutboxEntry, recorded.entry_id)
        assert (entry.status, entry.payload["xpm"]) == ("conflict", {"state": "Waiting on Client"})
    sync(local, ["jobs"])
    assert differences(local.engine, local.srv.sandbox.main, custom_fields=False) == []


def test_a_change_xpm_refuses_stays_failed_with_xpms_words_and_the_rest_go_on(local: Xpm):
    first, second = [j for j in local.srv.sandbox.main.jobs.values() if j.state == "Planned"][:2]
    failing = changes.set_job_state(local.engine, first.number, "Review", actor="ada")
    changes.set_job_state(local.engine, second.number, "Review", actor="ada")
    local.control("faults", {"kind": "business_error", "path": "job.api/state", "description": "Job is locked"})
    result = pushed(local)["job"]
    assert result.failures == [{"key": first.number, "error": "Job is locked"}]
    assert (first.state, second.state) == ("Planned", "Review")
    with Session(local.engine) as s:
        entry = s.get(m.OutboxEntry, failing.entry_id)
        assert (entry.status, entry.last_error) == ("failed", "Job is locked")
        assert s.get(m.Job, (local.row().tenant_id, first.number)).pending_push is True
        logged = activity.recent(s, 1, category="Push")[0]
    assert logged.message.startswith(f"(Jobs) pushed 1 change(s) to XPM, 1 failed: {first.number}: Job is locked")
    assert logged.status == "Failure"
    changes.retry(local.engine, failing.entry_id, actor="ada")
    pushed(local)
    assert first.state == "Review"


def test_a_manual_job_sync_waits_for_local_job_changes_then_never_overwrites(local: Xpm):
    job = _open_job(local)
    changes.set_job_state(local.engine, job.number, "In Progress", actor="ada")
    refused = sync(local, ["jobs"], manual=True)["jobs"]
    assert refused.mode == "refused"
    assert refused.skipped == policy.JOBS_LOCAL.format(count=1)
    pushed(local)
    with Session(local.engine) as s, s.begin():
        row = s.get(m.Job, (local.row().tenant_id, job.number))
        row.name = "Kept here"  # a local edit outside xpm-sync's API: not pushed, but never overwritten
    allowed = sync(local, ["jobs"], manual=True)["jobs"]
    assert allowed.mode == "incremental"
    with Session(local.engine) as s:
        assert s.get(m.Job, (local.row().tenant_id, job.number)).name == "Kept here"


def test_open_changes_list_what_is_waiting(local: Xpm):
    job = _open_job(local)
    changes.set_job_state(local.engine, job.number, "Review", actor="ada")
    waiting = changes.open_changes(local.engine)
    assert [(e.entity, e.entity_key, e.status) for e in waiting] == [("job", job.number, "pending")]
    with Session(local.engine) as s:
        assert list(s.scalars(select(m.OutboxEntry.status))) == ["pending"]


def test_a_pushed_change_xpm_later_reverts_is_pulled_back_once_xpm_masters_jobs_again(local: Xpm):
    # The stored fingerprint describes XPM's answer before the local change; a local change clears
    # it, so XPM sending that very answer again is not mistaken for "unchanged".
    job = _open_job(local)
    changes.set_job_state(local.engine, job.number, "In Progress", actor="ada")
    with Session(local.engine) as s:
        assert s.get(m.Job, (local.row().tenant_id, job.number)).row_hash is None
    pushed(local)
    with Session(local.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", False, actor="admin")
    job.state = "Planned"  # someone in XPM puts it back
    sync(local, ["jobs"], full=True)
    with Session(local.engine) as s:
        assert s.get(m.Job, (local.row().tenant_id, job.number)).state == "Planned"
    assert differences(local.engine, local.srv.sandbox.main) == []
