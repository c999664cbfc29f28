"""What a connect starts: one decision for the XPM page and `xpm-sync connect`."""

from __future__ import annotations

import pytest

from xpm_sync import catalog
from xpm_sync.oauth.flow import ConnectResult
from xpm_sync.sync.after_connect import entities_to_sync


def _result(*, reconnected: bool, switched: bool = False, was_broken: bool = False) -> ConnectResult:
    return ConnectResult("tenant", "Harbour View", "Ada Admin", reconnected, switched, was_broken)


@pytest.mark.parametrize(
    ("result", "entities"),
    [
        pytest.param(_result(reconnected=False), catalog.ALL, id="first connect: everything"),
        pytest.param(_result(reconnected=False, switched=True), catalog.ALL, id="another practice: everything"),
        pytest.param(_result(reconnected=True, was_broken=True), catalog.AFTER_RECONNECT, id="after an outage"),
        pytest.param(_result(reconnected=True), (), id="a working connection: nothing"),
    ],
)
def test_what_a_connect_syncs(result: ConnectResult, entities: tuple[str, ...]):
    assert entities_to_sync(result) == entities


def test_after_an_outage_clients_jobs_staff_tax_returns_and_custom_fields_are_read():
    assert set(catalog.AFTER_RECONNECT) == {
        "staff", "custom_field_definitions", "clients", "jobs", "client_custom_fields", "job_custom_fields",
        "tax_returns",
    }  # fmt: skip
