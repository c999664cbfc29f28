"""The change feed against the sandbox, on SQLite and PostgreSQL: what each pull inserted, changed
and marked removed, exactly, and nothing when nothing changed."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected, sync  # noqa: F401 - the fixture
from xpm_sandbox.model import Staff
from xpm_sync.errors import XpmPayloadError
from xpm_sync.store import feed
from xpm_sync.store.models import Change, ClientCustomFieldValue, Job, TaxReturn


def _keys(xpm: Xpm, extra: dict, kind: str) -> set[str]:
    return {c.record_key for c in feed.read(xpm.engine, extra) if c.kind == kind}


def test_each_pull_says_exactly_what_it_inserted_changed_and_removed(connected: Xpm):  # noqa: F811
    practice = connected.srv.sandbox.main
    first = sync(connected, ["staff", "categories", "job_states", "client_groups", "custom_field_definitions",
                             "clients", "jobs"], full=True, run_id="night-1")  # fmt: skip
    clients = first["clients"].feed
    assert clients["run_id"] == "night-1"
    assert clients["entity"] == "clients"
    assert (clients["inserted"], clients["changed"], clients["removed"]) == (len(practice.clients), 0, 0)
    assert _keys(connected, clients, "inserted") == set(practice.clients)
    assert _keys(connected, first["jobs"].feed, "inserted") == set(practice.jobs)
    assert _keys(connected, first["staff"].feed, "inserted") == set(practice.staff)

    # A day in XPM: three clients edited, one job renamed, a staff member joins.
    now = connected.srv.sandbox.clock.now()
    edited = sorted(practice.clients)[:3]
    for uuid in edited:
        practice.clients[uuid].email = f"changed-{uuid[:8]}@example.com"
        practice.clients[uuid].modified_at = now - timedelta(minutes=5)
    renamed = next(j for j in practice.jobs.values() if practice.is_current(j))
    renamed.name += " (renamed)"
    joined = Staff(str(uuid4()), "Casey Newhire", "casey@example.com")
    practice.staff[joined.uuid] = joined

    second = sync(connected, ["staff", "clients", "jobs"], run_id="night-2")
    assert _keys(connected, second["clients"].feed, "changed") == set(edited)
    assert second["clients"].feed["inserted"] == second["clients"].feed["removed"] == 0
    assert _keys(connected, second["jobs"].feed, "changed") == {renamed.number}
    assert _keys(connected, second["staff"].feed, "inserted") == {joined.uuid}
    assert second["staff"].feed["changed"] == second["staff"].feed["removed"] == 0
    # The range an event names holds that entity's rows of that run, and nothing of the first night.
    assert {c.run_id for c in feed.read(connected.engine, second["clients"].feed)} == {"night-2"}

    # The next day the newcomer is gone from XPM's staff list (no job or client names them).
    del practice.staff[joined.uuid]
    third = sync(connected, ["staff", "clients", "jobs"], run_id="night-3")
    assert _keys(connected, third["staff"].feed, "removed") == {joined.uuid}
    assert (third["staff"].feed["inserted"], third["staff"].feed["changed"]) == (0, 0)

    fourth = sync(connected, ["staff", "clients", "jobs"], run_id="night-4")
    for name in ("staff", "clients", "jobs"):
        assert fourth[name].feed["first_id"] is None, (name, fourth[name].feed)
        assert feed.read(connected.engine, fourth[name].feed) == []
    for name in ("clients", "jobs"):
        assert third[name].feed["first_id"] is None, (name, third[name].feed)


def test_a_dry_run_leaves_nothing_in_the_feed_and_old_rows_are_pruned(connected: Xpm):  # noqa: F811
    sync(connected, ["staff"], full=True, dry_run=True)
    with Session(connected.engine) as session:
        assert session.scalar(select(func.count()).select_from(Change)) == 0
    sync(connected, ["staff"], full=True)
    tenant = connected.row().tenant_id
    with Session(connected.engine) as session, session.begin():
        stored = session.scalar(select(func.count()).select_from(Change))
        assert stored == len(connected.srv.sandbox.main.staff)
        oldest = session.scalars(select(Change).order_by(Change.id)).first()
        assert oldest is not None
        oldest.changed_at -= timedelta(days=31)
    assert feed.prune(connected.engine, tenant, 30) == 1
    assert feed.prune(connected.engine, tenant, 0) == 0  # 0 keeps them for ever
    with Session(connected.engine) as session:
        assert session.scalar(select(func.count()).select_from(Change)) == stored - 1


def test_a_retry_announces_what_its_failed_try_committed(connected: Xpm):  # noqa: F811
    practice = connected.srv.sandbox.main
    sync(connected, ["staff", "categories", "job_states", "client_groups", "clients"], full=True, run_id="night-1")
    # The first try stores the jobs of each year, then the current list comes back cut off: it fails
    # having committed them, and posts no Asset event. The retry finds them stored.
    connected.control("faults", {"kind": "truncate", "path": "job.api/current"})
    with pytest.raises(XpmPayloadError):
        sync(connected, ["jobs"], full=True, run_id="night-1")
    with Session(connected.engine) as session:
        committed = session.scalar(select(func.count()).select_from(Job))
    assert committed == len(practice.jobs)
    retry = sync(connected, ["jobs"], full=True, run_id="night-1")["jobs"].feed
    assert _keys(connected, retry, "inserted") == set(practice.jobs)
    assert retry["inserted"] == len(practice.jobs)


def test_custom_field_values_and_the_tax_return_register_are_in_the_feed(connected: Xpm):  # noqa: F811
    names = ["staff", "categories", "job_states", "client_groups", "custom_field_definitions", "clients", "jobs",
             "client_custom_fields", "tax_returns"]  # fmt: skip
    first = sync(connected, names, full=True, run_id="night-1")
    with Session(connected.engine) as session:
        values = {f"{v.client_uuid}/{v.field_uuid}" for v in session.scalars(select(ClientCustomFieldValue))}
        returns = {f"{r.client_uuid}/{r.tax_year}" for r in session.scalars(select(TaxReturn))}
    assert values
    assert returns
    assert _keys(connected, first["client_custom_fields"].feed, "inserted") == values
    assert _keys(connected, first["tax_returns"].feed, "inserted") == returns
    again = sync(connected, ["tax_returns"], run_id="night-2")
    assert again["tax_returns"].feed["first_id"] is None  # derived again, nothing changed
