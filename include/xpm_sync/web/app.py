"""The XPM integration page: a FastAPI app the Airflow API server mounts at /xpm (see plugins/).

Server-rendered HTML with a little JavaScript. The page shows the connection, what has synced and
Practice Activity; it connects and reconnects XPM through Xero's sign-in with its callback on this
server and changes the practice's settings. Manual syncs, pushes, retries and job changes go through
the JSON API mounted beside it at /xpm/api/v1 (`xpm_sync.web.api`), the one path other systems use,
always under the signed-in Airflow user.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from xpm_sync import catalog, changes, config, display, practices, settings
from xpm_sync.errors import XpmError
from xpm_sync.oauth import flow
from xpm_sync.status import read as read_status
from xpm_sync.store.engine import get_engine, session_scope
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync import after_connect, plan
from xpm_sync.web import api, views
from xpm_sync.web.access import NotSignedIn, Visitor, check_post, csrf_token, login_url, visitor
from xpm_sync.web.practice_paths import PracticePaths, base_root, practice_root, url_for

TEMPLATES = Environment(loader=PackageLoader("xpm_sync.web", "templates"), autoescape=select_autoescape())
NOTICES = {
    "connected": "XPM is connected.",
    "reconnected": "XPM is reconnected.",
    "connected-no-sync": "XPM is connected, but Airflow did not start the full sync: Practice Activity says why.",
    "reconnected-no-sync": "XPM is reconnected, but Airflow did not start the full sync: Practice Activity says why.",
    "also-refused": "XPM is connected here; a further practice chosen with it was not: its Practice Activity says why.",
    "disconnected": "XPM was disconnected: xpm-sync no longer calls it.",
    "settings": "The setting was saved.",
    "sync-started": "The sync has started.",
    "push-started": "The push to XPM has started.",
    "retried": "The change is back in line for the next push.",
    "change-recorded": "The change was recorded here; it goes to XPM with the next push (Changes waiting for XPM).",
    "state-code": "The job state's code was saved.",
    "test-email": "The test email was tried: \u201cAlert email\u201d below says what happened.",
}
# What a started run's notice says once the run has ended (the page reloads when it does).
ENDED = {
    "sync-started": {
        "success": "The sync has finished.",
        "failed": "The sync ended failed: Practice Activity says why.",
    },
    "push-started": {
        "success": "The push to XPM has finished.",
        "failed": "The push to XPM ended failed: Practice Activity says why.",
    },
}
# Airflow's own rule for a run id given by a person ([scheduler] allowed_run_id_pattern's default).
RUN_ID = re.compile(r"[A-Za-z0-9_.~:+-]{1,250}")
LAST_PAGE = 10_000


def page_number(raw: str | None) -> int:
    """The Practice Activity page asked for: a plain number from 1 to 10,000, else the first."""
    if raw and raw.isascii() and raw.isdigit() and len(raw) <= len(str(LAST_PAGE)):
        return min(max(int(raw), 1), LAST_PAGE)
    return 1


def budget_of(raw: str | None) -> int | None:
    """A what-if budget from the address: a plain number of calls from 1 to 100,000, else none."""
    if raw and raw.isascii() and raw.isdigit() and len(raw) <= 6:
        return min(max(int(raw), 1), 100_000)
    return None


def run_id_of(raw: str | None) -> str | None:
    """A run id from the address, if it is one Airflow could have made; else none (not an error)."""
    return raw if raw and RUN_ID.fullmatch(raw) else None


def _airflow_root() -> str:
    """Where Airflow's own UI lives, for links to runs (the page is shown inside it)."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def _render(name: str, request: Request, who: Visitor, status: int = 200, **context: Any) -> HTMLResponse:
    page = TEMPLATES.get_template(name).render(
        request=request,
        who=who,
        csrf=csrf_token(who),
        url=lambda route, **params: url_for(request, route, **params),
        api=url_for(request, "home").rstrip("/") + api.PREFIX,
        airflow=_airflow_root(),
        **context,
    )
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _callback_url(request: Request) -> str:
    """The one address Xero's sign-in returns to, whichever practice it is for."""
    return str(request.url.replace(path=base_root(request) + "/oauth/callback", query=""))


def _xpm_settings() -> Any:
    from xpm_sync.oauth.connection_config import load

    return load(config.get("conn_id"))


def create_app() -> FastAPI:
    app = FastAPI(title="XPM integration", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(PracticePaths)
    app.mount("/static", StaticFiles(packages=[("xpm_sync.web", "static")]), name="static")
    app.mount(api.PREFIX, api.create_api(), name="api")

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(login_url(request), 303)
        return JSONResponse({"detail": "Sign in to Airflow first."}, 401)

    async def home_page(request: Request, who: Visitor, *, error: str | None = None, status: int = 200) -> Response:
        params = request.query_params
        number = page_number(params.get("page"))
        engine = get_engine()
        data = await run_in_threadpool(views.page, engine)
        overview = await run_in_threadpool(views.overview, engine) if practices.several() else []
        what_if = budget_of(params.get("budget"))
        tonight = await run_in_threadpool(lambda: plan.tonight(engine, what_if_budget=what_if))
        entries, older = await run_in_threadpool(
            views.activity_entries, engine, params.get("status"), number, who.airflow()
        )
        run_id = run_id_of(params.get("run_id"))
        own_dags = {catalog.dag_id(kind) for kind in catalog.DAG_KINDS}  # this practice's only
        run_dag = str(params.get("dag")) if params.get("dag") in own_dags else catalog.dag_id("manual_sync")
        key = params.get("notice", "")
        notice = NOTICES.get(key)
        if run_id and key in ENDED:
            ended = await run_in_threadpool(views.run_state, who.airflow(), run_dag, run_id)
            notice = ENDED[key].get(ended or "", notice)
        return _render(
            "page.html",
            request,
            who,
            status=status,
            page=data,
            egress=views.egress_line(data.connection),
            plan=tonight,
            plan_lines=plan.backlog_lines(tonight),
            size=display.size,
            entries=entries,
            older=older,
            number=number,
            status_filter=params.get("status") or "",
            statuses=[s.value for s in ActivityStatus],
            notice=notice,
            run_id=run_id,
            run_dag=run_dag,
            switch_warning=flow.WRONG_PRACTICE_WARNING,
            error=error,
            callback_url=_callback_url(request),
            invoices_refused=settings.INVOICES_REFUSED,
            labels=settings.LABELS,
            dag_id=catalog.dag_id("manual_sync"),
            push_dag=catalog.dag_id("push"),
            practice=practices.current(),
            overview=[{**row, "url": practice_root(request, row["practice"]) + "/"} for row in overview],
        )

    @app.get("/", response_class=HTMLResponse, name="home")
    async def home(request: Request) -> Response:
        who = await visitor(request)
        who.require("read")
        return await home_page(request, who)

    async def posted(request: Request, right: str) -> tuple[Visitor, dict[str, str]]:
        who = await visitor(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        check_post(request, who, form.get("csrf"))
        who.require(right)
        return who, form

    def back(request: Request, notice: str, **extra: str) -> RedirectResponse:
        query = urlencode({"notice": notice, **extra})
        return RedirectResponse(f"{url_for(request, 'home')}?{query}", 303)

    def back_in_airflow(request: Request, notice: str, **extra: str) -> RedirectResponse:
        """After Xero's sign-in, which had the whole window: back to the page inside Airflow's frame.
        Airflow's plugin route /plugin/<view>/<path> opens <path> in the view's frame."""
        query = urlencode({"notice": notice, **extra})
        home_path = practice_root(request, practices.current()) + "/"  # the callback's own path names no practice
        return RedirectResponse(f"{_airflow_root()}/plugin/xpm{home_path}?{query}", 303)

    @app.get("/decisions/{decision_id}.csv", name="decision_csv")
    async def decision_csv(request: Request, decision_id: int) -> Response:
        """The rows a held-back removal would mark removed, for the person deciding."""
        from xpm_sync import decisions

        who = await visitor(request)
        who.require("read")
        tenant = (await run_in_threadpool(read_status, get_engine())).tenant_id
        found = await run_in_threadpool(decisions.as_csv, get_engine(), decision_id, tenant or "")
        if found is None:
            return JSONResponse({"detail": f"There is no held-back list {decision_id} for this practice."}, 404)
        name, text = found
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    @app.post("/connect", name="connect")
    async def connect(request: Request) -> Response:
        who, form = await posted(request, "admin")
        switching = form.get("switch_practice") == "on"
        if switching and form.get("confirm") != "switch":
            error = "Switching to another practice needs confirming: tick the box that says you mean it."
            if _wants_json(request):
                return JSONResponse({"detail": error}, 400)
            return await home_page(request, who, error=error, status=400)
        try:
            url = await run_in_threadpool(
                flow.start,
                _xpm_settings(),
                get_engine(),
                requested_by=who.name,
                switch_practice=switching,
                redirect_uri=_callback_url(request),
            )
        except XpmError as exc:
            if _wants_json(request):
                return JSONResponse({"detail": str(exc)}, 400)
            return await home_page(request, who, error=str(exc), status=400)
        # The page's script takes the whole window to Xero (Airflow's frame may not); a plain form is redirected.
        return JSONResponse({"go": url}) if _wants_json(request) else RedirectResponse(url, 303)

    async def connected(request: Request, who: Visitor, result: flow.ConnectResult) -> Response:
        """After a sign-in: the full sync the connect calls for (after_connect decides, as for the CLI),
        for this practice and each further one the sign-in connected."""
        notice = "reconnected" if result.reconnected else "connected"
        for conn_id, joined in result.also:
            # Connected either way; that practice's Practice Activity says why when no sync started.
            with practices.using(practices.for_connection(conn_id)), contextlib.suppress(XpmError):
                await run_in_threadpool(after_connect.start_sync, joined, who.airflow(), user=who.name)
        if result.also_refused:
            return back_in_airflow(request, "also-refused")
        try:
            run_id = await run_in_threadpool(lambda: after_connect.start_sync(result, who.airflow(), user=who.name))
        except XpmError:  # connected all the same; Practice Activity says why no sync started
            return back_in_airflow(request, f"{notice}-no-sync")
        return back_in_airflow(request, notice, **({"run_id": run_id} if run_id else {}))

    @app.get("/oauth/callback", name="oauth_callback")
    async def oauth_callback(request: Request) -> Response:
        """Xero's sign-in comes back here for every practice: the sign-in it completes names which."""
        state = request.query_params.get("state", "")
        conn_id = await run_in_threadpool(flow.practice_of_attempt, get_engine(), state) if state else None
        if conn_id is None or conn_id == config.get("conn_id"):
            return await completed_sign_in(request)
        with practices.using(practices.for_connection(conn_id)):
            return await completed_sign_in(request)

    async def completed_sign_in(request: Request) -> Response:
        who = await visitor(request)
        who.require("admin")
        try:
            result = await run_in_threadpool(
                lambda: flow.complete(
                    _xpm_settings(), get_engine(), str(request.url), acting_user=who.name, hold_for_choice=True
                )
            )
        except flow.ChoiceNeeded as choice:
            pinned = (await run_in_threadpool(read_status, get_engine())).tenant_id
            others = [p for p in await run_in_threadpool(practices.all_practices) if p.conn_id != config.get("conn_id")]
            return _render(
                "chooser.html", request, who, state=choice.state, practices=choice.practices,
                warning=flow.WRONG_PRACTICE_WARNING, pinned=pinned, others=others, practice=practices.current(),
            )  # fmt: skip
        except XpmError as exc:
            return await home_page(request, who, error=str(exc), status=400)
        return await connected(request, who, result)

    @app.post("/oauth/choose", name="oauth_choose")
    async def oauth_choose(request: Request) -> Response:
        who, form = await posted(request, "admin")
        try:
            result = await run_in_threadpool(
                lambda: flow.choose(
                    _xpm_settings(),
                    get_engine(),
                    form.get("state", ""),
                    form.get("tenant_id", ""),
                    acting_user=who.name,
                    also={key[5:]: value for key, value in form.items() if key.startswith("also:") and value},
                )
            )
        except XpmError as exc:
            return await home_page(request, who, error=str(exc), status=400)
        return await connected(request, who, result)

    @app.post("/disconnect", name="disconnect")
    async def disconnect(request: Request) -> Response:
        who, form = await posted(request, "admin")
        if form.get("confirm") != "disconnect":
            return await home_page(request, who, error="Disconnecting needs confirming.", status=400)
        await run_in_threadpool(_disconnect, who)
        return back(request, "disconnected")

    @app.post("/settings", name="settings")
    async def change_setting(request: Request) -> Response:
        who, form = await posted(request, "admin")
        try:
            await run_in_threadpool(_change_setting, form.get("name", ""), form.get("value", ""), who.name)
        except settings.SettingRefused as exc:
            return await home_page(request, who, error=str(exc), status=400)
        return back(request, "settings")

    @app.post("/alerts/test", name="test_email")
    async def test_email(request: Request) -> Response:
        who, _form = await posted(request, "admin")
        from xpm_sync import alerts

        await run_in_threadpool(alerts.send_test_email, who.name)  # its outcome is in Practice Activity
        return back(request, "test-email")

    @app.post("/job-state-codes", name="state_code")
    async def state_code(request: Request) -> Response:
        who, form = await posted(request, "admin")
        try:
            await run_in_threadpool(
                changes.set_state_code, get_engine(), form.get("name", ""), form.get("code", ""), actor=who.name
            )
        except XpmError as exc:
            return await home_page(request, who, error=str(exc), status=400)
        return back(request, "state-code")

    return app


def _disconnect(who: Visitor) -> None:
    from xpm_sync.oauth.tokens import TokenStore

    xpm_settings, engine = _xpm_settings(), get_engine()
    try:
        access: str | None = TokenStore(xpm_settings, engine).access_token()
    except XpmError:
        access = None
    flow.disconnect(xpm_settings, engine, access_token=access, requested_by=who.name)


def _change_setting(name: str, value: str, actor: str) -> None:
    with session_scope() as session:
        settings.change(session, name, value, actor=actor)
