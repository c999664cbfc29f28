"""Which windows a night reads of a list XPM gives by date (`sync.work.windows`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from xpm_sync.store.models import SyncState
from xpm_sync.sync import work

TODAY = date(2026, 12, 4)
SPEC = work.BY_DATE["time_entries"]


@pytest.fixture(autouse=True)
def _options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__JOB_START_YEAR", "2023")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__HISTORY_RECONCILE_DAYS", "7")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__HISTORY_YEARS_PER_NIGHT", "1")


def _state(read: dict[str, str] | None = None, years_done: list[int] | None = None, full: bool = True) -> SyncState:
    cursor = {"read": read or {}, **({"years_done": years_done} if years_done else {})}
    when = datetime(2026, 11, 1, tzinfo=UTC) if full else None
    return SyncState(tenant_id="t", entity="time_entries", cursor=cursor, last_full_sync_at=when)


def _spans(found: list[work.Window]) -> list[tuple[date, date, str]]:
    return [(w.start, w.end, w.why) for w in found]


def test_a_first_pass_reads_every_year_and_a_resumed_one_the_years_left():
    assert [w.why for w in work.windows(SPEC, None, TODAY, full=False)] == ["year 2023", "year 2024", "year 2025",
                                                                           "year 2026"]  # fmt: skip
    resumed = _state(years_done=[2023, 2024], full=False)
    assert [w.why for w in work.windows(SPEC, resumed, TODAY, full=False)] == ["year 2025", "year 2026"]
    # The current year ends two days ahead (XPM's dates are the practice's, ahead of UTC).
    assert work.windows(SPEC, None, TODAY, full=False)[-1].end == TODAY + timedelta(days=2)


def test_a_night_reads_the_recent_window_and_the_year_least_recently_read_once_due():
    fresh = {"2023": "2026-12-01", "2024": "2026-12-01", "2025": "2026-12-01", "2026": "2026-12-01"}
    assert _spans(work.windows(SPEC, _state(fresh), TODAY, full=False)) == [
        (TODAY - timedelta(days=35), TODAY + timedelta(days=2), "recent")
    ]
    due = {"2023": "2026-11-20", "2024": "2026-11-10", "2025": "2026-12-01", "2026": "2026-12-01"}
    assert [w.why for w in work.windows(SPEC, _state(due), TODAY, full=False)] == ["recent", "year 2024 again"]


def test_the_recent_window_is_never_longer_than_the_year_xpm_allows(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__TIME_RECENT_DAYS", "900")
    (recent, *_older) = work.windows(SPEC, _state({}), TODAY, full=False)
    assert recent.end - recent.start == timedelta(days=365)
