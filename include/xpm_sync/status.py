"""The connection's status as a person reads it: one model for the XPM page and `xpm-sync status`.

Read from the practice database only (no Airflow import), so the command line answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from xpm_sync import config, display
from xpm_sync.api import usage
from xpm_sync.store.locks import active_connection
from xpm_sync.store.models import ConnectionStatus

NOT_CONNECTED = "not connected"


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
        }


def read(engine: Engine, conn_id: str | None = None) -> Status:
    """The status of the connection `conn_id` (the configured one by default)."""
    from xpm_sync.sync import custom_fields

    conn_id = conn_id or config.get("conn_id")
    with Session(engine) as session:
        row = session.scalars(active_connection(conn_id)).first()
    if row is None:
        return Status(conn_id, NOT_CONNECTED)
    made, left = usage.calls_today(engine, row.tenant_id)
    limit = config.get_int("daily_call_limit")
    coverage = custom_fields.coverage(engine, row.tenant_id)
    return Status(
        conn_id=conn_id,
        status=row.status,
        practice=row.tenant_name,
        tenant_id=row.tenant_id,
        connected_by=row.connected_by,
        connected_at=display.when(row.connected_at),
        last_refresh_at=display.when(row.last_refresh_at),
        last_error=row.last_error if row.status != ConnectionStatus.CONNECTED.value else None,
        calls_today=made,
        calls_left=usage.calls_left(made, left, limit),
        calls_limit=limit,
        left_counted_by="here" if left is None else "XPM",
        custom_fields=custom_fields.describe_coverage(coverage),
        custom_fields_complete_to=coverage["complete_to"].date().isoformat() if coverage["complete_to"] else None,
        custom_fields_never_read=coverage["never_read"],
    )
