from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from xpm_sync.store.engine import session_scope
from xpm_sync.store.models import Client, Job, Staff
from xpm_sync.store.upsert import upsert

TENANT_A = "aaaaaaaa-0000-4000-8000-000000000001"
TENANT_B = "bbbbbbbb-0000-4000-8000-000000000002"


def _clients(tenant: str, n: int = 3) -> list[dict]:
    return [
        {
            "tenant_id": tenant,
            "uuid": f"00000000-0000-4000-8000-{i:012d}",
            "name": f"Client {i} of {tenant[:4]}",
            "is_archived": False,
            "balance_month": 6,
            "provisional_tax_ratio": Decimal("1.05"),
            "date_of_birth": date(1980, 1, i + 1),
        }
        for i in range(n)
    ]


def test_the_same_rows_twice_change_nothing(migrated_engine):
    rows = _clients(TENANT_A)
    with session_scope(migrated_engine) as s:
        assert upsert(s, Client, rows) == 3
    with session_scope(migrated_engine) as s:
        before = {c.uuid: c.synced_at for c in s.scalars(select(Client))}

    with session_scope(migrated_engine) as s:
        assert upsert(s, Client, rows) == 0
    with session_scope(migrated_engine) as s:
        after = {c.uuid: c.synced_at for c in s.scalars(select(Client))}
    assert after == before


def test_a_changed_field_updates_only_that_row(migrated_engine):
    rows = _clients(TENANT_A)
    with session_scope(migrated_engine) as s:
        upsert(s, Client, rows)
    rows[1] = {**rows[1], "name": "Renamed Ltd"}
    with session_scope(migrated_engine) as s:
        assert upsert(s, Client, rows) == 1
    with session_scope(migrated_engine) as s:
        assert s.get(Client, (TENANT_A, rows[1]["uuid"])).name == "Renamed Ltd"


def test_rows_of_two_tenants_never_mix(migrated_engine):
    with session_scope(migrated_engine) as s:
        upsert(s, Client, _clients(TENANT_A))
        upsert(s, Client, _clients(TENANT_B))
    with session_scope(migrated_engine) as s:
        a = s.scalars(select(Client).where(Client.tenant_id == TENANT_A)).all()
        b = s.scalars(select(Client).where(Client.tenant_id == TENANT_B)).all()
    # Same XPM keys in both practices, yet each practice keeps its own rows and values.
    assert {c.uuid for c in a} == {c.uuid for c in b}
    assert all("of aaaa" in c.name for c in a)
    assert all("of bbbb" in c.name for c in b)

    with session_scope(migrated_engine) as s:
        assert upsert(s, Client, [{**_clients(TENANT_B)[0], "name": "B only"}]) == 1
    with session_scope(migrated_engine) as s:
        assert s.get(Client, (TENANT_A, _clients(TENANT_A)[0]["uuid"])).name.endswith("of aaaa")


def test_a_row_waiting_to_be_pushed_is_not_overwritten(migrated_engine):
    row = {"tenant_id": TENANT_A, "job_number": "J000001", "name": "Local name", "state": "Planned"}
    with session_scope(migrated_engine) as s:
        upsert(s, Job, [row])
        s.get(Job, (TENANT_A, "J000001")).pending_push = True

    with session_scope(migrated_engine) as s:
        assert upsert(s, Job, [{**row, "name": "XPM name"}]) == 0
    with session_scope(migrated_engine) as s:
        assert s.get(Job, (TENANT_A, "J000001")).name == "Local name"


def test_a_row_marked_removed_upstream_is_restored_when_seen_again(migrated_engine):
    from xpm_sync.store.types import utcnow

    row = {"tenant_id": TENANT_A, "uuid": "11111111-0000-4000-8000-000000000001", "name": "Ann"}
    with session_scope(migrated_engine) as s:
        upsert(s, Staff, [row])
        s.get(Staff, (TENANT_A, row["uuid"])).removed_upstream_at = utcnow()
    with session_scope(migrated_engine) as s:
        assert upsert(s, Staff, [row]) == 1
    with session_scope(migrated_engine) as s:
        assert s.get(Staff, (TENANT_A, row["uuid"])).removed_upstream_at is None


def test_large_batches_are_split_under_the_parameter_limit(migrated_engine):
    rows = [
        {"tenant_id": TENANT_A, "uuid": f"22222222-0000-4000-8000-{i:012d}", "name": f"S{i}", "email": None}
        for i in range(12_000)
    ]
    with session_scope(migrated_engine) as s:
        assert upsert(s, Staff, rows) == 12_000
    with session_scope(migrated_engine) as s:
        assert upsert(s, Staff, rows) == 0
