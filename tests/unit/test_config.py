from __future__ import annotations

import pytest

from xpm_sync import config


@pytest.fixture(autouse=True)
def _fresh_store_url():
    config.store_url.cache_clear()
    yield
    config.store_url.cache_clear()


def test_the_practice_database_defaults_to_sqlite_beside_airflows(airflow_home, monkeypatch):
    monkeypatch.delenv("AIRFLOW__XPM_SYNC__STORE_URL", raising=False)
    url = config.store_url()
    assert url.drivername == "sqlite"
    assert url.database == str(airflow_home / "xpm_practice.db")


def test_the_store_setting_is_used_when_there_is_no_store_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__STORE_URL", "postgresql://u@db.example/practice")
    assert config.store_url().render_as_string() == "postgresql+psycopg://u@db.example/practice"


def test_the_store_connection_wins_over_the_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__STORE_URL", "sqlite:////nowhere.db")
    monkeypatch.setenv("AIRFLOW_CONN_XPM_STORE", "postgres://practice:pw@10.0.0.5:5432/xpm")
    url = config.store_url()
    assert (url.drivername, url.host, url.database, url.username) == (
        "postgresql+psycopg",
        "10.0.0.5",
        "xpm",
        "practice",
    )


def test_a_store_connection_of_another_type_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_XPM_STORE", "mysql://u:p@h/db")
    with pytest.raises(ValueError, match="must be a 'postgres' or 'sqlite' connection"):
        config.store_url()
