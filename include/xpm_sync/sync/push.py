"""Pushing the practice's own changes to XPM: the outbox, drained in order, a record at a time.

For each record with changes waiting (a job, or a client's or job's custom fields):

1. XPM's current values are read: one `job.api/current` serves every open job, else one call for
   the record.
2. The record's changes are coalesced (each field's first "before" and last "after") and compared
   with XPM's values. XPM already holding "after" means there is nothing to send: a push that timed
   out after XPM applied it, or the same change made in XPM. XPM holding "before" means send.
   XPM holding something else is a conflict: the local change still wins only while the practice
   masters the field (the settings), and XPM's value is kept in the outbox entry and logged;
   otherwise nothing is sent and the entries are marked "conflict".
3. The entries are marked "sending" and committed before the call. A crash or a timeout leaves them
   so: XPM may yet apply that write, late. For `unanswered_write_settle_minutes` nothing more is sent
   for the record (not even a newer change); then XPM is read again, and the record's newest value
   is sent only if XPM lacks it. What is sent over an unanswered write is marked "verify": after as
   long again XPM is read once more, and should the old write have landed over the newer one, the
   newer is sent again. No change is applied twice, and none is left under an older one.
4. XPM's OK marks them done, clears the record's pending mark and stores XPM's copy; 200 + ERROR
   marks them failed with XPM's words. Any other failure of one record (no answer, a 5xx past its
   retries, an answer that cannot be read) is recorded against that record, whose entries stay
   as they were for the next push, and the other records go on; only a refused grant or the day's
   limit stops the run, after saying what reached XPM.

The calls come out of what is left of the day's limit after the pulls' share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from xpm_sync import activity, change_values, changes, config, decisions, display, settings
from xpm_sync.api.records import Record
from xpm_sync.api.usage import calls_today
from xpm_sync.errors import (
    XpmAuthError,
    XpmBusinessError,
    XpmDailyLimitReached,
    XpmError,
    XpmPayloadError,
    XpmScopeError,
    XpmTransientError,
)
from xpm_sync.oauth import scopes
from xpm_sync.store import models as m
from xpm_sync.store.engine import writing
from xpm_sync.store.locks import granted_scopes
from xpm_sync.store.models import ActivityStatus, OutboxStatus
from xpm_sync.store.types import utcnow
from xpm_sync.store.upsert import upsert
from xpm_sync.sync.children import job_children
from xpm_sync.sync.context import EntityResult
from xpm_sync.sync.load import parent_rows

log = logging.getLogger(__name__)

LABELS = {"job": "Jobs", "client_custom_field": "Client custom fields", "job_custom_field": "Job custom fields"}
RECORD = {"job": "Job", "client_custom_field": "Client", "job_custom_field": "Job"}
SHOWN = 5


@dataclass
class Group:
    """The changes waiting for one record, oldest first."""

    entity: str
    key: str
    entries: list[m.OutboxEntry] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [e.id for e in self.entries]

    @property
    def over_unanswered(self) -> bool:
        """A write for this record got no answer (or what was sent after one awaits its check)."""
        return any(e.status in (OutboxStatus.SENDING.value, OutboxStatus.VERIFY.value) for e in self.entries)

    def settles_at(self) -> datetime | None:
        """Until when this record waits for an unanswered write that XPM may still apply, if it does."""
        moments = [
            e.sending_at if e.status == OutboxStatus.SENDING.value else e.sent_at
            for e in self.entries
            if e.status in (OutboxStatus.SENDING.value, OutboxStatus.VERIFY.value)
        ]
        latest = max((t for t in moments if t is not None), default=None)
        if latest is None:
            return None
        latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
        return latest + timedelta(minutes=config.get_int("unanswered_write_settle_minutes"))

    def own(self) -> dict[str, set[str | None]]:
        """Each field's values that came from here: what each change started from and set."""
        values: dict[str, set[str | None]] = {}
        for entry in self.entries:
            for name, change in entry.payload["fields"].items():
                values.setdefault(name, set()).update((change["before"], change["after"]))
        return values

    def fields(self) -> dict[str, dict[str, Any]]:
        """Each field's change over all the entries: the first value before, the last after."""
        merged: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            for name, change in entry.payload["fields"].items():
                if name in merged:
                    merged[name]["after"] = change["after"]
                else:
                    merged[name] = dict(change)
        return merged


@dataclass
class Push:
    """One run of the push: the hook, the store and what has been done so far."""

    hook: Any
    engine: Engine
    tenant_id: str
    practice: settings.PracticeSettings
    results: dict[str, EntityResult] = field(default_factory=dict)
    open_jobs: dict[str, Record] | None = None
    # Jobs whose state changed with nothing else: XPM's copy is read once for all of them at the end.
    to_refresh: list[str] = field(default_factory=list)

    def result(self, entity: str) -> EntityResult:
        return self.results.setdefault(entity, EntityResult(entity, "push"))


def waiting(engine: Engine, tenant_id: str) -> list[Group]:
    """Records with changes waiting to go to XPM, in the order their first change was made."""
    with Session(engine, expire_on_commit=False) as session:
        entries = session.scalars(
            select(m.OutboxEntry)
            .where(m.OutboxEntry.tenant_id == tenant_id, m.OutboxEntry.status.in_(changes.OPEN))
            .order_by(m.OutboxEntry.id)
        ).all()
    groups: dict[tuple[str, str], Group] = {}
    for entry in entries:
        groups.setdefault((entry.entity, entry.entity_key), Group(entry.entity, entry.entity_key)).entries.append(entry)
    return list(groups.values())


def _mark(engine: Engine, ids: Iterable[int], status: OutboxStatus, **values: Any) -> None:
    wanted = list(ids)
    now = utcnow()
    extra: dict[str, Any] = {"sending_at": now} if status is OutboxStatus.SENDING else {}
    if status in (OutboxStatus.DONE, OutboxStatus.VERIFY):
        extra["sent_at"] = now
    with Session(writing(engine)) as session, session.begin():
        session.execute(
            update(m.OutboxEntry)
            .where(m.OutboxEntry.id.in_(wanted))
            .values(status=status.value, **extra, **values)
            .execution_options(synchronize_session=False)
        )
        if status is OutboxStatus.SENDING:
            session.execute(
                update(m.OutboxEntry)
                .where(m.OutboxEntry.id.in_(wanted))
                .values(attempts=m.OutboxEntry.attempts + 1)
                .execution_options(synchronize_session=False)
            )


def _keep_xpm_values(engine: Engine, group: Group, xpm: dict[str, str | None]) -> None:
    """Keep XPM's values (overwritten, or in conflict) in the entries, so nothing is silently lost."""
    with Session(writing(engine)) as session, session.begin():
        for entry in session.scalars(select(m.OutboxEntry).where(m.OutboxEntry.id.in_(group.ids))):
            payload = dict(entry.payload)
            payload["xpm"] = {k: v for k, v in xpm.items() if k in payload["fields"]}
            entry.payload = payload


def _compare(group: Group, xpm: dict[str, str | None]) -> tuple[dict[str, dict[str, Any]], dict[str, str | None]]:
    """(what to send, XPM's values that are not the record's own: neither what its first change
    started from, nor one it set along the way, such as an earlier write XPM applied late)."""
    send, changed = {}, {}
    own = group.own()
    for name, change in group.fields().items():
        now = xpm.get(name)
        if now == change["after"]:
            continue  # already in XPM
        send[name] = change
        if now not in own.get(name, {change["before"]}):
            changed[name] = now
    return send, changed


def _sent(run: Push, group: Group) -> OutboxStatus:
    """How entries stand once XPM answered their write: done, or to be read once more when the write
    went over one XPM never answered (that one may still land, over this)."""
    return OutboxStatus.VERIFY if group.over_unanswered else OutboxStatus.DONE


def _settled(run: Push, group: Group, model: Any, where: Any) -> None:
    """Clear the record's pending mark, unless a newer change is still waiting."""
    with Session(writing(run.engine)) as session, session.begin():
        still = session.scalar(
            select(m.OutboxEntry.id).where(
                m.OutboxEntry.tenant_id == run.tenant_id,
                m.OutboxEntry.entity == group.entity,
                m.OutboxEntry.entity_key == group.key,
                m.OutboxEntry.status.in_(changes.OPEN),
            )
        )
        if still is None:
            session.execute(update(model).where(model.tenant_id == run.tenant_id, where).values(pending_push=False))


def _store_job(run: Push, record: Record) -> None:
    """XPM's copy of a job after the push: the next pull then finds nothing to change."""
    with Session(writing(run.engine)) as session, session.begin():
        rows = parent_rows([record], run.tenant_id)
        upsert(session, m.Job, rows)
        job_children(session, run.tenant_id, [record])


def _job_now(run: Push, number: str) -> Record:
    if run.open_jobs is None:
        run.open_jobs = {j["job_number"]: j for j in run.hook.current_jobs(detailed=True)}
    return run.open_jobs.get(number) or run.hook.job(number)


def _update_body(current: Record, fields: dict[str, dict[str, Any]]) -> list[tuple[str, str | None]]:
    """Every field job.api/update takes, from XPM's copy with the local changes laid over it."""
    values = {name: change_values.text_of(current.get(name)) for name in changes.JOB_FIELDS}
    values.update({name: change["after"] for name, change in fields.items() if name in changes.JOB_FIELDS})
    body = []
    for name, element in changes.JOB_FIELDS.items():
        value = values[name]
        if name in ("start_date", "due_date") and value:
            value = value.replace("-", "")  # XPM takes dates as YYYYMMDD
        body.append((element, value))
    body.append(("ClientNumber", change_values.text_of(current.get("client_order_number"))))
    return body


def _push_job(run: Push, group: Group) -> None:
    result = run.result(group.entity)
    current = _job_now(run, group.key)
    xpm = {name: change_values.text_of(current.get(name)) for name in ("state", *changes.JOB_FIELDS)}
    send, changed = _compare(group, xpm)
    if changed and not _conflict(run, group, changed, mastered=run.practice.maintain_jobs_locally):
        return
    if not send:
        _mark(run.engine, group.ids, OutboxStatus.DONE)
        _settled(run, group, m.Job, m.Job.job_number == group.key)
        _store_job(run, current)
        result.fetched += len(group.entries)
        return
    code = None
    if "state" in send:
        with Session(run.engine) as session:
            code = changes.state_code(session, run.tenant_id, send["state"]["after"])
        if code is None:
            reason = changes.NO_CODE.format(state=send["state"]["after"], quoted=f'"{send["state"]["after"]}"')
            _mark(run.engine, group.ids, OutboxStatus.FAILED, last_error=reason)
            result.add_failure(group.key, reason)
            return
    _mark(run.engine, group.ids, OutboxStatus.SENDING)
    if code is not None:
        run.hook.set_job_state(group.key, code)
    updates = {k: v for k, v in send.items() if k in changes.JOB_FIELDS}
    # The update's answer is XPM's copy, state included; after a state change alone it is read at the end.
    record = run.hook.update_job(group.key, _update_body(current, updates)) if updates else None
    status = _sent(run, group)
    _mark(run.engine, group.ids, status)
    if status is OutboxStatus.DONE:
        _settled(run, group, m.Job, m.Job.job_number == group.key)
        if record is not None:
            _store_job(run, record)
        else:
            run.to_refresh.append(group.key)
    result.fetched += len(group.entries)
    result.written += len(group.entries)


def _refresh_jobs(run: Push) -> None:
    """XPM's copy of the jobs whose state was pushed (XPM sets their completed date, for one): one
    current-list call for those still open, one call for each that left it."""
    if not run.to_refresh:
        return
    try:
        still_open = {j["job_number"]: j for j in run.hook.current_jobs(detailed=True)}
        for number in run.to_refresh:
            _store_job(run, still_open.get(number) or run.hook.job(number))
    except (XpmTransientError, XpmBusinessError, XpmPayloadError) as exc:
        # The changes are in XPM; only XPM's copy of what it derived (a completed date) waits for a pull.
        log.warning("XPM's copy of the pushed jobs could not be read back (%s)", exc)


def _send_text(element: str, text: str | None) -> str | None:
    """A custom field value as XPM takes it: dates YYYYMMDD, an unticked checkbox false."""
    if element == "Boolean":
        return text or "false"
    if element == "Date" and text:
        return text.replace("-", "")
    return text


def _push_fields(run: Push, group: Group) -> None:
    result = run.result(group.entity)
    kind = "client" if group.entity == "client_custom_field" else "job"
    read = run.hook.client_field_values if kind == "client" else run.hook.job_field_values
    fields = group.fields()
    xpm: dict[str, str | None] = {}
    for value in read(group.key):
        element = fields.get(value["field_uuid"], {}).get("element", "Text")
        xpm[value["field_uuid"]] = change_values.text_of(value.get(change_values.VALUE_COLUMN[element]))
    send, changed = _compare(group, xpm)
    if changed and not _conflict(run, group, changed, mastered=not run.practice.sync_custom_fields_from_xpm):
        return
    status = OutboxStatus.DONE
    if send:
        status = _sent(run, group)
        _mark(run.engine, group.ids, OutboxStatus.SENDING)
        values = [
            (uuid, change["element"], _send_text(change["element"], change["after"])) for uuid, change in send.items()
        ]
        run.hook.set_custom_fields(kind, group.key, values)
        result.written += len(group.entries)
    _mark(run.engine, group.ids, status)
    if status is OutboxStatus.VERIFY:
        result.fetched += len(group.entries)
        return
    value_model: Any = m.ClientCustomFieldValue if kind == "client" else m.JobCustomFieldValue
    parent = value_model.client_uuid if kind == "client" else value_model.job_number
    _settled(run, group, value_model, parent == group.key)
    cleared = [uuid for uuid, change in fields.items() if change["after"] is None]
    if cleared:  # XPM returns no value for them now: neither do we
        with Session(writing(run.engine)) as session, session.begin():
            session.execute(
                update(value_model)
                .where(value_model.tenant_id == run.tenant_id, parent == group.key, value_model.field_uuid.in_(cleared))
                .values(removed_upstream_at=utcnow())
            )
    result.fetched += len(group.entries)


def _conflict(run: Push, group: Group, changed: dict[str, str | None], *, mastered: bool) -> bool:
    """XPM's value changed since the local edit. True to push anyway (the practice masters the field),
    keeping XPM's value in the entries; False when XPM masters it now: the local change stops."""
    _keep_xpm_values(run.engine, group, changed)
    result = run.result(group.entity)
    shown = ", ".join(f"{name}={value!r}" for name, value in changed.items())
    chosen = [e.payload.get("decided_by") for e in group.entries if e.payload.get("decided") == "local"]
    if chosen:  # a person chose the local value (a Required Action): it goes, this once
        log.warning("%s %s: local value over XPM's (%s), as %s chose", group.entity, group.key, shown, chosen[0])
        result.note = (result.note + "; " if result.note else "") + f"local value kept for {group.key} ({shown})"
        return True
    if mastered:
        log.warning("%s %s: overwriting XPM's newer value (%s)", group.entity, group.key, shown)
        result.note = (result.note + "; " if result.note else "") + f"XPM's value overwritten for {group.key} ({shown})"
        return True
    reason = (
        f"XPM's value changed since this change was made ({shown}), and the setting now leaves the field to XPM: "
        "nothing was sent, and the next pull takes XPM's value."
    )
    _mark(run.engine, group.ids, OutboxStatus.CONFLICT, last_error=reason)
    wanted = group.fields()
    question = f"{RECORD[group.entity]} {group.key}: " + "; ".join(
        f"{wanted.get(name, {}).get('name', name)} here {wanted.get(name, {}).get('after')!r}, in XPM {value!r}"
        for name, value in changed.items()
    )
    with Session(writing(run.engine)) as session, session.begin():
        decisions.raise_conflict(
            session, tenant_id=run.tenant_id, entity=group.entity, entry_ids=group.ids, question=question
        )
    model: Any = m.Job if group.entity == "job" else None
    if model is not None:
        _settled(run, group, model, model.job_number == group.key)
    result.add_failure(group.key, reason)
    return False


def push(hook: Any, engine: Engine, *, actor: str | None = None, run_id: str | None = None) -> list[EntityResult]:
    """Send every change waiting in the outbox to XPM, within what is left of the day's calls."""
    tenant = hook.tenant_id
    with Session(engine) as session:
        practice = settings.load(session)
    run = Push(hook, engine, tenant, practice)
    groups = waiting(engine, tenant)
    made, _left = calls_today(engine, tenant)
    allowed = config.get_int("daily_call_limit") - made
    before = hook.api.usage.calls
    stopped: XpmError | None = None
    granted = granted_scopes(engine, hook.settings.conn_id)
    unreachable: dict[str, XpmScopeError] = {}
    for number, group in enumerate(groups):
        result = run.result(group.entity)
        need = scopes.write_scope(group.entity)
        if group.entity not in unreachable and not scopes.covers(granted, need):
            unreachable[group.entity] = _scope_refusal(hook, group.entity, need)
        if group.entity in unreachable:
            continue  # nothing sent: the changes wait for a reconnect that grants the scope
        if hook.api.usage.calls - before >= allowed:
            result.complete = False
            _note(result, f"{sum(len(g.entries) for g in groups[number:])} changes left for tomorrow (daily limit)")
            break
        settles = group.settles_at()
        if settles is not None and utcnow() < settles:
            _note(result, f"{group.key} waits until {display.when(settles)}: {WAITS}")
            continue
        try:
            (_push_job if group.entity == "job" else _push_fields)(run, group)
        except XpmBusinessError as exc:
            _mark(engine, group.ids, OutboxStatus.FAILED, last_error=exc.description)
            result.add_failure(group.key, exc.description)
        except (XpmAuthError, XpmDailyLimitReached) as exc:
            # Nothing more can be sent today, or at all until XPM is reconnected: say what was.
            left = sum(len(g.entries) for g in groups[number:])
            _note(result, f"stopped with {left} change(s) still waiting: {exc}")
            result.complete, stopped = False, exc
            break
        except XpmScopeError as exc:  # XPM refused the write outright: it was not applied
            _mark(engine, group.ids, OutboxStatus.PENDING)
            unreachable[group.entity] = exc
        except XpmError as exc:
            # This record only: its entries stay as they are (an unanswered write stays "sending",
            # so XPM is read before anything more is sent) and the rest go on.
            log.warning("%s %s was not pushed: %s", group.entity, group.key, exc)
            result.add_failure(group.key, f"{exc} The change waits for the next push.")
    for entity, refusal in unreachable.items():
        left = sum(len(g.entries) for g in groups if g.entity == entity)
        result = run.result(entity)
        result.complete = False
        _note(result, f"nothing sent, {left} change(s) waiting: {refusal}")
    _refresh_jobs(run)
    hook.api.usage.flush()
    calls = hook.api.usage.calls - before
    for result in run.results.values():
        result.calls = calls  # shared: the reads serve every kind
    _report(engine, tenant, run.results, actor=actor, run_id=run_id)
    if stopped is not None:
        raise stopped
    if unreachable:
        raise next(iter(unreachable.values()))
    return list(run.results.values())


def _scope_refusal(hook: Any, entity: str, scope: str) -> XpmScopeError:
    """The connection may not write `entity`'s changes: say so once (an Alert and an email per scope)."""
    from xpm_sync.api.client import needs_scope

    why = f"to push {LABELS[entity].lower()} to XPM"
    hook.mark_needs_scope(scope, why)
    return XpmScopeError(needs_scope(scope, f"Pushing {LABELS[entity].lower()}"), scope=scope, why=why)


WAITS = "XPM did not answer a write for it, and may still apply it; nothing newer is sent before then"


def _note(result: EntityResult, text: str) -> None:
    result.note = f"{result.note}; {text}" if result.note else text


def _report(
    engine: Engine, tenant: str, results: dict[str, EntityResult], *, actor: str | None, run_id: str | None
) -> None:
    """One Practice Activity entry per kind of record pushed: '(Jobs) pushed 12 changes, 1 failed: ...'."""
    with Session(writing(engine)) as session, session.begin():
        for entity, result in results.items():
            message = f"({LABELS[entity]}) pushed {result.written} change(s) to XPM"
            if result.fetched > result.written + len(result.failures):
                message += f", {result.fetched - result.written - len(result.failures)} already there"
            if result.failures:
                shown = "; ".join(f"{f['key']}: {f['error']}" for f in result.failures[:SHOWN])
                message += f", {len(result.failures)} failed: {shown}"
            if result.note:
                message += f" ({result.note})"
            activity.record(
                session,
                ActivityStatus.FAILURE if result.failures else ActivityStatus.SUCCESS,
                "Push",
                message,
                details={**result.as_dict(), "run_id": run_id, "entity": entity},
                actor=actor,
                tenant_id=tenant,
            )
