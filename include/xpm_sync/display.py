"""How moments are shown to people: in the practice's time zone, with the zone named."""

from __future__ import annotations

from datetime import datetime

from xpm_sync import config


def when(moment: datetime | None) -> str | None:
    """`2026-11-21 19:00:04 AEDT`, or None for no moment."""
    if moment is None:
        return None
    return moment.astimezone(config.practice_timezone()).strftime("%Y-%m-%d %H:%M:%S %Z")


def size(count: int | None) -> str:
    """A number of bytes as a person reads it (decimal units, as Xero prices data egress)."""
    if count is None:
        return "unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,} B"
