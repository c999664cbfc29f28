"""What a sync may do, decided before XPM is called: the request, the order entities run in, whether
the connection may be used, and what the practice's settings refuse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from xpm_sync import changes, settings
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import ConnectionStatus
from xpm_sync.sync.entities import ENTITIES

CUSTOM_FIELDS = ("client_custom_fields", "job_custom_fields", "custom_field_definitions")
NOT_CONNECTED = "XPM is not connected."
JOBS_LOCAL = (
    "Manual job sync refused: jobs are maintained locally (the setting 'Maintain jobs locally' is on) and "
    "{count} local job change(s) have not reached XPM yet. They go with the next push (every 15 minutes, or now "
    "with `xpm-sync push` or the XPM page); then the job sync can run, and it never overwrites jobs held here."
)


def jobs_waiting(engine: Engine) -> int:
    """Local job changes not yet in XPM (waiting, being sent, or refused by XPM)."""
    from sqlalchemy import func, select

    from xpm_sync.store.models import OutboxEntry, OutboxStatus

    open_ = (*changes.OPEN, OutboxStatus.FAILED.value)
    with Session(engine) as session:
        query = select(func.count()).where(OutboxEntry.entity == "job", OutboxEntry.status.in_(open_))
        return int(session.scalar(query) or 0)


@dataclass(frozen=True)
class Request:
    """What a run was asked to do."""

    manual: bool = False
    full: bool = False
    dry_run: bool = False
    actor: str | None = None
    run_id: str | None = None
    client_uuid: str | None = None
    job_number: str | None = None
    confirm_removals: bool = False
    conn_id: str | None = None
    store_url: str | None = None


def order(names: Sequence[str]) -> list[str]:
    """Entities in the order their data depends on each other."""
    unknown = sorted(set(names) - set(ENTITIES))
    if unknown:
        raise ValueError(f"Unknown entities {unknown}; choose from {sorted(ENTITIES)}")
    return [n for n in ENTITIES if n in names]


def connection_problem(engine: Engine, conn_id: str) -> str | None:
    """Why XPM must not be called now, or None when the connection is usable."""
    from xpm_sync.store.locks import active_connection

    with Session(engine) as session:
        row = session.scalars(active_connection(conn_id)).one_or_none()
    if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
        return (
            f"{NOT_CONNECTED} An XPM administrator connects it on the XPM page in Airflow or with `xpm-sync connect`."
        )
    if row.status == ConnectionStatus.NEEDS_RECONNECT.value:
        return (
            "XPM needs to reconnect. An XPM administrator reconnects it on the XPM page in Airflow, or runs "
            "`xpm-sync connect`."
        )
    return None


def refusal(name: str, request: Request, practice: settings.PracticeSettings) -> str | None:
    """Why the practice's settings rule this pull out, if they do."""
    if name == "jobs" and request.manual and practice.maintain_jobs_locally:
        count = jobs_waiting(get_engine(request.store_url))
        if count:
            return JOBS_LOCAL.format(count=count)
    if name in CUSTOM_FIELDS and not request.manual and not practice.sync_custom_fields_from_xpm:
        return "Skipped: custom fields are mastered locally ('Sync custom fields from XPM' is off)."
    switch = settings.READS.get(name)
    if switch and (request.client_uuid or request.job_number):
        return "Skipped: a sync of one client or job does not read time, costs, invoices or quotes."
    if switch and not getattr(practice, switch):
        return f"Skipped: '{settings.LABELS[switch]}' is off, so XPM was not asked (what is stored is kept)."
    return None
