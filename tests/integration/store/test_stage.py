"""The sync's load: fingerprints, staging and set-based merges, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sync.api import fingerprint, records
from xpm_sync.api.xml import iter_items
from xpm_sync.errors import XpmPayloadError
from xpm_sync.settings import PracticeSettings
from xpm_sync.store.models import Job, JobAssignment
from xpm_sync.sync import children
from xpm_sync.sync.context import SyncContext
from xpm_sync.sync.load import load

TENANT = "aaaaaaaa-0000-4000-8000-000000000001"


def job_xml(number: str, name: str, staff: list[str]) -> str:
    assigned = "".join(f"<Staff><UUID>{s}</UUID><Name>{s}</Name></Staff>" for s in staff)
    return f"<Job><ID>{number}</ID><Name>{name}</Name><State>Planned</State><Assigned>{assigned}</Assigned></Job>"


def body(*jobs: str) -> bytes:
    return ("<Response><Status>OK</Status><Jobs>" + "".join(jobs) + "</Jobs></Response>").encode()


def ctx_for(engine: Any) -> SyncContext:
    return SyncContext(hook=None, engine=engine, tenant_id=TENANT, settings=PracticeSettings())  # type: ignore[arg-type]


def prints_of(engine: Any) -> fingerprint.Fingerprints:
    with Session(engine) as session:
        return fingerprint.job_fingerprints(session, Job, TENANT, skip_known=False)


def load_jobs(engine: Any, answer: bytes, prints: fingerprint.Fingerprints | None = None) -> tuple[int, int]:
    rows = iter_items(answer, ("Jobs", "Job"), records.job, fingerprints=prints)
    return load(ctx_for(engine), Job, rows, key="job_number", children=children.job_children, fingerprints=prints)


def stored(engine: Any) -> dict[str, Any]:
    with Session(engine) as session:
        jobs = {j.job_number: (j.name, j.row_hash is not None, j.synced_at) for j in session.scalars(select(Job))}
        staff = {
            (a.job_number, a.staff_uuid): a.removed_upstream_at is None for a in session.scalars(select(JobAssignment))
        }
    return {"jobs": jobs, "staff": staff}


def test_new_jobs_go_straight_in_and_the_same_answer_again_is_skipped_unread(migrated_engine):
    answer = body(job_xml("J1", "One", ["s1", "s2"]), job_xml("J2", "Two", ["s1"]))
    assert load_jobs(migrated_engine, answer, prints_of(migrated_engine)) == (2, 5)
    first = stored(migrated_engine)
    assert set(first["staff"]) == {("J1", "s1"), ("J1", "s2"), ("J2", "s1")}
    prints = prints_of(migrated_engine)
    assert load_jobs(migrated_engine, answer, prints) == (2, 0)
    assert prints.skipped == 2
    assert stored(migrated_engine) == first


def test_a_changed_job_is_rewritten_and_staff_no_longer_on_it_marked_removed(migrated_engine):
    first = body(job_xml("J1", "One", ["s1", "s2"]), job_xml("J2", "Two", ["s1"]))
    load_jobs(migrated_engine, first, prints_of(migrated_engine))
    before = stored(migrated_engine)
    changed = body(job_xml("J1", "One", ["s1", "s2"]), job_xml("J2", "Two renamed", ["s3"]))
    prints = prints_of(migrated_engine)
    # J1 unchanged: skipped. J2: the row, one staff row added, one marked removed.
    assert load_jobs(migrated_engine, changed, prints) == (2, 3)
    assert prints.skipped == 1
    after = stored(migrated_engine)
    assert after["jobs"]["J1"] == before["jobs"]["J1"]
    assert after["jobs"]["J2"][0] == "Two renamed"
    assert after["staff"] == {("J1", "s1"): True, ("J1", "s2"): True, ("J2", "s1"): False, ("J2", "s3"): True}


def test_a_job_stored_meanwhile_by_another_run_is_merged_not_refused(migrated_engine):
    stale = prints_of(migrated_engine)  # read while the store was empty
    load_jobs(migrated_engine, body(job_xml("J1", "One", ["s1", "s2"])))  # another run wins the race
    answer = body(job_xml("J1", "One again", ["s2"]), job_xml("J2", "Two", ["s1"]))
    fetched, written = load_jobs(migrated_engine, answer, stale)
    assert (fetched, written) == (2, 4)  # J1 and J2, J2's staff row, s1 leaving J1 (s2 stays as it was)
    now = stored(migrated_engine)
    assert {k: v[0] for k, v in now["jobs"].items()} == {"J1": "One again", "J2": "Two"}
    assert now["staff"] == {("J1", "s1"): False, ("J1", "s2"): True, ("J2", "s1"): True}


def test_a_row_without_a_fingerprint_is_read_again_and_given_one(migrated_engine):
    answer = body(job_xml("J1", "One", ["s1"]))
    load_jobs(migrated_engine, answer, prints_of(migrated_engine))
    with Session(migrated_engine) as session, session.begin():
        job = session.get(Job, (TENANT, "J1"))
        job.name, job.row_hash = "Changed here", None  # what a local change does
    prints = prints_of(migrated_engine)
    assert load_jobs(migrated_engine, answer, prints) == (1, 1)
    assert prints.skipped == 0
    assert stored(migrated_engine)["jobs"]["J1"][:2] == ("One", True)


def test_a_broken_answer_writes_nothing_and_teaches_the_pass_nothing(migrated_engine):
    prints = prints_of(migrated_engine)
    broken = body(job_xml("J1", "One", ["s1"]))[:-20]
    with pytest.raises(XpmPayloadError, match="not well-formed"):
        load_jobs(migrated_engine, broken, prints)
    assert stored(migrated_engine) == {"jobs": {}, "staff": {}}
    assert prints.is_new("J1")


def load_answer(engine: Any, answer: bytes, request: str = "job.api/current?detailed=true") -> tuple[Any, int, int]:
    """As `XpmHook._list` reads a list answer: whole-answer fingerprint first, then the records."""
    prints = prints_of(engine)
    stream = io.BytesIO(answer)
    rows = prints.answer(request, stream, lambda: iter_items(stream, ("Jobs", "Job"), records.job, fingerprints=prints))
    seen: set[str] = set()
    fetched, written = load(
        ctx_for(engine), Job, rows, key="job_number", children=children.job_children, seen=seen, fingerprints=prints
    )
    assert seen == {"J1", "J2"}  # skipped or not, every record of the answer is seen
    return prints, fetched, written


ANSWER = body(job_xml("J1", "One", ["s1", "s2"]), job_xml("J2", "Two", ["s1"]))


def test_the_very_same_answer_again_is_not_parsed_at_all(migrated_engine):
    prints, _, written = load_answer(migrated_engine, ANSWER)
    assert (prints.answers_skipped, written) == (0, 5)
    before = stored(migrated_engine)
    prints, fetched, written = load_answer(migrated_engine, ANSWER)
    assert (prints.answers_skipped, fetched, written) == (1, 2, 0)
    assert stored(migrated_engine) == before
    # Another request (another list) with the same bytes has its own fingerprint.
    again = prints_of(migrated_engine)
    other = again.answer("job.api/list?from=20240101", io.BytesIO(ANSWER), lambda: iter([]))
    assert isinstance(other, fingerprint.ListAnswer)
    assert again.answers_skipped == 0


def test_the_same_answer_is_read_again_when_its_rows_were_written_since(migrated_engine):
    load_answer(migrated_engine, ANSWER)
    with Session(migrated_engine) as session, session.begin():
        job = session.get(Job, (TENANT, "J2"))
        job.name, job.row_hash = "Changed here", None  # what a local change does (pushed since)
    prints, _, written = load_answer(migrated_engine, ANSWER)
    assert (prints.answers_skipped, written) == (0, 1)
    assert stored(migrated_engine)["jobs"]["J2"][0] == "Two"


def test_the_same_answer_is_read_again_when_a_row_was_marked_removed_since(migrated_engine):
    from xpm_sync.store.types import utcnow

    load_answer(migrated_engine, ANSWER)
    with Session(migrated_engine) as session, session.begin():
        session.get(Job, (TENANT, "J1")).removed_upstream_at = utcnow()  # a full list left it out
    prints, _, written = load_answer(migrated_engine, ANSWER)
    assert (prints.answers_skipped, written) == (0, 1)
    with Session(migrated_engine) as session:
        assert session.get(Job, (TENANT, "J1")).removed_upstream_at is None  # back in XPM's answer


def test_a_load_on_sqlite_waits_its_turn_when_another_writer_commits_meanwhile(migrated_engine, monkeypatch):
    # A transaction that read first (a stage copies its shape from the target) and then writes is
    # refused at once by SQLite if another writer committed in between: two sync tasks at once on
    # `airflow standalone` failed so. The load's transaction takes the write lock first instead.
    import threading

    from xpm_sync.store import stage as stage_module
    from xpm_sync.store.engine import writing
    from xpm_sync.store.models import Staff

    if migrated_engine.dialect.name != "sqlite":
        pytest.skip("SQLite's locking; PostgreSQL locks rows, not the database")
    load_jobs(migrated_engine, ANSWER, prints_of(migrated_engine))
    other: dict[str, Any] = {}
    fill = stage_module.Stage.fill

    def fill_while_another_task_writes(self: Any, *args: Any, **kwargs: Any) -> Any:
        table = fill(self, *args, **kwargs)
        if "thread" not in other:

            def another_task() -> None:
                with Session(writing(migrated_engine)) as session, session.begin():
                    session.add(Staff(tenant_id=TENANT, uuid="s-other", name="Written by another task"))
                other["committed"] = True

            other["thread"] = threading.Thread(target=another_task)
            other["thread"].start()
            other["thread"].join(timeout=1.0)  # it commits now unless the load holds the write lock
            other["waited"] = other["thread"].is_alive()
        return table

    monkeypatch.setattr(stage_module.Stage, "fill", fill_while_another_task_writes)
    changed = body(job_xml("J1", "One renamed", ["s1", "s2"]), job_xml("J2", "Two", ["s1"]))
    assert load_jobs(migrated_engine, changed, prints_of(migrated_engine)) == (2, 1)
    other["thread"].join(timeout=30)
    assert other == {"thread": other["thread"], "waited": True, "committed": True}
