"""What Airflow needs before the xpm-sync DAGs run: the practice database and the XPM pool."""

from __future__ import annotations

import logging

from xpm_sync import config
from xpm_sync.store import migrate

log = logging.getLogger(__name__)


def ensure_pool() -> tuple[str, int]:
    """Create or resize the pool that bounds calls in flight to XPM; return its name and slots."""
    from airflow.models.pool import Pool

    name, slots = config.get("api_pool"), config.get_int("api_pool_slots")
    Pool.create_or_update_pool(
        name,
        slots,
        "Calls in flight to Xero Practice Manager (XPM allows 5 per practice)",
        include_deferred=False,
    )
    log.debug("Pool %s has %s slots", name, slots)
    return name, slots


def setup() -> None:
    """Bring the practice database to the newest schema and create the XPM pool."""
    migrate.upgrade()
    ensure_pool()
