"""Changing XPM's records from the practice: one API for the command line, the XPM page and other code.

Each change happens in one transaction: the practice's settings must let the practice master the
field (jobs while "Maintain jobs locally" is on; custom fields while "Sync custom fields from XPM"
is off), the local row is changed and marked pending (no pull overwrites it), and an outbox entry
records who, when, and each field's value before and after. `xpm_push` then sends it to XPM.

Only changes made through this module are pushed: what another system writes straight into the
practice database's tables is not seen, which is why other systems use the JSON API (`web/api.py`,
/xpm/api/v1), which calls this module. The values themselves are read and written out by
`change_values`; Airflow is told of a change by `airflow_runs.notify_push`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from xpm_sync import activity, ids, settings
from xpm_sync.change_values import VALUE_COLUMN, ChangeRefused, field_value, job_value, text_of
from xpm_sync.errors import XpmInputError
from xpm_sync.store import models as m
from xpm_sync.store.engine import writing
from xpm_sync.store.locks import practice_tenant
from xpm_sync.store.models import ActivityStatus, OutboxStatus

log = logging.getLogger(__name__)

OPEN = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value, OutboxStatus.VERIFY.value)
# Job fields a practice may change, with the element XPM's job.api/update takes.
JOB_FIELDS = {
    "name": "Name",
    "description": "Description",
    "start_date": "StartDate",
    "due_date": "DueDate",
    "budget": "Budget",
}
JOBS_IN_XPM = (
    "Jobs are mastered in XPM (the setting 'Maintain jobs locally' is off): change the job in XPM, or turn the "
    "setting on to change jobs here and have the changes pushed to XPM."
)
FIELDS_IN_XPM = (
    "Custom fields come from XPM (the setting 'Sync custom fields from XPM' is on): change the value in XPM, or "
    "turn the setting off to keep custom fields here and have them pushed to XPM."
)
NO_CODE = (
    "XPM changes a job's state by the state's interface code, which XPM's job state list does not give, and no "
    "code is set for {state!r}. Find it in XPM (Business > Settings > Job States) and set it on the XPM page "
    "(Settings > Job state codes) or with `xpm-sync job-states set {quoted} CODE`."
)


@dataclass(frozen=True)
class Recorded:
    """What was recorded: the outbox entry, or None when the record already held the value."""

    entry_id: int | None
    message: str


# Called with the change's session and outcome just before it commits: what the caller records in
# the same transaction (the JSON API's Idempotency-Key), so both are kept or neither is.
Claim = Callable[[Session, Recorded], None]


def _one_transaction(engine: Engine, claim: Claim | None, work: Callable[[Session], Recorded]) -> Recorded:
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        result = work(session)
        if claim is not None:
            claim(session, result)
    return result


def _tenant(session: Session) -> str:
    tenant = practice_tenant(session)
    if tenant is None:
        raise ChangeRefused("XPM is not connected, so there is nothing to push changes to. Connect XPM first.")
    return str(tenant)


def _record(
    session: Session, tenant: str, entity: str, key: str, operation: str, fields: dict[str, Any], actor: str | None
) -> int:
    entry = m.OutboxEntry(
        tenant_id=tenant,
        entity=entity,
        entity_key=key,
        operation=operation,
        payload={"fields": fields},
        status=OutboxStatus.PENDING.value,
        created_by=actor,
    )
    session.add(entry)
    session.flush()
    return int(entry.id)


def _job(session: Session, tenant: str, number: str) -> m.Job:
    practice = settings.load(session)
    if not practice.maintain_jobs_locally:
        raise ChangeRefused(JOBS_IN_XPM)
    try:
        number = ids.job_number(number)
    except XpmInputError as exc:
        raise ChangeRefused(str(exc), field="job_number") from None
    job = session.get(m.Job, (tenant, number))
    if job is None or job.removed_upstream_at is not None:
        raise ChangeRefused(f"There is no job {number} in the practice database.", field="job_number")
    return job


def state_code(session: Session, tenant: str, state: str) -> str | None:
    """The interface code set for a job state, if any."""
    return session.scalar(
        select(m.JobStateCode.code).where(m.JobStateCode.tenant_id == tenant, m.JobStateCode.state_name == state)
    )


def _state_name(session: Session, tenant: str, wanted: str) -> str:
    names = list(
        session.scalars(
            select(m.JobState.name).where(m.JobState.tenant_id == tenant, m.JobState.removed_upstream_at.is_(None))
        )
    )
    found = next((n for n in names if n and n.lower() == wanted.strip().lower()), None)
    if found is None:
        raise ChangeRefused(
            f"{wanted!r} is not one of the practice's job states: {', '.join(sorted(map(str, names)))}.",
            field="state",
        )
    return found


def set_job_state(
    engine: Engine, number: str, state: str, *, actor: str | None, claim: Claim | None = None
) -> Recorded:
    """Move a job to another state here; the push sends it to XPM by the state's code."""

    def work(session: Session) -> Recorded:
        tenant = _tenant(session)
        job = _job(session, tenant, number)
        name = _state_name(session, tenant, state)
        if state_code(session, tenant, name) is None:
            raise ChangeRefused(NO_CODE.format(state=name, quoted=f'"{name}"'))
        if job.state == name:
            return Recorded(None, f"Job {job.job_number} is already {name}.")
        fields = {"state": {"before": job.state, "after": name}}
        job.state, job.pending_push = name, True
        job.row_hash = None  # the row no longer holds XPM's last answer
        entry = _record(session, tenant, "job", job.job_number, "state", fields, actor)
        return Recorded(entry, f"Job {job.job_number} is now {name} here; it goes to XPM with the next push.")

    return _one_transaction(engine, claim, work)


def update_job(
    engine: Engine, number: str, *, actor: str | None, claim: Claim | None = None, **changes: Any
) -> Recorded:
    """Change a job's name, description, dates or budget here; the push sends them to XPM."""
    unknown = sorted(set(changes) - set(JOB_FIELDS))
    if unknown or not changes:
        raise ChangeRefused(
            f"A job's {', '.join(JOB_FIELDS)} can be changed here, not {', '.join(unknown) or 'nothing'}.",
            field=unknown[0] if unknown else None,
        )

    def work(session: Session) -> Recorded:
        tenant = _tenant(session)
        job = _job(session, tenant, number)
        fields = {}
        for field, raw in changes.items():
            try:
                value = job_value(field, raw)
            except ChangeRefused as exc:
                raise ChangeRefused(str(exc), field=field) from None
            if text_of(getattr(job, field)) != text_of(value):
                fields[field] = {"before": text_of(getattr(job, field)), "after": text_of(value)}
                setattr(job, field, value)
        if not fields:
            return Recorded(None, f"Job {job.job_number} already holds those values.")
        job.pending_push = True
        job.row_hash = None  # the row no longer holds XPM's last answer
        entry = _record(session, tenant, "job", job.job_number, "update", fields, actor)
        return Recorded(
            entry, f"Job {job.job_number} changed here ({', '.join(fields)}); it goes to XPM with the next push."
        )

    return _one_transaction(engine, claim, work)


def set_custom_field(
    engine: Engine,
    kind: str,
    key: str,
    field: str,
    value: str | None,
    *,
    actor: str | None,
    claim: Claim | None = None,
) -> Recorded:
    """Set a client's or a job's custom field here (by its name or UUID); the push sends it to XPM."""
    if kind not in ("client", "job"):
        raise ChangeRefused(f"Custom fields belong to a client or a job, not {kind!r}.", field="record")

    def work(session: Session) -> Recorded:
        return _set_custom_field(session, kind, key, field, value, actor)

    return _one_transaction(engine, claim, work)


def _set_custom_field(
    session: Session, kind: str, key: str, field: str, value: str | None, actor: str | None
) -> Recorded:
    tenant = _tenant(session)
    if settings.load(session).sync_custom_fields_from_xpm:
        raise ChangeRefused(FIELDS_IN_XPM)
    parent_model: Any = m.Client if kind == "client" else m.Job
    value_model: Any = m.ClientCustomFieldValue if kind == "client" else m.JobCustomFieldValue
    parent_column = "client_uuid" if kind == "client" else "job_number"
    try:
        key = ids.client_uuid(key) if kind == "client" else ids.job_number(key)
    except XpmInputError as exc:
        raise ChangeRefused(str(exc), field="key") from None
    parent = session.get(parent_model, (tenant, key))
    if parent is None or parent.removed_upstream_at is not None:
        raise ChangeRefused(f"There is no {kind} {key} in the practice database.", field="key")
    definition = _definition(session, tenant, kind, field)
    element = definition.value_element or "Text"
    try:
        typed = field_value(element, value, str(definition.name))
    except ChangeRefused as exc:
        raise ChangeRefused(str(exc), field="value") from None
    row = session.get(value_model, (tenant, key, definition.uuid))
    column = VALUE_COLUMN[element]
    before = text_of(getattr(row, column)) if row is not None and row.removed_upstream_at is None else None
    if before == text_of(typed):
        return Recorded(None, f"{definition.name} of {kind} {key} already holds that value.")
    if row is None:
        row = value_model(tenant_id=tenant, field_uuid=definition.uuid, **{parent_column: key})
        session.add(row)
    for other in VALUE_COLUMN.values():
        setattr(row, other, None)
    setattr(row, column, typed)
    row.name, row.pending_push, row.removed_upstream_at = definition.name, True, None
    fields = {definition.uuid: {"name": definition.name, "element": element, "before": before, "after": text_of(typed)}}
    entry = _record(session, tenant, f"{kind}_custom_field", key, "set", fields, actor)
    shown = text_of(typed) or "(empty)"
    return Recorded(entry, f"{definition.name} of {kind} {key} set here to {shown}; it goes to XPM with the next push.")


def _definition(session: Session, tenant: str, kind: str, field: str) -> m.CustomFieldDefinition:
    flag = m.CustomFieldDefinition.use_client if kind == "client" else m.CustomFieldDefinition.use_job
    found = session.scalars(
        select(m.CustomFieldDefinition).where(
            m.CustomFieldDefinition.tenant_id == tenant,
            m.CustomFieldDefinition.removed_upstream_at.is_(None),
            flag.is_(True),
            (m.CustomFieldDefinition.uuid == field)
            | (func.lower(m.CustomFieldDefinition.name) == field.strip().lower()),
        )
    ).first()
    if found is None:
        raise ChangeRefused(
            f"There is no {kind} custom field {field!r} in XPM's definitions (sync them first).", field="field"
        )
    return found


def set_state_code(engine: Engine, state: str, code: str, *, actor: str | None) -> str:
    """Record the interface code XPM uses for a job state."""
    code = code.strip()
    if not code or len(code) > 100:
        raise ChangeRefused("An interface code is a short word, as XPM shows it (e.g. INPROGRESS).")
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        tenant = _tenant(session)
        name = _state_name(session, tenant, state)
        row = session.get(m.JobStateCode, (tenant, name))
        before = row.code if row is not None else None
        if row is None:
            session.add(m.JobStateCode(tenant_id=tenant, state_name=name, code=code, updated_by=actor))
        else:
            row.code, row.updated_by = code, actor
        if before != code:
            was = f" (was {before})" if before else ""
            activity.record(
                session,
                ActivityStatus.SUCCESS,
                "Settings",
                f"Job state {name!r} given the interface code {code}{was}",
                details={"job_state": name, "code": code, "previous": before},
                actor=actor,
                tenant_id=tenant,
            )
    return name


def state_codes(engine: Engine) -> list[tuple[str, str | None]]:
    """Every job state of the practice, with its interface code where one is set."""
    with Session(engine) as session:
        tenant = _tenant(session)
        codes = dict(
            session.execute(
                select(m.JobStateCode.state_name, m.JobStateCode.code).where(m.JobStateCode.tenant_id == tenant)
            ).all()
        )
        names = session.scalars(
            select(m.JobState.name).where(m.JobState.tenant_id == tenant, m.JobState.removed_upstream_at.is_(None))
        )
        return [(n, codes.get(n)) for n in sorted({str(n) for n in names if n} | set(codes))]


def open_changes(engine: Engine, *, entity: str | None = None) -> list[m.OutboxEntry]:
    """Changes not yet in XPM, oldest first: waiting, being sent, refused by XPM, or in conflict."""
    waiting = (*OPEN, OutboxStatus.FAILED.value, OutboxStatus.CONFLICT.value)
    with Session(engine, expire_on_commit=False) as session:
        tenant = practice_tenant(session)
        if tenant is None:
            return []
        query = select(m.OutboxEntry).where(m.OutboxEntry.tenant_id == tenant, m.OutboxEntry.status.in_(waiting))
        query = query.order_by(m.OutboxEntry.id)
        if entity:
            query = query.where(m.OutboxEntry.entity == entity)
        return list(session.scalars(query))


def retry(engine: Engine, entry_id: int, *, actor: str | None, claim: Claim | None = None) -> Recorded:
    """Put a refused change back in line for the next push."""

    def work(session: Session) -> Recorded:
        entry = session.get(m.OutboxEntry, entry_id, with_for_update=True)
        if entry is not None and entry.tenant_id != practice_tenant(session):
            entry = None  # another practice's change: not this practice's to retry (nor to say it exists)
        if entry is None or entry.status not in (OutboxStatus.FAILED.value, OutboxStatus.CONFLICT.value):
            raise ChangeRefused(f"Change {entry_id} is not one XPM refused; nothing to retry.")
        entry.status, entry.last_error = OutboxStatus.PENDING.value, None
        log.info("Change %s put back in line by %s", entry_id, actor)
        return Recorded(entry_id, f"Change {entry_id} is back in line for the next push.")

    return _one_transaction(engine, claim, work)


__all__ = ["VALUE_COLUMN", "ChangeRefused", "field_value", "text_of"]  # the values' API, through here too
