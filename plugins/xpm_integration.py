"""The XPM integration page: "Xero Practice Manager" in Airflow's navigation, served by the API server
at /xpm. The page itself lives in the xpm-sync package (`xpm_sync.web`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from xpm_sync import run_notes
from xpm_sync.web.app import create_app

_ROOT = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


class XpmIntegrationPlugin(AirflowPlugin):
    name = "xpm_integration"
    # A failed run of an XPM DAG gets its reason as the run's note (written after the scheduler's
    # transaction, from a thread of its own: see run_notes).
    listeners = [run_notes]
    fastapi_apps = [{"app": create_app(), "url_prefix": "/xpm", "name": "XPM integration"}]
    external_views = [
        {
            "name": "Xero Practice Manager",
            "href": f"{_ROOT}/xpm/",
            "url_route": "xpm",
            "destination": "nav",
            "icon": f"{_ROOT}/xpm/static/xpm.svg",
        }
    ]
