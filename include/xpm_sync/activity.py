"""The Practice Activity log: append-only entries a practice reads to see what the sync did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sync import config
from xpm_sync.store.models import ActivityStatus, PracticeActivity


def of_practice() -> Any:
    """The condition that keeps a query to the entries of the practice the running code acts for."""
    return PracticeActivity.conn_id == config.get("conn_id")


def record(
    session: Session,
    status: ActivityStatus | str,
    category: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
    tenant_id: str | None = None,
) -> PracticeActivity:
    """Append one entry, to the log of the practice the running code acts for (`practices.using`);
    `status` must be one of the Practice Activity statuses."""
    try:
        status = ActivityStatus(status)
    except ValueError:
        allowed = ", ".join(s.value for s in ActivityStatus)
        raise ValueError(f"activity status {status!r} is not one of: {allowed}") from None
    if not category or not message:
        raise ValueError("an activity entry needs a category and a message")
    entry = PracticeActivity(
        status=status.value,
        category=category,
        message=message,
        details=dict(details) if details else None,
        actor=actor,
        tenant_id=tenant_id,
        conn_id=config.get("conn_id"),
    )
    session.add(entry)
    session.flush()
    return entry


def recent(
    session: Session,
    limit: int = 20,
    *,
    category: str | None = None,
    status: str | None = None,
    offset: int = 0,
) -> Sequence[PracticeActivity]:
    """The practice's newest entries first, optionally of one category or status, skipping `offset`."""
    query = select(PracticeActivity).where(of_practice())
    query = query.order_by(PracticeActivity.id.desc()).limit(limit).offset(offset)
    if category:
        query = query.where(PracticeActivity.category == category)
    if status:
        query = query.where(PracticeActivity.status == status)
    return session.scalars(query).all()
