"""A write XPM did not answer is settled before anything newer for that record is sent, and one
that XPM applies late, over a newer change, is found and undone (sandbox over HTTP, both databases).
A fault on one record never stops the others, and Practice Activity says what reached XPM."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.test_push import local  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.test_push_faults import _wait_out_unanswered_writes
from xpm_sync import activity, changes
from xpm_sync.store import models as m
from xpm_sync.sync import push


def _push(xpm: Xpm) -> dict[str, Any]:
    return {r.entity: r for r in push.push(xpm.hook(timeout=(2.0, 1.0)), xpm.engine, actor="ada", run_id="t")}


def _updates(xpm: Xpm) -> int:
    return Counter(xpm.srv.sandbox.gateway.writes)[("PUT", "job.api/update")]


def _logged(xpm: Xpm) -> Any:
    with Session(xpm.engine) as s:
        return activity.recent(s, 1, category="Push")[0]


def _open_job(xpm: Xpm) -> Any:
    practice = xpm.srv.sandbox.main
    return next(j for j in practice.jobs.values() if practice.is_current(j) and j.state == "Planned")


def test_a_newer_change_waits_for_an_unanswered_write_then_goes_once(local: Xpm):  # noqa: F811
    job = _open_job(local)
    changes.update_job(local.engine, job.number, due_date="2027-03-01", actor="ada")
    local.control("faults", {"kind": "applies_late", "path": "job.api/update", "seconds": 3})
    first = _push(local)["job"]
    assert [f["key"] for f in first.failures] == [job.number]
    assert "did not answer" in first.failures[0]["error"]
    entry = _logged(local)
    assert entry.message.startswith(f"(Jobs) pushed 0 change(s) to XPM, 1 failed: {job.number}: XPM did not answer")

    changes.update_job(local.engine, job.number, due_date="2027-04-01", actor="bo")
    waiting = _push(local)["job"]
    assert waiting.failures == []
    assert f"{job.number} waits until" in (waiting.note or "")
    time.sleep(4)  # XPM applies the first write, late
    assert (job.due_date, _updates(local)) == (date(2027, 3, 1), 1)

    _wait_out_unanswered_writes(local)
    _push(local)  # XPM holds the first write: the newer one goes, and is checked once more
    assert (job.due_date, _updates(local)) == (date(2027, 4, 1), 2)
    _wait_out_unanswered_writes(local)
    _push(local)
    assert changes.open_changes(local.engine) == []
    assert (job.due_date, _updates(local)) == (date(2027, 4, 1), 2)
    with Session(local.engine) as s:
        assert s.get(m.Job, (local.row().tenant_id, job.number)).pending_push is False


def test_a_write_xpm_applies_after_a_newer_one_is_found_and_the_newer_sent_again(
    local: Xpm,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__UNANSWERED_WRITE_SETTLE_MINUTES", "0")  # no wait: the race itself
    job = _open_job(local)
    changes.update_job(local.engine, job.number, due_date="2027-03-01", actor="ada")
    local.control("faults", {"kind": "applies_late", "path": "job.api/update", "seconds": 4})
    _push(local)  # no answer: XPM applies it four seconds later
    changes.update_job(local.engine, job.number, due_date="2027-04-01", actor="bo")
    _push(local)  # XPM still holds the old date: the newer goes now
    assert job.due_date == date(2027, 4, 1)
    time.sleep(5)
    assert job.due_date == date(2027, 3, 1)  # the first write landed over it
    with Session(local.engine) as s:
        statuses = {e.status for e in s.query(m.OutboxEntry).filter(m.OutboxEntry.entity_key == job.number)}
    assert statuses == {"verify"}  # not "done": XPM is read once more
    _push(local)
    assert job.due_date == date(2027, 4, 1)
    _push(local)
    assert changes.open_changes(local.engine) == []
    assert job.due_date == date(2027, 4, 1)


def test_a_record_that_hangs_is_recorded_against_it_and_the_others_reach_xpm(local: Xpm):  # noqa: F811
    stuck, other = [j for j in local.srv.sandbox.main.jobs.values() if j.state == "Planned"][:2]
    changes.set_job_state(local.engine, stuck.number, "Review", actor="ada")
    changes.update_job(local.engine, other.number, due_date="2027-05-01", actor="ada")
    local.control("faults", {"kind": "hang", "path": "job.api/state", "seconds": 30})
    result = _push(local)["job"]
    assert [f["key"] for f in result.failures] == [stuck.number]
    assert other.due_date == date(2027, 5, 1)
    entry = _logged(local)
    assert (entry.status, entry.actor) == ("Failure", "ada")
    assert entry.message.startswith(f"(Jobs) pushed 1 change(s) to XPM, 1 failed: {stuck.number}: XPM did not answer")


def test_a_write_answered_with_a_huge_body_is_read_no_further_than_the_cap(
    local: Xpm,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    import tracemalloc

    monkeypatch.setenv("AIRFLOW__XPM_SYNC__MAX_ANSWER_MB", "4")
    job = _open_job(local)
    changes.update_job(local.engine, job.number, due_date="2027-06-01", actor="ada")
    local.control("faults", {"kind": "gzip_bomb", "path": "job.api/update", "seconds": 200})  # 200 MB unpacked
    tracemalloc.start()
    result = _push(local)["job"]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [f["key"] for f in result.failures] == [job.number]
    assert "is over 4 MB" in result.failures[0]["error"]
    assert "not sent again until XPM has been read" in result.failures[0]["error"]
    assert peak < 64 << 20, f"{peak / 1e6:.0f} MB held for a 200 MB answer"
    with Session(local.engine) as s:
        statuses = {e.status for e in s.query(m.OutboxEntry).filter(m.OutboxEntry.entity_key == job.number)}
    assert statuses == {"sending"}  # XPM applied it (the answer said OK): the next push reads before sending
    _wait_out_unanswered_writes(local)
    _push(local)
    assert changes.open_changes(local.engine) == []
    assert (job.due_date, _updates(local)) == (date(2027, 6, 1), 1)


def test_an_unanswered_custom_field_write_is_marked_sending_first_and_sent_once(local: Xpm):  # noqa: F811
    """The entries are marked "sending" and committed before the call: a write XPM applies without
    answering is not sent again while it may yet land, and the value reaches XPM once."""
    practice = local.srv.sandbox.main
    client = next(iter(practice.clients.values()))
    field = next(d for d in practice.field_definitions.values() if d.name == "Fee Estimate")
    changes.set_custom_field(local.engine, "client", client.uuid, "Fee Estimate", "4321.00", actor="ada")
    local.control("faults", {"kind": "applies_late", "path": "client.api/update", "seconds": 3})
    first = _push(local)["client_custom_field"]
    assert [f["key"] for f in first.failures] == [client.uuid]
    assert "did not answer" in first.failures[0]["error"]
    with Session(local.engine) as s:
        statuses = {e.status for e in s.query(m.OutboxEntry).filter(m.OutboxEntry.entity_key == client.uuid)}
    assert statuses == {"sending"}

    again = _push(local)["client_custom_field"]  # at once: the unanswered write may yet land
    assert again.failures == []
    assert f"{client.uuid} waits until" in (again.note or "")
    time.sleep(4)  # XPM applies it, late
    writes = [w for w in local.srv.sandbox.gateway.writes if w[1].startswith("client.api/update")]
    assert len(writes) == 1
    assert client.custom_fields[field.uuid] == Decimal("4321.00")

    _wait_out_unanswered_writes(local)
    _push(local)  # XPM holds the value already: settled, nothing sent again
    assert changes.open_changes(local.engine) == []
    assert len([w for w in local.srv.sandbox.gateway.writes if w[1].startswith("client.api/update")]) == 1
