"""What Airflow needs before the xpm-sync DAGs run, beside the practice database: the XPM pool."""

from __future__ import annotations

import logging

from xpm_sync import config

log = logging.getLogger(__name__)


def ensure_pool() -> tuple[str, int]:
    """Create or resize the pool that bounds calls in flight to XPM (with Airflow's own command line);
    return its name and slots."""
    from xpm_sync.airflow_runs import CommandLine

    name, slots = config.get("api_pool"), config.get_int("api_pool_slots")
    CommandLine().set_pool(name, slots, "Calls in flight to Xero Practice Manager (XPM allows 5 per practice)")
    log.debug("Pool %s has %s slots", name, slots)
    return name, slots
