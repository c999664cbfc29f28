"""No call to Xero or XPM is made while a database transaction is open: a lock (SQLite's write lock,
a PostgreSQL row lock) must never wait on an answer from the network. Every HTTP request this
process sends is checked against the transactions open in its thread, through a connect, a full
sync, a refresh, a push, an outage, a reconnect and a disconnect (sandbox over HTTP, both databases)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import requests.adapters
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tests.integration.conftest import Xpm
from tests.integration.sync.test_pull import sync
from xpm_sync import changes, settings
from xpm_sync.oauth import flow
from xpm_sync.oauth.tokens import TokenStore
from xpm_sync.sync import push


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The requests sent while their thread had a transaction open (the test expects none)."""
    open_in: Counter[int] = Counter()
    found: list[str] = []

    def began(_conn: object) -> None:
        open_in[threading.get_ident()] += 1

    def ended(_conn: object) -> None:
        open_in[threading.get_ident()] -= 1

    listeners = [("begin", began), ("commit", ended), ("rollback", ended)]
    for name, fn in listeners:
        event.listen(Engine, name, fn)
    sent = requests.adapters.HTTPAdapter.send

    def send(self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, **kwargs: object) -> object:
        if open_in[threading.get_ident()] > 0:
            found.append(f"{request.method} {(request.url or '').split('?')[0]}")
        return sent(self, request, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    try:
        yield found
    finally:
        for name, fn in listeners:
            event.remove(Engine, name, fn)


def test_the_watch_sees_a_request_sent_inside_a_transaction(xpm: Xpm, watched: list[str]):
    with Session(xpm.engine) as s, s.begin():
        s.execute(text("SELECT 1"))
        requests.get(f"{xpm.srv.url}/_sandbox", timeout=10)
    requests.get(f"{xpm.srv.url}/_sandbox", timeout=10)  # after the commit: fine
    assert watched == ["GET " + f"{xpm.srv.url}/_sandbox"]


def test_no_request_is_sent_inside_a_transaction(xpm: Xpm, watched: list[str]):
    xpm.connect()
    xpm.control("limits", {"per_minute": 100_000})
    sync(xpm, full=True)
    xpm.expire_access_token()
    sync(xpm, ["staff"])  # a refresh under the lock, then the call
    with Session(xpm.engine) as s, s.begin():
        settings.change(s, "maintain_jobs_locally", True, actor="admin")
    xpm.connect()  # granting practicemanager.job, which pushing jobs needs
    job = next(j for j in xpm.srv.sandbox.main.jobs.values() if xpm.srv.sandbox.main.is_current(j))
    changes.update_job(xpm.engine, job.number, due_date="2027-02-01", actor="ada")
    push.push(xpm.hook(), xpm.engine, actor="ada", run_id="t")
    xpm.control("revoke", {})  # an outage: the refresh is refused, the alert raised
    xpm.expire_access_token()
    with pytest.raises(Exception, match="reconnect"):
        sync(xpm, ["staff"])
    xpm.connect()  # the reconnect revokes the old grant
    tokens = TokenStore(xpm.settings, xpm.engine)
    flow.disconnect(xpm.settings, xpm.engine, access_token=tokens.access_token(), requested_by="admin")
    assert watched == []
