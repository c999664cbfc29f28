"""Changing XPM's records from the practice: one API for the command line, the XPM page and other code.

Each change happens in one transaction: the practice's settings must let the practice master the
field (jobs while "Maintain jobs locally" is on; custom fields while "Sync custom fields from XPM"
is off), the local row is changed and marked pending (no pull overwrites it), and an outbox entry
records who, when, and each field's value before and after. `xpm_push` then sends it to XPM.

Only changes made through this module are pushed: what another system writes straight into the
practice database's tables is not seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from xpm_sync import activity, catalog, ids, settings
from xpm_sync.errors import XpmInputError
from xpm_sync.store import models as m
from xpm_sync.store.engine import writing
from xpm_sync.store.models import ActivityStatus, OutboxStatus

log = logging.getLogger(__name__)

OUTBOX_ASSET = catalog.asset_uri("outbox")
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


class ChangeRefused(XpmInputError):
    """The change is not allowed, or not valid; the message says why and what to do instead."""


@dataclass(frozen=True)
class Recorded:
    """What was recorded: the outbox entry, or None when the record already held the value."""

    entry_id: int | None
    message: str


def _tenant(session: Session) -> str:
    tenant = session.scalar(select(m.XpmConnection.tenant_id).where(m.XpmConnection.active.is_(True)))
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


def text_of(value: Any) -> str | None:
    """A value in the text form the outbox keeps (and XPM's answers compare with)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _job(session: Session, tenant: str, number: str) -> m.Job:
    practice = settings.load(session)
    if not practice.maintain_jobs_locally:
        raise ChangeRefused(JOBS_IN_XPM)
    job = session.get(m.Job, (tenant, ids.job_number(number)))
    if job is None or job.removed_upstream_at is not None:
        raise ChangeRefused(f"There is no job {number} in the practice database.")
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
            f"{wanted!r} is not one of the practice's job states: {', '.join(sorted(map(str, names)))}."
        )
    return found


def set_job_state(engine: Engine, number: str, state: str, *, actor: str | None) -> Recorded:
    """Move a job to another state here; the push sends it to XPM by the state's code."""
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
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


def _job_value(field: str, value: Any) -> Any:
    if field in ("start_date", "due_date"):
        return value if isinstance(value, date) else _date(str(value), field.replace("_", " "))
    if field == "budget":
        return None if value in (None, "") else _decimal(str(value), "budget")
    text = str(value).strip()
    if field == "name" and not text:
        raise ChangeRefused("A job needs a name.")
    if field == "name" and len(text) > NAME_LENGTH:
        raise ChangeRefused(f"A job's name has at most {NAME_LENGTH} characters; this one has {len(text):,}.")
    return text or None


def update_job(engine: Engine, number: str, *, actor: str | None, **changes: Any) -> Recorded:
    """Change a job's name, description, dates or budget here; the push sends them to XPM."""
    unknown = sorted(set(changes) - set(JOB_FIELDS))
    if unknown or not changes:
        raise ChangeRefused(
            f"A job's {', '.join(JOB_FIELDS)} can be changed here, not {', '.join(unknown) or 'nothing'}."
        )
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        tenant = _tenant(session)
        job = _job(session, tenant, number)
        fields = {}
        for field, raw in changes.items():
            value = _job_value(field, raw)
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


def _date(text: str, what: str) -> date:
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise ChangeRefused(f"{text!r} is not a date for the {what}: write it as 2026-12-24.")


# What XPM's money and number fields and the practice database's columns (18 digits, 4 after the
# point) hold.
WHOLE_DIGITS, DECIMALS = 14, 4
NAME_LENGTH = 255


def _decimal(text: str, what: str) -> Decimal:
    shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text):,} characters)"
    if len(text) > 60:
        raise ChangeRefused(f"{shown!r} is not a number the {what} can hold.")
    try:
        number = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise ChangeRefused(f"{shown!r} is not a number for the {what}.") from None
    if not number.is_finite():
        raise ChangeRefused(f"{shown!r} is not a number for the {what}.")
    if number != 0 and number.adjusted() >= WHOLE_DIGITS:
        raise ChangeRefused(
            f"{shown!r} is too large for the {what}: XPM and the practice database hold at most "
            f"{WHOLE_DIGITS} digits before the point."
        )
    if number != number.quantize(Decimal(1).scaleb(-DECIMALS), rounding="ROUND_DOWN"):
        raise ChangeRefused(f"{shown!r} has more than {DECIMALS} decimal places, which the {what} cannot hold.")
    return number


VALUE_COLUMN = {
    "Text": "text_value",
    "Decimal": "decimal_value",
    "Number": "number_value",
    "Boolean": "boolean_value",
    "Date": "date_value",
}
_YES, _NO = {"yes", "true", "on", "1", "y"}, {"no", "false", "off", "0", "n", ""}


def field_value(element: str, text: str | None, name: str) -> Any:
    """A custom field value typed as its definition's ValueElement says; None clears it."""
    if text is None or (text.strip() == "" and element != "Boolean"):
        return None
    raw = text.strip()
    if element == "Boolean":
        if raw.lower() in _YES:
            return True
        if raw.lower() in _NO:
            return None  # XPM holds no value for an unticked checkbox
        raise ChangeRefused(f"{text!r} is not yes or no for {name}.")
    if element == "Date":
        return _date(raw, name)
    if element == "Decimal":
        return _decimal(raw, name)
    if element == "Number":
        number = _decimal(raw, name)
        if number != number.to_integral_value():
            raise ChangeRefused(f"{text!r} is not a whole number for {name}.")
        return number
    return raw


def set_custom_field(
    engine: Engine, kind: str, key: str, field: str, value: str | None, *, actor: str | None
) -> Recorded:
    """Set a client's or a job's custom field here (by its name or UUID); the push sends it to XPM."""
    if kind not in ("client", "job"):
        raise ChangeRefused(f"Custom fields belong to a client or a job, not {kind!r}.")
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        tenant = _tenant(session)
        if settings.load(session).sync_custom_fields_from_xpm:
            raise ChangeRefused(FIELDS_IN_XPM)
        parent_model: Any = m.Client if kind == "client" else m.Job
        value_model: Any = m.ClientCustomFieldValue if kind == "client" else m.JobCustomFieldValue
        parent_column = "client_uuid" if kind == "client" else "job_number"
        key = ids.client_uuid(key) if kind == "client" else ids.job_number(key)
        parent = session.get(parent_model, (tenant, key))
        if parent is None or parent.removed_upstream_at is not None:
            raise ChangeRefused(f"There is no {kind} {key} in the practice database.")
        definition = _definition(session, tenant, kind, field)
        element = definition.value_element or "Text"
        typed = field_value(element, value, str(definition.name))
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
        fields = {
            definition.uuid: {"name": definition.name, "element": element, "before": before, "after": text_of(typed)}
        }
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
        raise ChangeRefused(f"There is no {kind} custom field {field!r} in XPM's definitions (sync them first).")
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
        query = select(m.OutboxEntry).where(m.OutboxEntry.status.in_(waiting)).order_by(m.OutboxEntry.id)
        if entity:
            query = query.where(m.OutboxEntry.entity == entity)
        return list(session.scalars(query))


def retry(engine: Engine, entry_id: int, *, actor: str | None) -> None:
    """Put a refused change back in line for the next push."""
    with Session(writing(engine)) as session, session.begin():
        entry = session.get(m.OutboxEntry, entry_id, with_for_update=True)
        if entry is None or entry.status not in (OutboxStatus.FAILED.value, OutboxStatus.CONFLICT.value):
            raise ChangeRefused(f"Change {entry_id} is not one XPM refused; nothing to retry.")
        entry.status, entry.last_error = OutboxStatus.PENDING.value, None
        log.info("Change %s put back in line by %s", entry_id, actor)


TOLD, PUSH_PAUSED, NOT_TOLD = "told", "paused", "not told"


def notify_push(source: str = "xpm-sync") -> str:
    """Tell Airflow the outbox changed, so `xpm_push` runs now rather than at its next quarter hour.

    Works where Airflow's database is reachable (the XPM page, the command line on the Airflow
    host); elsewhere the change waits for the schedule. Returns TOLD when xpm_push will run now,
    PUSH_PAUSED when Airflow was told but xpm_push is paused (nothing runs until it is unpaused),
    NOT_TOLD when Airflow could not be told.
    """
    try:
        from airflow.assets.manager import asset_manager
        from airflow.serialization.definitions.assets import SerializedAssetUniqueKey
        from airflow.utils.session import create_session

        from xpm_sync import airflow_runs

        with create_session() as session:
            event = asset_manager.register_asset_change(
                asset=SerializedAssetUniqueKey(name=OUTBOX_ASSET, uri=OUTBOX_ASSET),
                extra={"from": source},
                session=session,
                source_is_api=True,
            )
        if event is None:
            return NOT_TOLD
        return PUSH_PAUSED if airflow_runs.is_paused("xpm_push") else TOLD
    except Exception as exc:  # Airflow's database is out of reach: the schedule picks it up
        log.info("Airflow was not told about the change (%s); xpm_push picks it up on schedule", type(exc).__name__)
        return NOT_TOLD
