"""An XPM outage and its recovery, end to end on a real Airflow scheduler."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.conftest import Airflow
from tests.integration.conftest import Inbox
from xpm_sandbox.state import USERS
from xpm_sync import activity
from xpm_sync.store.engine import get_engine
from xpm_sync.store.models import ConnectionStatus, XpmConnection


def _entries(af: Airflow, n: int = 40) -> list:
    with Session(get_engine(af.store_url)) as s:
        return list(activity.recent(s, n))


def _status(af: Airflow) -> str:
    with Session(get_engine(af.store_url)) as s:
        return str(s.scalars(select(XpmConnection.status).where(XpmConnection.active.is_(True))).one())


def test_outage_alert_skip_reconnect_and_resync(airflow: Airflow, smtp: Inbox):
    af = airflow
    connected = af.connect(USERS.admin, "--by", "ada", "--no-sync")
    assert connected.returncode == 0, connected.stderr

    # A healthy overnight run, with the example DAG on the clients' and jobs' Assets turned on first.
    af.api("PATCH", f"/dags/{EXAMPLE}", json={"is_paused": False}).raise_for_status()
    run = af.trigger("xpm_overnight_sync")
    assert af.wait("xpm_overnight_sync", run) == "success"
    assert _entries(af)[0].message.startswith("Overnight sync finished:")
    practice = af.srv.sandbox.main
    first = _example_reads(af, {"clients": {"inserted": sorted(practice.clients)},
                                "jobs": {"inserted": sorted(practice.jobs)}}, seen=set())  # fmt: skip
    _the_example_reads_what_the_next_night_changed(af, seen=first)

    # Access is revoked in Xero: the next run fails once, with one email.
    af.srv.sandbox.identity.revoke_all()
    run = af.trigger("xpm_overnight_sync")
    assert af.wait("xpm_overnight_sync", run) == "failed"
    assert _status(af) == ConnectionStatus.NEEDS_RECONNECT.value
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Subject"] == "XPM needs to reconnect: Harbour View Accountants"
    assert "There is a problem with your XPM integration and authentication failed" in smtp.body()
    assert any(e.message.startswith("There is a problem with your XPM integration") for e in _entries(af))

    # The following run calls nothing and is red too: nothing could be done.
    calls = len(af.srv.sandbox.gateway.calls)
    run = af.trigger("xpm_overnight_sync")
    assert af.wait("xpm_overnight_sync", run) == "failed"
    assert len(af.srv.sandbox.gateway.calls) == calls
    assert _entries(af)[0].message.startswith("Overnight sync skipped: XPM needs to reconnect")
    assert len(smtp.messages) == 1

    # The administrator reconnects: the reset is logged and the manual sync it starts succeeds.
    reconnected = af.connect(USERS.admin, "--by", "ada")
    assert reconnected.returncode == 0, reconnected.stderr
    assert "Started xpm_manual_sync in Airflow" in reconnected.stdout
    assert _status(af) == ConnectionStatus.CONNECTED.value
    assert any(e.message == "XPM connection reset by Ada Admin" for e in _entries(af))
    manual = af.latest_run("xpm_manual_sync")
    assert manual["conf"]["full"] is True
    assert af.wait("xpm_manual_sync", manual["dag_run_id"]) == "success"
    assert _entries(af)[0].message.startswith("Manual sync finished:")


EXAMPLE = "xpm_example_changed_records"


def _the_example_reads_what_the_next_night_changed(af: Airflow, seen: set[str]) -> None:
    """The example DAG runs on the next night's events and reads from the change feed exactly what
    XPM changed that day, nothing else."""
    practice = af.srv.sandbox.main
    now = af.srv.sandbox.clock.now()
    edited = sorted(practice.clients)[:2]
    for uuid in edited:
        practice.clients[uuid].phone = "02 5550 0101"
        practice.clients[uuid].modified_at = now - timedelta(minutes=10)
    renamed = next(j for j in practice.jobs.values() if practice.is_current(j))
    renamed.name += " (scope widened)"
    run = af.trigger("xpm_overnight_sync")
    assert af.wait("xpm_overnight_sync", run) == "success"
    _example_reads(af, {"clients": {"changed": sorted(edited)}, "jobs": {"changed": [renamed.number]}}, seen)
    af.api("PATCH", f"/dags/{EXAMPLE}", json={"is_paused": True}).raise_for_status()


def _example_reads(af: Airflow, expected: dict[str, dict[str, list[str]]], seen: set[str]) -> set[str]:
    """Wait until the example's runs not in `seen` have read `expected` between them (each entity's
    event may start a run of its own, or both one), assert it, and return every run id now seen."""
    read: dict[str, dict[str, list[str]]] = {}
    runs: set[str] = set()
    deadline = time.monotonic() + 180
    while read != expected and time.monotonic() < deadline:
        time.sleep(2)
        read, runs = {}, set()
        for example_run in af.api("GET", f"/dags/{EXAMPLE}/dagRuns").json()["dag_runs"]:
            if example_run["dag_run_id"] in seen or example_run["state"] != "success":
                continue
            runs.add(example_run["dag_run_id"])
            path = f"/dags/{EXAMPLE}/dagRuns/{example_run['dag_run_id']}/taskInstances/changed_records/xcomEntries"
            value = af.api("GET", f"{path}/return_value").json()["value"]
            for entity, kinds in (json.loads(value) if isinstance(value, str) else value).items():
                for kind, keys in kinds.items():
                    read.setdefault(entity, {}).setdefault(kind, []).extend(keys)
        read = {e: {k: sorted(keys) for k, keys in kinds.items()} for e, kinds in read.items()}
    assert read == expected
    return seen | runs
