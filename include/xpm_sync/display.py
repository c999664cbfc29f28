"""How moments are shown to people: in the practice's time zone, with the zone named."""

from __future__ import annotations

from datetime import datetime

from xpm_sync import config


def when(moment: datetime | None) -> str | None:
    """`2026-11-21 19:00:04 AEDT`, or None for no moment."""
    if moment is None:
        return None
    return moment.astimezone(config.practice_timezone()).strftime("%Y-%m-%d %H:%M:%S %Z")
