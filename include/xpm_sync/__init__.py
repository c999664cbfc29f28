"""xpm-sync: keep a practice's own database in step with Xero Practice Manager (XPM)."""

from __future__ import annotations

__version__ = "0.1.0"
