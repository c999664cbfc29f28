"""What one entity pull needs to know: the practice, the run, the mode and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from xpm_sync.settings import PracticeSettings
from xpm_sync.store.types import utcnow

if TYPE_CHECKING:
    from xpm_sync.hooks.xpm import XpmHook


@dataclass
class SyncContext:
    hook: XpmHook
    engine: Engine
    tenant_id: str
    settings: PracticeSettings
    full: bool = False
    dry_run: bool = False
    manual: bool = False
    run_id: str | None = None
    actor: str | None = None
    client_uuid: str | None = None
    job_number: str | None = None
    confirm_removals: bool = False
    entity: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    options: dict[str, Any] = field(default_factory=dict)
    held_back: int = 0


@dataclass
class EntityResult:
    """What a pull did; small enough for XCom and the activity log."""

    entity: str
    mode: str
    fetched: int = 0
    written: int = 0
    removed: int = 0
    calls: int = 0
    bytes: int = 0  # of XPM's answers, as they came over the wire
    complete: bool = True
    skipped: str | None = None
    note: str | None = None
    held_back: int = 0
    # Records XPM refused one by one (200 + ERROR): key and XPM's words. Their stored data is kept.
    failures: list[dict[str, str]] = field(default_factory=list)
    # What this pull added to the change feed: counts by kind and its first and last id.
    feed: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    def add_failure(self, key: str, error: str) -> None:
        self.failures.append({"key": key, "error": error})
