"""XpmHook: the one door to Xero Practice Manager."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import date
from functools import cached_property
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook
from requests.auth import AuthBase

from xpm_sync import config, ids
from xpm_sync.api import fingerprint, records
from xpm_sync.api.client import XpmApi
from xpm_sync.api.usage import Usage
from xpm_sync.api.xml import iter_items, read_status
from xpm_sync.errors import XpmConfigError, XpmError
from xpm_sync.oauth import connection_config as xpm_settings
from xpm_sync.oauth.tokens import TokenStore
from xpm_sync.store.engine import get_engine

SIDE_DOOR = (
    "XpmHook.{name}() is not available: every call to XPM goes through the hook's own methods (staff(), "
    "clients(), jobs(), set_job_state(), ...), which pace calls to XPM's limits, count them, refresh "
    "the token and never resend a write XPM did not answer."
)


class XpmAuth(AuthBase):
    """Adds the bearer token and the pinned practice to every request, just before it is sent."""

    def __init__(self, tokens: TokenStore, tenant_id: str) -> None:
        self.tokens = tokens
        self.tenant_id = tenant_id

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.tokens.access_token()}"
        request.headers["xero-tenant-id"] = self.tenant_id
        return request


class XpmHook(HttpHook):
    """Talks to XPM through an Airflow connection of type `xpm`.

    The connection holds the Xero app's client id (login) and secret (password); its extras hold
    the scopes, redirect URI, pinned practice and base URLs. Tokens are not kept on the
    connection: Airflow 3 task code cannot write connections, so they live, encrypted, in the
    practice database, and every worker refreshes them through one row lock.
    """

    conn_name_attr = "xpm_conn_id"
    default_conn_name = "xpm_default"
    conn_type = "xpm"
    hook_name = "Xero Practice Manager"

    def __init__(
        self,
        xpm_conn_id: str = default_conn_name,
        *,
        store_url: str | None = None,
        timeout: tuple[float, float] = (10.0, 300.0),
        max_attempts: int = 5,
        backoff: Any = None,
        sleep: Any = time.sleep,
        clock: Any = time.monotonic,
        wall: Any = time.time,
        actor: str | None = None,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="GET", http_conn_id=xpm_conn_id, **kwargs)
        self.xpm_conn_id = xpm_conn_id
        self._store_url = store_url
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._wall = wall  # the time the app's minutes are counted by, the same in every worker
        self._max_rows = config.get_int("max_answer_rows")
        self._actor, self._run_id = actor, run_id

    # --- static connection data, read once --------------------------------------------------

    @cached_property
    def settings(self) -> xpm_settings.XpmSettings:
        return xpm_settings.load(self.xpm_conn_id)

    @cached_property
    def engine(self) -> Any:
        return get_engine(self._store_url)

    @cached_property
    def tokens(self) -> TokenStore:
        # An auth failure's alert names who met it, and the run.
        return TokenStore(
            self.settings,
            self.engine,
            retry_wait=self._backoff,
            timeout=config.get_int("token_timeout_seconds"),
            actor=self._actor,
            run_id=self._run_id,
        )

    @cached_property
    def tenant_id(self) -> str:
        return self.tokens.tenant_id()

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """A session that authenticates each request with a valid token and the pinned practice."""
        session = requests.Session()
        self.base_url = self.settings.api_url
        session.auth = XpmAuth(self.tokens, self.tenant_id)
        session.headers.update({"Accept": "application/xml", "User-Agent": "xpm-sync"})
        if headers:
            session.headers.update(headers)
        return self._configure_session_from_mount_adapters(session)

    @cached_property
    def api(self) -> XpmApi:
        usage = Usage(self.engine, self.tenant_id, sleep=self._sleep, clock=self._clock, wall=self._wall)
        return XpmApi(
            self.get_conn(),
            self.settings.api_url,
            usage,
            refresh=lambda: self.tokens.access_token(force_refresh=True),
            on_auth_failure=self.tokens.mark_needs_reconnect,
            on_scope_missing=self.mark_needs_scope,
            timeout=self._timeout,
            max_attempts=self._max_attempts,
            max_bytes=config.get_int("max_answer_mb") << 20,
            backoff=self._backoff,
            sleep=self._sleep,
        )

    def mark_needs_scope(self, scope: str, why: str) -> bool:
        """XPM refused a call for want of `scope` (or the settings need it): one alert per scope."""
        from xpm_sync import alerts

        return alerts.raise_scope_alert(
            scope, why, engine=self.engine, conn_id=self.settings.conn_id, actor=self.tokens.actor,
            run_id=self.tokens.run_id,
        )  # fmt: skip

    # HttpHook's own request methods would reach XPM around the one client (`api`): no pacing, no
    # call counting, no token refresh, no rule for a write XPM did not answer. They refuse instead.
    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise XpmConfigError(SIDE_DOOR.format(name="run"))

    def run_and_check(self, *args: Any, **kwargs: Any) -> Any:
        raise XpmConfigError(SIDE_DOOR.format(name="run_and_check"))

    def run_with_advanced_retry(self, *args: Any, **kwargs: Any) -> Any:
        raise XpmConfigError(SIDE_DOOR.format(name="run_with_advanced_retry"))

    def flush_usage(self) -> None:
        """Write the call counts this hook holds (they are written in batches, see `Usage`). A
        failed write is logged and its counts kept for the next, never the task's failure."""
        api = self.__dict__.get("api")
        if api is not None:
            with contextlib.suppress(Exception):
                api.usage.flush()

    def test_connection(self) -> tuple[bool, str]:
        """One cheap call to XPM; (ok, a sentence saying what was found)."""
        try:
            categories = list(self.categories())
        except XpmError as exc:
            return False, str(exc)
        row_name = self.practice_name()
        return True, f"Connected to the XPM practice {row_name!r}: {len(categories)} job categories read."

    def practice_name(self) -> str | None:
        from sqlalchemy.orm import Session

        with Session(self.engine) as session:
            row = self.tokens.connection(session)
            return row.tenant_name if row else None

    # --- reads ------------------------------------------------------------------------------

    def _list(
        self, path: str, items: tuple[str, ...], convert: Any, fingerprints: Any = None, **params: Any
    ) -> Iterator[records.Record]:
        """The answer is fetched now, in full; its records are read as the result is iterated.

        With `fingerprints`, records XPM sends unchanged come as markers (`xml.iter_items`), and
        an answer identical to the last one loaded for the same request is not parsed at all."""
        body = self.api.fetch(path, **params)
        if fingerprints is None:
            return self._records(body, path, items, convert)

        def parse() -> Iterator[Any]:
            return self._records(body, path, items, convert, fingerprints=fingerprints)

        return fingerprints.answer(fingerprint.request_key(path, params), body, parse)  # type: ignore[no-any-return]

    def _records(self, body: Any, path: str, items: tuple[str, ...], convert: Any, **kwargs: Any) -> Iterator[Any]:
        with body:
            yield from iter_items(body, items, convert, method=path, max_rows=self._max_rows, **kwargs)

    def _get(self, path: str, item: str, convert: Any) -> records.Record:
        """One detailed record; XPM puts its `<WebUrl>` beside it, not inside."""
        with self.api.fetch(path) as body:
            found = iter_items(body, (item,), convert, method=path, max_rows=1, beside={"WebUrl": "web_url"})
            return next(found)

    def staff(self) -> Iterator[records.Record]:
        return self._list("staff.api/list", ("StaffList", "Staff"), records.staff)

    def categories(self) -> Iterator[records.Record]:
        return self._list("category.api/list", ("Categories", "Category"), records.named)

    def job_states(self) -> Iterator[records.Record]:
        return self._list("jobstate.api/list", ("JobStates", "JobState"), records.named)

    def client_groups(self) -> Iterator[records.Record]:
        return self._list("clientgroup.api/list", ("Groups", "Group"), records.client_group)

    def field_definitions(self) -> Iterator[records.Record]:
        return self._list(
            "customfield.api/definition", ("CustomFieldDefinitions", "CustomFieldDefinition"), records.field_definition
        )

    def clients(
        self, *, detailed: bool = True, modified_since: str | None = None, fingerprints: Any = None
    ) -> Iterator[records.Record]:
        """All clients, or those modified since `modified_since` (`yyyy-MM-ddTHH:mm:ss`, UTC)."""
        params: dict[str, str] = {"detailed": "true" if detailed else "false"}
        if modified_since:
            params["modifiedsince"] = modified_since
        return self._list("client.api/list", ("Clients", "Client"), records.client, fingerprints, **params)

    def client(self, uuid: str) -> records.Record:
        return self._get(f"client.api/get/{ids.in_path(ids.client_uuid(uuid))}", "Client", records.client)

    def current_jobs(self, *, detailed: bool = True, fingerprints: Any = None) -> Iterator[records.Record]:
        detail = "true" if detailed else "false"
        return self._list("job.api/current", ("Jobs", "Job"), records.job, fingerprints, detailed=detail)

    def jobs_created(
        self, start: date, end: date, *, detailed: bool = True, fingerprints: Any = None
    ) -> Iterator[records.Record]:
        """Jobs created from `start` to `end` (XPM allows at most a year per call)."""
        params = {**_window(start, end), "detailed": "true" if detailed else "false"}
        return self._list("job.api/list", ("Jobs", "Job"), records.job, fingerprints, **params)

    def job(self, number: str) -> records.Record:
        return self._get(f"job.api/get/{ids.in_path(ids.job_number(number))}", "Job", records.job)

    def time_entries(self, start: date, end: date) -> Iterator[records.Record]:
        """Time entries dated from `start` to `end` (at most a year a call)."""
        return self._list("time.api/list", ("Times", "Time"), records.time_entry, **_window(start, end))

    def invoices(self, start: date, end: date) -> Iterator[records.Record]:
        """Invoices dated from `start` to `end` (at most a year), detailed: with the jobs they bill."""
        return self._list(
            "invoice.api/list", ("Invoices", "Invoice"), records.invoice, **_window(start, end), detailed="true"
        )

    def current_invoices(self) -> Iterator[records.Record]:
        return self._list("invoice.api/current", ("Invoices", "Invoice"), records.invoice, detailed="true")

    def invoice(self, number: str) -> records.Record:
        return self._get(f"invoice.api/get/{ids.in_path(number)}", "Invoice", records.invoice)

    def invoice_payments(self, number: str) -> list[records.Record]:
        path = f"invoice.api/payments/{ids.in_path(number)}"
        return list(self._list(path, ("Payments", "Payment"), records.payment))

    def quotes(self, start: date, end: date) -> Iterator[records.Record]:
        """Quotes dated from `start` to `end` (at most a year); their totals, not their lines."""
        return self._list("quote.api/list", ("Quotes", "Quote"), records.quote, **_window(start, end))

    def current_quotes(self) -> Iterator[records.Record]:
        return self._list("quote.api/current", ("Quotes", "Quote"), records.quote)

    def quote(self, number: str) -> records.Record:
        return self._get(f"quote.api/get/{ids.in_path(number)}", "Quote", records.quote)

    def job_costs(self, page: int) -> list[records.Record]:
        """One page of every job's costs (from 1, up to 1,000 a page); a page with none is the end."""
        return list(self._list("job.api/costs", ("Costs", "Cost"), records.job_cost, page=str(page)))

    def client_field_values(self, uuid: str) -> list[records.Record]:
        path = f"client.api/get/{ids.in_path(ids.client_uuid(uuid))}/customfield"
        return list(self._list(path, ("CustomFields", "CustomField"), records.field_value))

    def job_field_values(self, number: str) -> list[records.Record]:
        path = f"job.api/get/{ids.in_path(ids.job_number(number))}/customfield"
        return list(self._list(path, ("CustomFields", "CustomField"), records.field_value))

    # --- writes ---------------------------------------------------------------------------------
    # Bodies are XML whose root is the entity; 200 + <Status>ERROR</Status> raises XpmBusinessError.

    def set_job_state(self, number: str, state_code: str) -> None:
        """Move a job to the state whose interface code is `state_code` (XPM takes no state names)."""
        body = _xml("Job", [("ID", ids.job_number(number)), ("State", state_code)])
        with self.api.send_xml("PUT", "job.api/state", body) as answer:
            read_status(answer, method="job.api/state")

    def update_job(self, number: str, fields: list[tuple[str, str | None]]) -> records.Record:
        """Update a job and return it as XPM now holds it. XPM may blank what is left out, so `fields`
        must carry every field of the job's current state, with the changes applied."""
        body = _xml("Job", [("ID", ids.job_number(number)), *fields])
        with self.api.send_xml("PUT", "job.api/update", body) as answer:
            return next(iter_items(answer, ("Job",), records.job, method="job.api/update"))

    def set_custom_fields(self, kind: str, key: str, values: list[tuple[str, str, str | None]]) -> None:
        """Set custom fields of a client or job: (field UUID, its ValueElement, the value or None to clear)."""
        checked = ids.client_uuid(key) if kind == "client" else ids.job_number(key)
        path = f"{kind}.api/update/{ids.in_path(checked)}/customfield"
        items = "".join(_xml("CustomField", [("UUID", uuid), (element, value)]) for uuid, element, value in values)
        with self.api.send_xml("PUT", path, f"<CustomFields>{items}</CustomFields>") as answer:
            read_status(answer, method=path)


def _window(start: date, end: date) -> dict[str, str]:
    return {"from": start.strftime("%Y%m%d"), "to": end.strftime("%Y%m%d")}


def _xml(root: str, fields: list[tuple[str, str | None]]) -> str:
    """`<Root><Name>value</Name>...</Root>`, escaped; None is sent as an empty element."""
    from xml.sax.saxutils import escape

    inner = "".join(f"<{name}>{escape(value or '')}</{name}>" for name, value in fields)
    return f"<{root}>{inner}</{root}>"
