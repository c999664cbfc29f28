"""Airflow's configuration and connections, read without importing Airflow, for the command line.

Importing Airflow takes seconds; a read-only command (`xpm-sync status`, `activity`) needs only a
few options and the practice database's connection. This module answers them from the same
sources Airflow reads, in Airflow's order, when the answer is plain:

- an option: `AIRFLOW__<SECTION>__<OPTION>`, else the `airflow.cfg` Airflow would read
  (`AIRFLOW_CONFIG`, else `$AIRFLOW_HOME/airflow.cfg`, `AIRFLOW_HOME` defaulting to `~/airflow`);
- a connection: `AIRFLOW_CONN_<ID>` (JSON or URI), else the `connection` table of Airflow's own
  database (`[database] sql_alchemy_conn`), its password decrypted with `[core] fernet_key`.

Whatever it cannot answer with certainty (a `_cmd` or `_secret` option, a secrets backend, an
encrypted value without a key) raises `NotPlain`, and the caller asks Airflow itself. Nothing here
writes or creates anything. Where Airflow is already imported (a task, the API server), callers use
Airflow directly and this module is not involved.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


class NotPlain(Exception):
    """The answer needs Airflow itself (a command, a secrets backend, ...)."""


def airflow_loaded() -> bool:
    return "airflow.configuration" in sys.modules


def airflow_home() -> Path:
    return Path(os.path.expanduser(os.environ.get("AIRFLOW_HOME") or "~/airflow"))


@cache
def _file() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    path = Path(os.path.expanduser(os.environ.get("AIRFLOW_CONFIG") or str(airflow_home() / "airflow.cfg")))
    if path.is_file():
        parser.read(path)
    return parser


def option(section: str, key: str) -> str | None:
    """The option as Airflow would read it from the environment or airflow.cfg; None when unset."""
    name = f"AIRFLOW__{section.upper()}__{key.upper()}"
    if name in os.environ:
        return os.path.expanduser(os.path.expandvars(os.environ[name]))
    if f"{name}_CMD" in os.environ or f"{name}_SECRET" in os.environ:
        raise NotPlain(f"{name} comes from a command or a secret")
    parser = _file()
    if parser.has_section(section):
        if parser.has_option(section, f"{key}_cmd") or parser.has_option(section, f"{key}_secret"):
            raise NotPlain(f"[{section}] {key} comes from a command or a secret")
        if parser.has_option(section, key):
            return os.path.expanduser(os.path.expandvars(parser.get(section, key)))
    return None


@dataclass(frozen=True)
class Conn:
    conn_type: str
    host: str | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    port: int | None = None
    extra: str | None = None

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The extra as a dict (empty when unset or not JSON), as Airflow's own connection gives it."""
        try:
            found = json.loads(self.extra or "{}")
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}


def _from_uri(uri: str) -> Conn:
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        raise NotPlain("a SQLite connection given as a URI")  # Airflow's reading of its path is its own
    host = unquote(parts.hostname or "") or None
    query = dict(parse_qsl(parts.query))
    return Conn(
        conn_type=parts.scheme.replace("-", "_"),
        host=host,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        schema=unquote(parts.path.lstrip("/")) or None,
        port=parts.port,
        extra=query.pop("__extra__", None) or (json.dumps(query) if query else None),
    )


def _from_json(text: str) -> Conn:
    fields: dict[str, Any] = json.loads(text)
    port = fields.get("port")
    return Conn(
        conn_type=str(fields.get("conn_type") or ""),
        host=fields.get("host"),
        login=fields.get("login"),
        password=fields.get("password"),
        schema=fields.get("schema"),
        port=int(port) if port not in (None, "") else None,
        extra=extra if isinstance(extra := fields.get("extra"), str | None) else json.dumps(extra),
    )


def _decrypt(value: str | None, encrypted: bool) -> str | None:
    if value is None or not encrypted:
        return value
    keys = option("core", "fernet_key")
    if not keys:
        raise NotPlain("an encrypted connection and no [core] fernet_key")
    from cryptography.fernet import Fernet, MultiFernet

    fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
    return fernet.decrypt(value.encode()).decode()


def connection(conn_id: str) -> Conn | None:
    """The connection as Airflow would find it; None when neither the environment nor Airflow's
    database has it."""
    env = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if env:
        return _from_json(env) if env.lstrip().startswith("{") else _from_uri(env)
    if option("secrets", "backend"):
        raise NotPlain("a secrets backend is configured")
    url = option("database", "sql_alchemy_conn") or f"sqlite:///{airflow_home() / 'airflow.db'}"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None  # no Airflow database yet: nothing in it (and nothing is created by asking)
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT conn_type, host, login, password, schema, port, is_encrypted, extra, is_extra_encrypted "
                    "FROM connection "
                    "WHERE conn_id = :id"
                ),
                {"id": conn_id},
            ).first()
    except Exception as exc:  # not migrated, out of reach: let Airflow say so in its own words
        raise NotPlain(f"Airflow's database could not be read ({type(exc).__name__})") from None
    finally:
        engine.dispose()
    if row is None:
        return None
    return Conn(
        conn_type=row.conn_type,
        host=row.host,
        login=row.login,
        password=_decrypt(row.password, bool(row.is_encrypted)),
        schema=row.schema,
        port=row.port,
        extra=_decrypt(row.extra, bool(row.is_extra_encrypted)),
    )
