"""Telling Airflow from xpm-sync itself: starting a DAG run (after a reconnect, or from the XPM page),
reading a run's state, and saying the outbox changed so that `xpm_push` runs now.

Only Airflow's supported interfaces are used, so that an Airflow upgrade does not break the page:

- In the API server (the XPM page and its JSON API), `RestApi`: Airflow's public REST API
  (`/api/v2`), called as the signed-in person with the token their request carried. Airflow's own
  rules therefore decide what they may start, and Airflow records them as the run's trigger.
- On the command line, where nobody is signed in, `CommandLine`: Airflow's own command line
  (`airflow dags details|unpause|trigger`), which works wherever Airflow's database is reachable.

Tasks use the Task SDK directly (`ti.get_dr_count`, outlet events); nothing here runs in a task.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from typing import Any, Protocol
from urllib.parse import quote

import requests

from xpm_sync import catalog, config
from xpm_sync.errors import XpmConfigError

log = logging.getLogger(__name__)

PAUSED = (
    "{dag_id} is paused in Airflow, so nothing was started: unpause it (Dags > {dag_id}) "
    "when changes may go to XPM again."
)
NOT_LOADED = (
    "Airflow has not loaded the DAG {dag_id} yet (is the dag-processor running on this installation?), "
    "so it could not be started."
)
TOLD, PUSH_PAUSED, NOT_TOLD = "told", "paused", "not told"
TIMEOUT = 15  # seconds: Airflow answering itself (a connection gets 3), or its command line starting


class AirflowUnreachable(XpmConfigError):
    """Airflow's API or command line did not answer (as opposed to answering no)."""


class Airflow(Protocol):
    """What xpm-sync asks of Airflow, whichever way it is reached."""

    def paused(self, dag_id: str) -> bool | None:
        """Whether `dag_id` is paused; None when Airflow does not know the DAG."""

    def unpause(self, dag_id: str) -> None: ...

    def trigger(self, dag_id: str, conf: dict[str, Any], note: str) -> str:
        """Queue a run now and return its run id."""

    def tell_outbox(self, source: str) -> None:
        """Say the outbox changed (xpm_push is known and unpaused)."""


def api_url() -> str:
    """Where the API server reaches Airflow's REST API: `[xpm_sync] airflow_api_url`, else Airflow's
    own `[api] base_url` (which Airflow's workers already use to reach it), else loopback on `[api] port`."""
    chosen = config.get("airflow_api_url").strip() or (config.airflow_option("api", "base_url", None) or "").strip()
    if not chosen:
        chosen = f"http://127.0.0.1:{config.airflow_option('api', 'port', '8080')}"
    return chosen.rstrip("/")


class RestApi:
    """Airflow's public REST API, as the signed-in person (their bearer token, never logged)."""

    def __init__(self, token: str, *, base: str | None = None) -> None:
        self._token = token
        self.base = (base or api_url()).rstrip("/")

    def __repr__(self) -> str:  # the token stays out of every log and traceback
        return f"RestApi({self.base!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base}/api/v2/{path}"
        try:
            return requests.request(
                method, url, headers={"Authorization": f"Bearer {self._token}"}, timeout=(3, TIMEOUT), **kwargs
            )
        except requests.RequestException as exc:
            raise AirflowUnreachable(
                f"Airflow's API at {self.base} did not answer ({type(exc).__name__}); if the API server cannot "
                "reach itself there, set [xpm_sync] airflow_api_url to an address it can (e.g. http://127.0.0.1:8080)."
            ) from None

    def _ok(self, reply: requests.Response, doing: str) -> dict[str, Any]:
        if reply.status_code in (401, 403):
            raise XpmConfigError(f"Airflow refused to {doing}: your Airflow role may not ({reply.status_code}).")
        if reply.status_code >= 400:
            raise XpmConfigError(f"Airflow did not {doing}: {_detail(reply)}")
        try:
            body = reply.json()
        except ValueError:  # not Airflow answering (a proxy's page, say)
            raise AirflowUnreachable(f"{self.base} did not answer as Airflow's API does (asked to {doing}).") from None
        if not isinstance(body, dict):
            raise AirflowUnreachable(f"{self.base} did not answer as Airflow's API does (asked to {doing}).")
        return body

    def paused(self, dag_id: str) -> bool | None:
        reply = self._call("GET", f"dags/{quote(dag_id, safe='')}")
        if reply.status_code == 404:
            return None
        return bool(_field(self._ok(reply, f"read {dag_id}"), "is_paused"))

    def unpause(self, dag_id: str) -> None:
        reply = self._call("PATCH", f"dags/{quote(dag_id, safe='')}", json={"is_paused": False})
        self._ok(reply, f"unpause {dag_id}")

    def trigger(self, dag_id: str, conf: dict[str, Any], note: str) -> str:
        body = {"logical_date": None, "conf": conf, "note": note}
        reply = self._call("POST", f"dags/{quote(dag_id, safe='')}/dagRuns", json=body)
        return str(_field(self._ok(reply, f"start {dag_id}"), "dag_run_id"))

    def tell_outbox(self, source: str) -> None:
        """An event on the outbox Asset (xpm_push is scheduled on it). Posting asset events is an
        operator's right in Airflow; for a role that may only start runs, a run of xpm_push instead."""
        outbox = catalog.asset_uri("outbox")
        reply = self._call("GET", "assets", params={"uri_pattern": outbox, "limit": 100})
        found = [a for a in self._ok(reply, "find the outbox asset").get("assets", []) if a.get("uri") == outbox]
        if found:
            event = {"asset_id": found[0]["id"], "extra": {"from": source}}
            reply = self._call("POST", "assets/events", json=event)
            if reply.status_code != 403:
                self._ok(reply, "record the change on the outbox asset")
                return
        self.trigger(catalog.dag_id("push"), {}, f"A change recorded by {source}")

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        reply = self._call("GET", f"dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}")
        if reply.status_code == 404:
            return None
        return str(_field(self._ok(reply, f"read the run {run_id}"), "state"))

    def dags_of(self, run_ids: set[str], dag_ids: set[str] | None = None) -> dict[str, str]:
        """Which XPM DAG each of these runs belongs to, among `dag_ids` when given (runs Airflow does not
        know are left out). Scheduled runs of several practices share their ids: a practice asks about
        its own DAGs only."""
        found: dict[str, str] = {}
        ordered = sorted(run_ids)
        for start in range(0, len(ordered), 20):
            chunk = ordered[start : start + 20]
            params = {"run_id_pattern": "|".join(chunk), "dag_id_prefix_pattern": "xpm_", "limit": 100}
            reply = self._call("GET", "dags/~/dagRuns", params=params)
            for run in self._ok(reply, "list the XPM runs").get("dag_runs", []):
                # The pattern is a substring match: keep the exact ids of XPM DAGs only.
                dag_id = str(run.get("dag_id", ""))
                if dag_ids is not None and dag_id not in dag_ids:
                    continue
                if run.get("dag_run_id") in chunk and dag_id.startswith("xpm_"):
                    found[run["dag_run_id"]] = run["dag_id"]
        return found


def _field(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise AirflowUnreachable(f"Airflow answered without {name!r}: is it the Airflow xpm-sync expects?")
    return body[name]


def _detail(reply: requests.Response) -> str:
    try:
        detail = reply.json().get("detail")
    except ValueError:
        detail = None
    return f"{reply.status_code} {detail if isinstance(detail, str) else reply.reason}"


class CommandLine:
    """Airflow's own command line, for `xpm-sync` on the Airflow host (nobody is signed in there)."""

    def _airflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            command = [sys.executable, "-m", "airflow", *args]  # our own arguments, no shell
            return subprocess.run(  # noqa: S603
                command,
                capture_output=True,
                text=True,
                timeout=TIMEOUT * 4,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AirflowUnreachable(f"Airflow's command line did not answer ({type(exc).__name__}).") from None

    def paused(self, dag_id: str) -> bool | None:
        done = self._airflow("dags", "details", dag_id, "--output", "json")
        if done.returncode != 0:
            if "does not exist" in done.stdout + done.stderr:
                return None
            said = _last_line(done)
            raise AirflowUnreachable(f"Airflow's database could not be used from here (`airflow dags details`: {said})")
        return str(_field(_json_rows(done.stdout)[0], "is_paused")).lower() == "true"  # printed as text

    def _done(self, *args: str) -> str:
        """Run `airflow <args>`; its output, or an error naming the command and what it said."""
        done = self._airflow(*args)
        if done.returncode != 0:
            raise XpmConfigError(f"`airflow {' '.join(args[:3])}` failed: {_last_line(done)}")
        return done.stdout

    def unpause(self, dag_id: str) -> None:
        self._done("dags", "unpause", dag_id, "--yes")

    def trigger(self, dag_id: str, conf: dict[str, Any], note: str) -> str:
        # Airflow's command line takes no note; the Practice Activity entry says the same.
        printed = self._done("dags", "trigger", dag_id, "--conf", json.dumps(conf), "--output", "json")
        return str(_field(_json_rows(printed)[0], "dag_run_id"))

    def tell_outbox(self, source: str) -> None:
        # The command line posts no asset events: a run of xpm_push now does the same.
        self.trigger(catalog.dag_id("push"), {}, f"A change recorded by {source}")

    def set_pool(self, name: str, slots: int, description: str) -> None:
        """Create the pool, or give it these slots (deferred tasks hold none)."""
        self._done("pools", "set", name, str(slots), description)


def _json_rows(text: str) -> list[dict[str, Any]]:
    """The JSON list `--output json` prints on a line of its own, among Airflow's log lines."""
    for line in reversed(text.splitlines()):
        if line.startswith("[{"):
            try:
                rows = json.loads(line)
            except ValueError:
                continue
            if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                return rows
    raise AirflowUnreachable("Airflow's command line did not answer with what was asked for.")


_LOGGED_ERROR = re.compile(r"\[(?:error|critical)\s*\]\s*(.*?)(?:\s+\[[\w.]+\]\s+loc=\S+)?$")
_RAISED = re.compile(r"^(?:[\w.]+(?:Error|Exception|NotFound)): .+")


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    """What Airflow's command line said went wrong: its last logged error, else the exception it
    ended with, else its last line."""
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    logged = [m.group(1) for m in map(_LOGGED_ERROR.search, lines) if m]
    raised = [line for line in lines if _RAISED.match(line)]
    said = (raised or logged or lines or [f"exit {done.returncode}"])[-1]
    return said[:300]


def start(airflow: Airflow, dag_id: str, conf: dict[str, Any], *, note: str, unpause: bool = True) -> str:
    """Queue a run of `dag_id` with `conf` and a note; return the run id.

    A paused DAG is unpaused when `unpause` (a manual sync asked for by a person), else refused: a
    person paused it on purpose (pushing to XPM), and a run queued on a paused DAG never starts.
    """
    paused = airflow.paused(dag_id)
    if paused is None:
        raise XpmConfigError(NOT_LOADED.format(dag_id=dag_id))
    if paused:
        if not unpause:
            raise XpmConfigError(PAUSED.format(dag_id=dag_id))
        airflow.unpause(dag_id)
    return airflow.trigger(dag_id, conf, note)


def notify_push(airflow: Airflow, source: str = "xpm-sync") -> str:
    """Tell Airflow the outbox changed, so `xpm_push` runs now rather than at its next quarter hour.

    Returns TOLD when xpm_push will run now, PUSH_PAUSED when xpm_push is paused (nothing is sent
    until it is unpaused; the change waits in the outbox), NOT_TOLD when Airflow could not be told
    (the schedule picks the change up).
    """
    try:
        paused = airflow.paused(catalog.dag_id("push"))
        if paused is None:
            return NOT_TOLD
        if paused:
            return PUSH_PAUSED
        airflow.tell_outbox(source)
        return TOLD
    except XpmConfigError as exc:  # refused or out of reach: the schedule picks it up
        log.info("Airflow was not told about the change (%s); xpm_push picks it up on schedule", exc)
        return NOT_TOLD
