"""How many XPM calls a sync will make, shown before a manual sync runs (and on the XPM page)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xpm_sync import catalog, config
from xpm_sync.store.engine import get_engine
from xpm_sync.store.locks import practice_tenant
from xpm_sync.store.models import Job, SyncState
from xpm_sync.store.types import utcnow
from xpm_sync.sync import custom_fields, work
from xpm_sync.sync.policy import Request


def estimate(entities: Sequence[str], request: Request) -> int:
    """Calls the entities would make, as far as the store can tell before asking XPM.

    Lists cost one call each; jobs one call a year on a full pass, else the current list, the
    recent list and a call for each job expected to leave the current list; time, invoices and quotes
    a call a window (and their current lists), costs a call a page; custom fields one call
    per record due (the same rule the pull uses), within the day's custom-field share.
    """
    engine = get_engine(request.store_url)
    with Session(engine) as session:
        tenant_id = practice_tenant(session)
        # Every entity's checkpoint, read once: which had a full pass, and where the dated lists stand.
        states = {s.entity: s for s in session.scalars(select(SyncState).where(SyncState.tenant_id == tenant_id))}
        full_done = {name for name, s in states.items() if s.last_full_sync_at is not None}
        current = session.scalar(
            select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id, Job.is_current.is_(True))
        )
        invoices_due = work.payments_due(session, tenant_id) if tenant_id else 0
    calls = fields = 0
    for name in entities:
        if request.client_uuid or request.job_number:
            calls += 1 if name in catalog.CALLS_XPM else 0
        elif name in catalog.REFERENCE or name == "clients":
            calls += 1
        elif name == "jobs":
            if request.full or "jobs" not in full_done:
                calls += utcnow().year - config.get_int("job_start_year") + 1 + 1
            else:
                calls += 2 + (current or 0) // 50  # about 2% of open jobs leave the list on a day
        elif name in catalog.WORK:
            calls += work.planned_calls(
                name, states.get(name), utcnow().date(), full=request.full, invoices_due=invoices_due
            )
        elif name in catalog.CUSTOM_FIELD_VALUES and tenant_id:
            due = custom_fields.client_targets if name == "client_custom_fields" else custom_fields.job_targets
            fields += len(due(engine, tenant_id, full=request.full, sweep=not request.manual))
    return calls + min(fields, custom_fields.day_share())
