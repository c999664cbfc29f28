"""The XPM page's routes in process: Airflow's own API app (with the plugin mounted at /xpm and
the simple auth manager), driven by FastAPI's TestClient with each role's bearer token, against
the sandbox and a real practice database. The same app also serves over real HTTP
(`airflow_server`), where the page reaches Airflow's REST API, as in an api-server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import PAGE_USERS
from tests.integration.conftest import AirflowServer, Xpm


@dataclass
class Page:
    client: Any
    xpm: Xpm
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self.tokens:
            reply = self.client.post("/auth/token", json={"username": user, "password": PAGE_USERS[user][1]})
            reply.raise_for_status()
            self.tokens[user] = reply.json()["access_token"]
        return self.tokens[user]

    def get(self, path: str, *, user: str | None = "admin", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return self.client.get(path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, data: dict[str, str] | None = None, *, user: str = "admin") -> Any:
        """A form on the page posted back, with the page's own token, as the browser sends it."""
        token = csrf_of(self.get("/xpm/", user=user).text)
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        return self.client.post(path, data={"csrf": token, **(data or {})}, headers=headers, follow_redirects=False)


@pytest.fixture
def page(airflow_app: Any, airflow_server: AirflowServer, xpm: Xpm) -> Iterator[Page]:
    from fastapi.testclient import TestClient

    with TestClient(airflow_app) as client:
        yield Page(client, xpm)


def csrf_of(html: str) -> str:
    """The page's form token, as the browser would send it back."""
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page holds no form token"
    return found.group(1)
