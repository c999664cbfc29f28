"""Test environment: a throwaway AIRFLOW_HOME, and practice databases on SQLite and PostgreSQL.

Airflow reads its configuration when first imported, so the environment is set here, before
any test module imports it. Each test that asks for `store_engine` gets its own new database:
a SQLite file, or a PostgreSQL database created on 127.0.0.1:5432 and dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="xpm-sync-tests-airflow-"))

# Airflow's simple auth manager, for the page's routes tested in process (tests/integration/web):
# one user per role the XPM page tells apart, with passwords of their own.
PAGE_USERS = {"admin": ("admin", "pw-admin"), "op": ("op", "pw-op"), "user": ("user", "pw-user"),
              "viewer": ("viewer", "pw-viewer")}  # fmt: skip
(_AIRFLOW_HOME / "passwords.json").write_text(
    "{" + ", ".join(f'"{name}": "{pw}"' for name, (_role, pw) in PAGE_USERS.items()) + "}"
)
os.environ.update(
    {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{r}" for n, (r, _pw) in PAGE_USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(_AIRFLOW_HOME / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__FERNET_KEY": "Gk7nW8b3u8sT2G1pBv9m0tQ4cZy5xR6aJhL3eNwK1oA=",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        # A subprocess runs this checkout's code, whatever the virtualenv's editable install points at.
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO / "sandbox"), str(REPO)]),
    }
)
os.environ.pop("AIRFLOW_CONN_XPM_STORE", None)

PG_ADMIN_URL = os.environ.get("XPM_SYNC_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("XPM_SYNC_REQUIRE_PG") == "1"


def _pg_available() -> str | None:
    """None when the test PostgreSQL answers, else why not."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {type(exc).__name__}"
    return None


_PG_PROBLEM = _pg_available()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """Airflow's own metadata database, migrated once per test session."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return airflow_home


@pytest.fixture
def extra_dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for DAG files written by a test, served to Airflow as a second DAG bundle."""
    import json

    folder = tmp_path / "test_dags"
    folder.mkdir()
    bundles = [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {
            "name": "xpm-test-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    return folder


def load_dag_file(path: Path, name: str):  # type: ignore[no-untyped-def]
    """Import a DAG file the way the DAG processor would, and return its module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dag_of(name: str, dag_id: str | None = None):  # type: ignore[no-untyped-def]
    """A DAG built afresh from `dags/<name>.py` (the file builds one per practice): `dag_id`'s, by
    default the primary practice's, whose id is the file's name."""
    return load_dag_file(REPO / "dags" / f"{name}.py", name).DAGS[dag_id or name]


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; its URL. Dropped after the test."""
    if _PG_PROBLEM:
        if REQUIRE_PG:
            pytest.fail(_PG_PROBLEM)
        pytest.skip(_PG_PROBLEM)
    from sqlalchemy import create_engine, text

    name = f"xpm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(admin.url.set(database=name).render_as_string(hide_password=False))
    finally:
        from xpm_sync.store.engine import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A throwaway practice database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'practice.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def store_engine(store_url: str):  # type: ignore[no-untyped-def]
    """An engine on a throwaway practice database, not yet migrated."""
    from xpm_sync.store.engine import get_engine

    return get_engine(store_url)


@pytest.fixture
def migrated_engine(store_engine):  # type: ignore[no-untyped-def]
    """An engine on a throwaway practice database at the newest schema."""
    from xpm_sync.store import migrate

    migrate.upgrade(store_engine)
    return store_engine
