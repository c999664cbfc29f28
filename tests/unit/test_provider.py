from __future__ import annotations

from xpm_sync.provider import get_provider_info


def test_the_xpm_connection_type_is_registered_with_airflow():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "xpm-sync" in ProvidersManager().providers
    hook = ProvidersManagerTaskRuntime().hooks["xpm"]
    assert hook is not None
    assert hook.hook_class_name == "xpm_sync.hooks.xpm.XpmHook"
    assert hook.connection_id_attribute_name == "xpm_conn_id"
    assert hook.hook_name == "Xero Practice Manager"


def test_the_connection_form_relabels_login_and_password_and_offers_the_xpm_fields():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    behaviour = pm.field_behaviours["xpm"]
    assert behaviour["relabeling"] == {"login": "Client ID", "password": "Client secret"}
    widgets = {name for name in pm.connection_form_widgets if name.startswith("extra__xpm__")}
    assert widgets == {
        f"extra__xpm__{f}"
        for f in (
            "scope_style",
            "scopes",
            "redirect_uri",
            "tenant_id",
            "identity_url",
            "authorize_url",
            "connections_url",
            "api_url",
        )
    }


def test_base_urls_default_to_xeros_real_services():
    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    assert fields["identity_url"]["schema"]["default"] == "https://identity.xero.com"
    assert fields["api_url"]["schema"]["default"] == "https://api.xero.com/practicemanager/3.1/"
    assert fields["connections_url"]["schema"]["default"] == "https://api.xero.com/connections"
