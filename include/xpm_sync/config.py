"""The one reader of xpm-sync's configuration.

Options live in Airflow's configuration, section `[xpm_sync]` (so `airflow.cfg` or
`AIRFLOW__XPM_SYNC__<OPTION>` set them); their defaults are declared once, in `provider.py`.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, time, tzinfo
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from xpm_sync import light_config
from xpm_sync.provider import CONFIG_OPTIONS

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

PRACTICE_DB_FILENAME = "xpm_practice.db"


def airflow_option(section: str, option: str, fallback: str | None) -> str | None:
    """An option of Airflow's configuration. Without Airflow imported (the command line), a plain
    answer is read where Airflow would read it (`light_config`), else Airflow is asked."""
    if not light_config.airflow_loaded():
        try:
            value = light_config.option(section, option)
            return fallback if value is None else value
        except light_config.NotPlain:
            pass
    from airflow.configuration import conf

    found = conf.get(section, option, fallback=fallback)
    return None if found is None else str(found)


def option_default(option: str) -> str:
    """An `[xpm_sync]` option as configured for the deployment (its declared default when unset),
    whichever practice the running code acts for."""
    default = CONFIG_OPTIONS[option]["default"]
    value = airflow_option("xpm_sync", option, default)
    return default if value is None else str(value)


def get(option: str) -> str:
    """Return an `[xpm_sync]` option for the practice the running code acts for (`practices.using`):
    its connection, its pool, and what its connection's extra sets for it; else the deployment's."""
    from xpm_sync import practices

    practice = practices.chosen()
    if practice is not None:
        if option == "conn_id":
            return practice.conn_id
        if option == "api_pool":
            return practice.pool
        if option in practice.options:
            return practice.options[option]
    return option_default(option)


def get_int(option: str) -> int:
    """Return an integer `[xpm_sync]` option."""
    return int(get(option))


def get_float(option: str) -> float:
    """Return a decimal `[xpm_sync]` option."""
    return float(get(option))


def airflow_home() -> str:
    """Return AIRFLOW_HOME as Airflow resolves it."""
    if not light_config.airflow_loaded():
        return os.path.abspath(light_config.airflow_home())
    from airflow.configuration import AIRFLOW_HOME

    return os.path.abspath(AIRFLOW_HOME)


def connection(conn_id: str) -> Any:
    """The connection's fields (conn_type, host, login, password, schema, port, extra), or None."""
    if not light_config.airflow_loaded():
        try:
            return light_config.connection(conn_id)
        except light_config.NotPlain:
            pass
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _url_from_connection(conn_id: str) -> URL | None:
    from sqlalchemy.engine import URL, make_url

    conn = connection(conn_id)
    if conn is None:
        return None
    if conn.conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        )
    if conn.conn_type == "sqlite":
        return make_url(f"sqlite:///{conn.host}")
    raise ValueError(
        f"Connection {conn_id!r} has type {conn.conn_type!r}; the practice database must be a "
        "'postgres' or 'sqlite' connection."
    )


@cache
def store_url() -> URL:
    """Where the practice database lives: the store connection, else `store_url`, else SQLite."""
    from sqlalchemy.engine import make_url

    url = _url_from_connection(option_default("store_conn_id"))
    if url is None and option_default("store_url"):
        url = make_url(option_default("store_url"))
    if url is None:
        url = make_url(f"sqlite:///{os.path.join(airflow_home(), PRACTICE_DB_FILENAME)}")
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    log.debug("Practice database: %s", url.render_as_string(hide_password=True))
    return url


def schedule_timezone() -> str:
    """The name of the time zone the DAGs' crons are read in: the practice's (`practice_timezone`),
    so a schedule and what the page and the morning check say of it never differ."""
    zone = practice_timezone()
    return zone.key if isinstance(zone, ZoneInfo) else "UTC"


def practice_timezone() -> tzinfo:
    """The practice's time zone: `[xpm_sync] timezone`, else Airflow's `[core] default_timezone`."""
    name = get("timezone") or airflow_option("core", "default_timezone", "utc") or "utc"
    if name.lower() in ("utc", "system", ""):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"[xpm_sync] timezone {name!r} is not a time zone name like Australia/Sydney") from None


def deadline_time() -> time | None:
    """`[xpm_sync] overnight_deadline` (HH:MM, practice time), or None when it is empty (no check)."""
    raw = get("overnight_deadline").strip()
    if not raw:
        return None
    try:
        hours, minutes = (int(part) for part in raw.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ValueError(
            f"[xpm_sync] overnight_deadline must be a time of day such as 07:00 (or empty), not {raw!r}"
        ) from None


def deadline_cron() -> str | None:
    """The morning deadline as a daily cron (xpm_morning_check's schedule), or None."""
    when = deadline_time()
    return None if when is None else f"{when.minute} {when.hour} * * *"
