"""An `xpm` connection pointed at a live sandbox, and a practice database to hold its tokens."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from tenacity import wait_none

from tests.xpm_sandbox.conftest import REDIRECT
from xpm_sandbox.browser import sign_in
from xpm_sandbox.server import SandboxServer, connection_extras
from xpm_sandbox.state import USERS
from xpm_sync.hooks.xpm import XpmHook
from xpm_sync.oauth import flow
from xpm_sync.oauth.connection_config import XpmSettings, load
from xpm_sync.oauth.tokens import TokenSet, decrypt_tokens, encrypt_tokens
from xpm_sync.store import migrate
from xpm_sync.store.models import XpmConnection, XpmGrant


@dataclass
class Xpm:
    srv: SandboxServer
    engine: Engine
    store_url: str
    settings: XpmSettings
    slept: list[float]

    def connect(self, user: str = USERS.admin, **kwargs: Any) -> flow.ConnectResult:
        switch = kwargs.pop("switch_practice", False)
        url = flow.start(self.settings, self.engine, requested_by="tester", switch_practice=switch)
        redirect = sign_in(url, user)
        return flow.complete(self.settings, self.engine, redirect, **kwargs)

    def hook(self, **kwargs: Any) -> XpmHook:
        return XpmHook(
            store_url=self.store_url, backoff=wait_none(), sleep=self.sleep, clock=self.now, wall=self.now, **kwargs
        )

    def now(self) -> float:
        """The sandbox's clock, in seconds: the hook paces by the same time XPM counts by."""
        return float(self.srv.sandbox.clock.now().timestamp())

    def sleep(self, seconds: float) -> None:
        """Instead of sleeping, move the sandbox's clock: waits are recorded and honoured."""
        self.slept.append(seconds)
        self.control("clock", {"advance_seconds": seconds})

    def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        reply = requests.post(f"{self.srv.url}/_sandbox/{path}", json=payload or {}, timeout=10)
        reply.raise_for_status()
        return reply.json()

    def row(self) -> XpmConnection:
        with Session(self.engine) as session:
            row = session.scalars(select(XpmConnection).where(XpmConnection.active.is_(True))).one()
            session.expunge(row)
            return row

    def grant(self) -> XpmGrant:
        """The grant holding the active connection's tokens."""
        with Session(self.engine) as session:
            grant = session.get(XpmGrant, self.row().grant_id)
            assert grant is not None
            session.expunge(grant)
            return grant

    def stored_tokens(self) -> TokenSet:
        return decrypt_tokens(self.grant().token_ciphertext or "")

    def expire_access_token(self) -> None:
        """Make the stored access token expired here and at the sandbox."""
        tokens = self.stored_tokens()
        expired = TokenSet(
            tokens.access_token, tokens.refresh_token, tokens.expires_at.replace(year=2000), tokens.scope
        )
        with Session(self.engine) as session, session.begin():
            grant = session.get(XpmGrant, self.row().grant_id)
            assert grant is not None
            grant.token_ciphertext = encrypt_tokens(expired)
        self.control("clock", {"advance_seconds": 1801})

    @property
    def refreshes(self) -> int:
        return int(self.srv.sandbox.identity.refreshes)


def connect_command(user: str, *args: str) -> list[str]:
    """`xpm-sync connect --paste *args` as an administrator runs it, with `xpm-dev connect` signing in
    at the sandbox as `user` (the person at the browser)."""
    return [sys.executable, "-m", "xpm_devtools.cli", "connect", "--as", user, *args]


def conn_env(srv: SandboxServer, **extra: str) -> str:
    extras = {**connection_extras(srv.url), "redirect_uri": REDIRECT, **extra}
    return json.dumps({"conn_type": "xpm", "login": srv.client_id, "password": srv.client_secret, "extra": extras})


@pytest.fixture
def xpm(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Xpm]:
    with SandboxServer(clients=40, jobs=120, staff=6) as srv:
        monkeypatch.setenv("AIRFLOW_CONN_XPM_DEFAULT", conn_env(srv))
        monkeypatch.setenv("AIRFLOW__XPM_SYNC__STORE_URL", store_url)
        from xpm_sync import config
        from xpm_sync.store.engine import get_engine

        config.store_url.cache_clear()
        engine = get_engine(store_url)
        migrate.upgrade(engine)
        yield Xpm(srv, engine, store_url, load("xpm_default"), [])


@dataclass
class Inbox:
    """Mail received by a real SMTP server on a loopback port."""

    messages: list[Any]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        import email

        message = email.message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted"

    def body(self, index: int = -1) -> str:
        message = self.messages[index]
        parts = [p for p in message.walk() if p.get_content_type() == "text/html"]
        return str((parts[0] if parts else message).get_payload(decode=True).decode())


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    from xpm_sandbox.server import free_port

    inbox = Inbox([])
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    smtp_conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "xpm-sync@practice.example", "timeout": 10},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(smtp_conn))
    monkeypatch.setenv("AIRFLOW__XPM_SYNC__ALERT_RECIPIENTS", "admin@practice.example, it@practice.example")
    yield inbox
    controller.stop()


@dataclass
class AirflowServer:
    """Airflow's own API app served over real HTTP from a thread of the test process: the XPM page
    reaches Airflow's public REST API through it, as it does in an api-server."""

    url: str
    tokens: dict[str, str]

    def token(self, user: str) -> str:
        from tests.conftest import PAGE_USERS

        if user not in self.tokens:
            reply = requests.post(
                f"{self.url}/auth/token", json={"username": user, "password": PAGE_USERS[user][1]}, timeout=30
            )
            reply.raise_for_status()
            self.tokens[user] = reply.json()["access_token"]
        return self.tokens[user]

    def api(self, user: str) -> Any:
        """Airflow's REST API as `user`, the way the XPM page calls it."""
        from xpm_sync.airflow_runs import RestApi

        return RestApi(self.token(user), base=self.url)


@pytest.fixture(scope="session")
def airflow_app(airflow_db: Any) -> Any:
    from airflow.api_fastapi.app import create_app

    return create_app()


@pytest.fixture(scope="session")
def airflow_server(airflow_app: Any) -> Iterator[AirflowServer]:
    import os
    import threading
    import time

    import uvicorn

    from xpm_sandbox.server import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(airflow_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="airflow-api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "Airflow's API app stopped while starting"
        assert time.monotonic() < deadline, "Airflow's API app did not start serving"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    os.environ["AIRFLOW__XPM_SYNC__AIRFLOW_API_URL"] = url  # where the plugin reaches Airflow's API
    yield AirflowServer(url, {})
    os.environ.pop("AIRFLOW__XPM_SYNC__AIRFLOW_API_URL", None)
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="session")
def airflow_dags(airflow_db: Any) -> None:
    """Airflow knows the XPM DAGs: parsed into its database by its own command, as the dag-processor does."""
    import subprocess

    subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], check=True, capture_output=True)
