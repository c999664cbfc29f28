"""The Tax Returns register, derived from what XPM holds.

XPM has no tax-return resource and Xero has no public Tax API, so the register is built from
each client's tax settings (`PrepareTaxReturn`, `ReturnType`, `BalanceMonth`, `AgencyStatus`)
and the client's tax-return jobs: one row per client and tax year, naming the job and its state.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xpm_sync.store.engine import writing
from xpm_sync.store.models import ChangeKind, Client, Job, TaxReturn
from xpm_sync.store.stage import Stage
from xpm_sync.store.types import utcnow
from xpm_sync.sync.context import EntityResult, SyncContext
from xpm_sync.sync.load import checkpoint, mark_missing, record_changes, record_stage

YEAR_IN_NAME = re.compile(r"\b(20\d\d)\b")


def is_tax_return_job(job_type: str | None, name: str | None) -> bool:
    return (job_type or "").lower() == "tax return" or "tax return" in (name or "").lower()


def tax_year_of(name: str | None, start: date | None, balance_month: int) -> int | None:
    """The tax year a return job is for: the year in its name, else the year ended before it began."""
    found = YEAR_IN_NAME.search(name or "")
    if found:
        return int(found.group(1))
    if start is None:
        return None
    return start.year if start.month > balance_month else start.year - 1


def last_ended_year(today: date, balance_month: int) -> int:
    return today.year if today.month > balance_month else today.year - 1


def derive(spec: Any, ctx: SyncContext) -> EntityResult:
    today = utcnow().date()
    with Session(ctx.engine) as session:
        clients = session.execute(
            select(Client.uuid, Client.return_type, Client.balance_month, Client.agency_status).where(
                Client.tenant_id == ctx.tenant_id,
                Client.prepare_tax_return.is_(True),
                Client.removed_upstream_at.is_(None),
            )
        ).all()
        jobs = session.execute(
            select(
                Job.client_uuid,
                Job.job_number,
                Job.name,
                Job.job_type,
                Job.state,
                Job.start_date,
                Job.due_date,
                Job.completed_date,
            )
            .where(Job.tenant_id == ctx.tenant_id, Job.removed_upstream_at.is_(None))
            .order_by(Job.job_number)
        ).all()
    by_client: dict[str, list[Any]] = {}
    for job in jobs:
        if is_tax_return_job(job.job_type, job.name):
            by_client.setdefault(job.client_uuid, []).append(job)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for client in clients:
        month = client.balance_month or 6
        base = {
            "tenant_id": ctx.tenant_id,
            "client_uuid": client.uuid,
            "return_type": client.return_type,
            "balance_month": client.balance_month,
            "agency_status": client.agency_status,
            "job_number": None,
            "job_state": None,
            "due_date": None,
            "completed_date": None,
        }
        current = last_ended_year(today, month)
        rows[(client.uuid, current)] = {**base, "tax_year": current}
        for job in by_client.get(client.uuid, []):
            year = tax_year_of(job.name, job.start_date, month)
            if year is None:
                continue
            rows[(client.uuid, year)] = {
                **base,
                "tax_year": year,
                "job_number": job.job_number,
                "job_state": job.state,
                "due_date": job.due_date,
                "completed_date": job.completed_date,
            }
    written = 0
    if not ctx.dry_run:
        with Session(writing(ctx.engine)) as session, session.begin():
            stage = Stage.of(session)
            written = stage.merge(TaxReturn, list(rows.values()), constants={"tenant_id": ctx.tenant_id}, track=True)
            record_stage(session, ctx, TaxReturn)
    removed = _mark_missing_pairs(ctx, set(rows))
    checkpoint(ctx, spec.name)
    return EntityResult(spec.name, "derived", len(rows), written, removed, 0)


def _mark_missing_pairs(ctx: SyncContext, keep: set[tuple[str, int]]) -> int:
    if ctx.dry_run:
        return 0
    with Session(writing(ctx.engine)) as session, session.begin():
        stale = [
            row
            for row in session.scalars(
                select(TaxReturn).where(TaxReturn.tenant_id == ctx.tenant_id, TaxReturn.removed_upstream_at.is_(None))
            )
            if (row.client_uuid, row.tax_year) not in keep
        ]
        for row in stale:
            row.removed_upstream_at = utcnow()
        record_changes(session, ctx, TaxReturn, ChangeKind.REMOVED, [(r.client_uuid, r.tax_year) for r in stale])
    return len(stale)


__all__ = ["derive", "mark_missing"]
