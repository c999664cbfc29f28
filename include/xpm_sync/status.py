"""The connection's status as a person reads it: one model for the XPM page and `xpm-sync status`.

Read from the practice database only (no Airflow import), so the command line answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from xpm_sync import config, display
from xpm_sync.api import usage
from xpm_sync.store.locks import active_connection
from xpm_sync.store.models import ConnectionStatus, XpmGrant

NOT_CONNECTED = "not connected"
GB = 1_000_000_000


@dataclass
class Status:
    conn_id: str
    status: str  # connected, needs_reconnect, disconnected, not connected
    practice: str | None = None
    tenant_id: str | None = None
    connected_by: str | None = None
    connected_at: str | None = None
    last_refresh_at: str | None = None
    last_error: str | None = None  # kept while the connection is not working
    calls_today: int = 0
    calls_left: int | None = None
    calls_limit: int = 0
    left_counted_by: str = "here"  # "XPM" once XPM has sent its own figure today
    custom_fields: str | None = None  # the coverage in a sentence
    custom_fields_complete_to: str | None = None
    custom_fields_never_read: int | None = None
    scopes: list[str] = field(default_factory=list)  # what the connection was granted
    # What it lacks: found when XPM (or a check before a call) refused, or needed by the settings.
    missing_scopes: list[dict[str, str]] = field(default_factory=list)
    egress_today: int = 0  # bytes of XPM's answers
    egress_month: int = 0
    egress_allowance: int = 0  # the month's allowance, [xpm_sync] monthly_egress_gb

    @property
    def needs_more_access(self) -> bool:
        return self.status == ConnectionStatus.CONNECTED.value and bool(self.missing_scopes)

    @property
    def egress_share(self) -> float:
        return self.egress_month / self.egress_allowance if self.egress_allowance else 0.0

    @property
    def reason(self) -> str | None:
        """Why XPM needs to reconnect, while it does."""
        return self.last_error if self.status == ConnectionStatus.NEEDS_RECONNECT.value else None

    def as_dict(self) -> dict[str, Any]:
        """The fields `xpm-sync status --json` has always given."""
        if self.status == NOT_CONNECTED:
            return {"conn_id": self.conn_id, "status": self.status}
        return {
            "conn_id": self.conn_id,
            "practice": self.practice,
            "tenant_id": self.tenant_id,
            "status": self.status,
            "connected_by": self.connected_by,
            "connected_at": self.connected_at,
            "last_refresh_at": self.last_refresh_at,
            "last_error": self.last_error,
            "calls_today": self.calls_today,
            "calls_left_today": self.calls_left,
            "calls_left_counted_here": self.left_counted_by == "here",
            "custom_fields": self.custom_fields,
            "custom_fields_complete_to": self.custom_fields_complete_to,
            "custom_fields_never_read": self.custom_fields_never_read,
            "scopes": self.scopes,
            "missing_scopes": self.missing_scopes,
            "egress_bytes_today": self.egress_today,
            "egress_bytes_month": self.egress_month,
            "egress_allowance_bytes": self.egress_allowance,
        }


def read(engine: Engine, conn_id: str | None = None) -> Status:
    """The status of the connection `conn_id` (the configured one by default)."""
    from xpm_sync.sync import custom_fields

    conn_id = conn_id or config.get("conn_id")
    with Session(engine) as session:
        row = session.scalars(active_connection(conn_id)).first()
        grant = session.get(XpmGrant, row.grant_id) if row is not None and row.grant_id is not None else None
    if row is None:
        return Status(conn_id, NOT_CONNECTED)
    from xpm_sync import settings as practice_settings
    from xpm_sync.oauth import scopes

    made, left = usage.calls_today(engine, row.tenant_id)
    today, month = usage.egress(engine, row.tenant_id)
    with Session(engine) as session:
        practice = practice_settings.load(session)
    missing = [{"scope": k, "why": str(v)} for k, v in (row.missing_scopes or {}).items()]
    for need in scopes.missing(row.scopes, practice, scopes.style_of(row.scopes)):
        if need.scope not in {m["scope"] for m in missing}:
            missing.append({"scope": need.scope, "why": need.why})
    limit = config.get_int("daily_call_limit")
    coverage = custom_fields.coverage(engine, row.tenant_id)
    return Status(
        conn_id=conn_id,
        status=row.status,
        practice=row.tenant_name,
        tenant_id=row.tenant_id,
        connected_by=row.connected_by,
        connected_at=display.when(row.connected_at),
        last_refresh_at=display.when(grant.last_refresh_at if grant is not None else None),
        last_error=row.last_error if row.status != ConnectionStatus.CONNECTED.value else None,
        calls_today=made,
        calls_left=usage.calls_left(made, left, limit),
        calls_limit=limit,
        left_counted_by="here" if left is None else "XPM",
        custom_fields=custom_fields.describe_coverage(coverage),
        custom_fields_complete_to=coverage["complete_to"].date().isoformat() if coverage["complete_to"] else None,
        custom_fields_never_read=coverage["never_read"],
        scopes=(row.scopes or "").split(),
        missing_scopes=missing,
        egress_today=today,
        egress_month=month,
        egress_allowance=int(config.get_float("monthly_egress_gb") * GB),
    )
