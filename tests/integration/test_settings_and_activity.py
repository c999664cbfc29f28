from __future__ import annotations

import pytest

from xpm_sync import activity, settings
from xpm_sync.store.engine import session_scope
from xpm_sync.store.models import ActivityStatus


def test_defaults_when_nothing_is_stored(migrated_engine):
    with session_scope(migrated_engine) as s:
        assert settings.load(s) == settings.PracticeSettings(
            maintain_jobs_locally=False, sync_custom_fields_from_xpm=True, maintain_invoices_locally=False
        )


def test_a_change_is_stored_and_logged_with_who_made_it(migrated_engine):
    with session_scope(migrated_engine) as s:
        settings.change(s, "maintain_jobs_locally", "on", actor="admin@practice")
    with session_scope(migrated_engine) as s:
        assert settings.load(s).maintain_jobs_locally is True
        (entry,) = activity.recent(s, 5)
    assert (entry.status, entry.category, entry.actor) == ("Success", "Settings", "admin@practice")
    assert entry.message == "Maintain jobs locally turned on"
    assert entry.details == {"setting": "maintain_jobs_locally", "old": False, "new": True}


def test_setting_a_value_it_already_has_logs_nothing(migrated_engine):
    with session_scope(migrated_engine) as s:
        settings.change(s, "sync_custom_fields_from_xpm", True, actor="admin")
        assert activity.recent(s) == []


def test_maintaining_invoices_locally_is_refused(migrated_engine):
    with (
        session_scope(migrated_engine) as s,
        pytest.raises(settings.SettingRefused, match="not supported yet"),
    ):
        settings.change(s, "maintain_invoices_locally", "on", actor="admin")
    with session_scope(migrated_engine) as s:
        assert settings.load(s).maintain_invoices_locally is False


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        pytest.param("maintain_jobs_locally", "maybe", "must be on or off", id="not-a-boolean"),
        pytest.param("colour", "on", "Unknown setting", id="unknown-setting"),
    ],
)
def test_bad_changes_say_what_is_wrong(migrated_engine, name, value, match):
    with session_scope(migrated_engine) as s, pytest.raises(settings.SettingRefused, match=match):
        settings.change(s, name, value, actor="admin")


def test_activity_entries_are_kept_newest_first_with_details(migrated_engine):
    with session_scope(migrated_engine) as s:
        activity.record(s, ActivityStatus.IN_PROGRESS, "Sync", "Overnight sync started", actor="scheduler")
        activity.record(s, "Success", "Sync", "Overnight sync finished", details={"clients": 12, "calls": 7})
    with session_scope(migrated_engine) as s:
        newest, older = activity.recent(s, 10)
    assert (newest.message, newest.details) == ("Overnight sync finished", {"clients": 12, "calls": 7})
    assert (older.status, older.actor) == ("In Progress", "scheduler")
    assert newest.occurred_at.tzinfo is not None


def test_an_unknown_activity_status_is_refused(migrated_engine):
    with session_scope(migrated_engine) as s, pytest.raises(ValueError, match="not one of"):
        activity.record(s, "Fine", "Sync", "hello")
