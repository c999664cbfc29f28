"""A local change holds only what XPM and the practice database's columns hold: a value beyond them
is refused with a sentence and nothing is recorded (SQLite stored `inf` and 1E+40; PostgreSQL
answered with a traceback)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import connected  # noqa: F401 - the fixture, for these tests
from tests.integration.sync.test_push import local  # noqa: F401 - the fixture, for these tests
from xpm_sync import changes
from xpm_sync.store import models as m


def _outbox(xpm: Xpm) -> int:
    with Session(xpm.engine) as s:
        return int(s.scalar(select(func.count()).select_from(m.OutboxEntry)) or 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"budget": "1e999999"}, "is too large for the budget", id="budget-1e999999"),
        pytest.param({"budget": "9" * 40}, "is too large for the budget", id="budget-40-digits"),
        pytest.param({"budget": "12.34567"}, "more than 4 decimal places", id="budget-5-decimals"),
        pytest.param({"budget": "1" * 100_000}, "is not a number the budget can hold", id="budget-100000-digits"),
        pytest.param({"name": "N" * 300}, "at most 255 characters; this one has 300", id="name-300-characters"),
    ],
)
def test_a_job_value_beyond_what_xpm_holds_is_refused_and_nothing_recorded(
    local: Xpm,  # noqa: F811
    change: dict[str, str],
    message: str,
):
    job = next(j for j in local.srv.sandbox.main.jobs.values() if j.state == "Planned")
    with pytest.raises(changes.ChangeRefused, match=message):
        changes.update_job(local.engine, job.number, actor="ada", **change)
    assert _outbox(local) == 0
    with Session(local.engine) as s:
        row = s.get(m.Job, (local.row().tenant_id, job.number))
        assert (row.pending_push, row.budget, row.name) == (False, job.budget, job.name)


def test_a_custom_field_number_beyond_the_column_is_refused(local: Xpm):  # noqa: F811
    client = next(iter(local.srv.sandbox.main.clients))
    number = next(d.name for d in local.srv.sandbox.main.field_definitions.values() if d.value_element == "Number"
                  and d.use_client)  # fmt: skip
    with pytest.raises(changes.ChangeRefused, match="is too large"):
        changes.set_custom_field(local.engine, "client", client, number, "1" * 40, actor="ada")
    assert _outbox(local) == 0


def test_setting_a_job_states_code_is_logged_with_who_and_what_it_was(local: Xpm):  # noqa: F811
    from xpm_sync import activity

    # The fixture set Planned's code to PLANNED.
    changes.set_state_code(local.engine, "Planned", "PLAN", actor="ada")
    changes.set_state_code(local.engine, "Planned", "PLAN", actor="bo")  # no change: nothing more to say
    with Session(local.engine) as s:
        logged = [e for e in activity.recent(s, 10) if (e.details or {}).get("job_state") == "Planned"]
    assert [(e.status, e.actor, e.message) for e in logged] == [
        ("Success", "ada", "Job state 'Planned' given the interface code PLAN (was PLANNED)"),
        ("Success", "admin", "Job state 'Planned' given the interface code PLANNED"),
    ]
