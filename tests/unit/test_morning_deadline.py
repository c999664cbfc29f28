"""Which night the morning check looks at: the last deadline before now, and the overnight run due
before it, in the practice's time zone (`xpm_sync.morning.night_before`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xpm_sync import config, morning


@pytest.fixture
def sydney(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__TIMEZONE", "Australia/Sydney")  # UTC+11 in December
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_CRON", "0 19 * * *")
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_DEADLINE", "07:00")


def test_after_the_deadline_it_is_last_nights_run(sydney: None):
    night = morning.night_before(datetime(2026, 12, 7, 3, 0, tzinfo=UTC))  # 14:00 Monday in Sydney
    assert night is not None
    assert night.deadline == datetime(2026, 12, 6, 20, 0, tzinfo=UTC)  # 07:00 Monday in Sydney
    assert night.due == datetime(2026, 12, 6, 8, 0, tzinfo=UTC)  # 19:00 Sunday in Sydney
    assert night.label() == "due Sun 06 Dec 19:00, deadline Mon 07 Dec 07:00 AEDT"


def test_before_the_deadline_it_is_the_night_before(sydney: None):
    night = morning.night_before(datetime(2026, 12, 6, 19, 0, tzinfo=UTC))  # 06:00 Monday in Sydney
    assert night is not None
    assert night.deadline == datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
    assert night.due == datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_a_weeknight_schedule_checks_fridays_run_on_monday(sydney: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_CRON", "0 19 * * 1-5")
    night = morning.night_before(datetime(2026, 12, 7, 3, 0, tzinfo=UTC))
    assert night is not None
    assert night.due == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # 19:00 Friday in Sydney


def test_an_empty_deadline_switches_the_check_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_DEADLINE", "")
    assert config.deadline_cron() is None
    assert morning.night_before(datetime(2026, 12, 7, 3, 0, tzinfo=UTC)) is None


def test_a_deadline_that_is_not_a_time_of_day_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_DEADLINE", "7am")
    with pytest.raises(ValueError, match="overnight_deadline must be a time of day such as 07:00"):
        config.deadline_cron()
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__OVERNIGHT_DEADLINE", "07:30")
    assert config.deadline_cron() == "30 7 * * *"


@pytest.mark.parametrize(
    ("ours", "airflows", "zone"),
    [("Australia/Sydney", "utc", "Australia/Sydney"), ("", "Europe/London", "Europe/London"), ("", "utc", "UTC"),
     ("", "system", "UTC")],
)  # fmt: skip
def test_the_crons_are_read_in_the_zone_the_practice_sees(
    ours: str, airflows: str, zone: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__TIMEZONE", ours)
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_TIMEZONE", airflows)
    assert config.schedule_timezone() == zone
    assert str(config.practice_timezone()) == zone
