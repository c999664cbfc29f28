"""How many XPM calls a sync will make, shown before a manual sync runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from xpm_sync import catalog, config
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import Client, Job, SyncState
from xpm_sync.store.types import utcnow
from xpm_sync.sync.runner import Request


def estimate(entities: Sequence[str], request: Request) -> int:
    """Calls the entities would make, as far as the store can tell before asking XPM."""
    engine = get_engine(request.store_url)
    calls = 0
    with Session(engine) as session:
        synced = {s.entity for s in session.scalars(select(SyncState).where(SyncState.last_full_sync_at.is_not(None)))}
        clients = (
            session.scalar(select(func.count()).select_from(Client).where(Client.removed_upstream_at.is_(None))) or 0
        )
        current = session.scalar(select(func.count()).select_from(Job).where(Job.is_current.is_(True))) or 0
    for name in entities:
        if request.client_uuid or request.job_number:
            calls += 1 if name in catalog.CALLS_XPM else 0
        elif name in catalog.REFERENCE or name == "clients":
            calls += 1
        elif name == "jobs":
            full = request.full or "jobs" not in synced
            years = utcnow().year - config.get_int("job_start_year") + 1
            calls += (years if full else 0) + 1 + max(1, current // 20)
        elif name == "client_custom_fields":
            calls += clients
        elif name == "job_custom_fields":
            calls += current
    return calls
