from __future__ import annotations

import pytest
from airflow.sdk import Connection

from xpm_sync.errors import XpmConfigError, XpmLegacyConnectionError
from xpm_sync.oauth.connection_config import XpmSettings


def _conn(**kwargs):
    base = {"conn_id": "xpm_default", "conn_type": "xpm", "login": "client-id", "password": "client-secret"}
    return Connection(**{**base, **kwargs})


def test_defaults_point_at_xero():
    s = XpmSettings.from_connection(_conn())
    assert s.token_url == "https://identity.xero.com/connect/token"
    assert s.api_url == "https://api.xero.com/practicemanager/3.1/"
    assert s.scopes is None  # chosen from the scope style and the practice's settings
    assert s.scope_style == "least"
    assert s.is_xero


def test_the_secret_is_not_in_the_repr():
    assert "client-secret" not in repr(XpmSettings.from_connection(_conn()))


@pytest.mark.parametrize(
    "conn",
    [
        pytest.param({"extra": '{"apiKey": "K", "accountKey": "A"}'}, id="api-key-extras"),
        pytest.param({"extra": '{"account_key": "A"}'}, id="account-key-snake"),
        pytest.param({"host": "https://api.workflowmax.com"}, id="workflowmax-host"),
    ],
)
def test_a_legacy_api_key_connection_is_refused_with_the_way_to_oauth(conn):
    with pytest.raises(XpmLegacyConnectionError) as caught:
        XpmSettings.from_connection(_conn(**conn))
    message = str(caught.value)
    assert "switched that connection method off in 2020" in message
    assert "xpm-sync connect" in message
    assert "Authorise 3rd Party Full Access" in message


def test_a_connection_without_the_client_is_refused():
    with pytest.raises(XpmConfigError, match="client id"):
        XpmSettings.from_connection(_conn(password=None))
