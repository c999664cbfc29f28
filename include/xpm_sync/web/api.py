"""xpm-sync's JSON API for the practice's other systems, served at /xpm/api/v1 (the XPM page uses it too).

Authentication is Airflow's own: a bearer token from Airflow's `/auth/token`, as for Airflow's REST
API (or the signed-in browser's session, whose writes must also carry the page's token in
`X-XPM-CSRF`). Authorization follows the XPM page's roles: reading needs read access to the XPM DAGs,
writing needs to start runs of `xpm_manual_sync`. A write sent with an `Idempotency-Key` header is
carried out once: the same request sent again gets the first answer, and records nothing.
Errors are problem documents (RFC 9457) whose `detail` says what to do.

With several practices on the deployment, `/xpm/api/v1/...` is the first practice's and
`/xpm/practices/<name>/api/v1/...` another's (the same paths below it); each answers with its own
practice's rows only, and authorization asks for that practice's DAGs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from xpm_sync import activity, airflow_runs, catalog, changes, config, ids, settings
from xpm_sync.change_values import ChangeRefused, text_of
from xpm_sync.errors import XpmError
from xpm_sync.status import read as read_status
from xpm_sync.store import feed
from xpm_sync.store import models as m
from xpm_sync.store.engine import get_engine, session_scope, writing
from xpm_sync.store.locks import practice_tenant
from xpm_sync.store.models import ActivityStatus
from xpm_sync.sync import policy
from xpm_sync.web.access import NotSignedIn, Visitor, check_post, forbidden, visitor

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
KEPT = timedelta(hours=24)  # how long an Idempotency-Key's answer is kept
CSRF_HEADER = "X-XPM-CSRF"
REPLAYED = "Idempotent-Replayed"


class Problem(Exception):
    """An answer that is not what was asked for: a problem document with a sentence to act on."""

    def __init__(self, status: int, title: str, detail: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []

    def response(self, instance: str) -> JSONResponse:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        body.update(detail=self.detail, instance=instance)
        if self.errors:
            body["errors"] = self.errors
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, self.status, media_type=PROBLEM, headers=headers)


def refused(exc: ChangeRefused) -> Problem:
    """A refused change: 422 naming the value at fault, or 409 when the practice's settings or state refuse it."""
    if exc.field:
        return Problem(422, "The change is not valid", str(exc), errors=[{"field": exc.field, "message": str(exc)}])
    return Problem(409, "The change was refused", str(exc))


# --- what the API answers -----------------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionStatus(Out):
    status: Literal["connected", "needs_reconnect", "disconnected", "not connected"]
    practice: str | None = None
    tenant_id: str | None = None
    connected_by: str | None = None
    connected_at: str | None = Field(None, description="When, in the practice's words (e.g. 3 Dec 2026 09:12)")
    last_refresh_at: str | None = None
    reason: str | None = Field(None, description="Why XPM needs to reconnect, while it does")
    calls_today: int = 0
    calls_left_today: int | None = None
    custom_fields: str | None = Field(None, description="How far the stored custom field values reach")


class ActivityEntry(Out):
    id: int
    occurred_at: datetime
    status: str
    category: str
    message: str
    actor: str | None
    run_id: str | None


class ActivityPage(Out):
    entries: list[ActivityEntry]
    page: int
    per_page: int
    more: bool = Field(description="Whether an older page exists")


class FeedRow(Out):
    id: int = Field(description="The feed's order; pass the last one read as `after_id` for the next page")
    entity: str = Field(description="The entity whose sync wrote it (its Asset is xpm://practice/<entity>)")
    table: str = Field(description="The table of the row (docs/schema.md)")
    key: str = Field(description="The row's key: XPM's UUID or number; a composite key's parts joined with '/'")
    kind: Literal["inserted", "changed", "removed"]
    run_id: str | None = Field(description="The Airflow run whose load wrote it (cli-<user>-<pid>: `xpm-sync sync`)")
    changed_at: datetime


class FeedPage(Out):
    rows: list[FeedRow]
    after_id: int = Field(description="Where the next page starts: the last id here, else the one asked for")
    more: bool = Field(description="Whether more rows follow at once")


class FieldChange(Out):
    name: str
    before: str | None
    after: str | None
    xpm: str | None = Field(None, description="XPM's value, when a push found it changed there meanwhile")


class Change(Out):
    id: int
    record: Literal["job", "client_custom_field", "job_custom_field"]
    key: str = Field(description="The job number or client UUID")
    operation: str
    fields: list[FieldChange]
    status: Literal["pending", "sending", "verify", "done", "failed", "conflict", "discarded"]
    created_at: datetime
    created_by: str | None
    error: str | None = Field(description="What XPM answered, when it refused the change")


class Submitted(Out):
    change: Change | None = Field(description="The change recorded, or null when the record already held the value")
    message: str
    push: Literal["told", "paused", "not told"] | None = Field(
        description="Whether xpm_push was told to run now (else it runs at its next quarter hour)"
    )


class CustomFieldValue(Out):
    field_uuid: str
    name: str | None
    value: str | None
    editable: bool = Field(description="Whether the practice masters custom fields here (the setting is off)")


class JobSummary(Out):
    job_number: str
    name: str | None
    client_uuid: str | None
    client_name: str | None
    state: str | None
    start_date: date | None
    due_date: date | None
    pending_push: bool = Field(description="A local change to this job waits for XPM")


class Job(JobSummary):
    description: str | None
    budget: Decimal | None
    web_url: str | None
    custom_fields: list[CustomFieldValue]
    changes: list[Change] = Field(description="Its changes not yet in XPM")
    editable: bool = Field(description="Whether jobs are maintained here ('Maintain jobs locally' is on)")


class JobList(Out):
    jobs: list[JobSummary]
    more: bool


class Client(Out):
    uuid: str
    name: str | None
    email: str | None
    phone: str | None
    pending_push: bool
    custom_fields: list[CustomFieldValue]
    changes: list[Change]


class JobState(Out):
    name: str
    code: str | None = Field(description="Its interface code; a state change needs one")


class Run(Out):
    run_id: str
    dag_id: str
    state: str | None
    url: str = Field(description="The run in Airflow's UI")
    entities: list[str] | None = None
    left_out: dict[str, str] = Field(default_factory=dict, description="Entities asked for and not synced, and why")


# --- what the API takes -------------------------------------------------------------------------


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


JobNumber = Annotated[str, Field(pattern=ids.JOB_NUMBER_PATTERN, description=ids.JOB_HELP, examples=["J000309"])]


class JobStateChange(In):
    job_number: JobNumber
    state: str = Field(
        min_length=1, max_length=100, description="One of the practice's job states", examples=["Review"]
    )


class JobUpdate(In):
    job_number: JobNumber
    name: str | None = Field(None, max_length=255, description="The job's new name")
    description: str | None = Field(None, max_length=32_000, description="The job's new description")
    start_date: date | None = Field(None, description="YYYY-MM-DD")
    due_date: date | None = Field(None, description="YYYY-MM-DD")
    budget: Decimal | None = Field(None, max_digits=18, decimal_places=4, description="In the practice's currency")


class CustomFieldChange(In):
    record: Literal["client", "job"] = Field(description="Whose custom field: a client's or a job's")
    key: str = Field(min_length=1, max_length=50, description="The client's UUID or the job's number")
    field: str = Field(min_length=1, max_length=255, description="The custom field's name or UUID")
    value: str | None = Field(None, max_length=32_000, description="null or empty clears it")


class SyncRequest(In):
    entities: list[Literal[catalog.ALL]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(catalog.ALL), min_length=1, description="What to sync; everything by default"
    )
    full: bool = Field(False, description="Read everything again rather than what changed since the last sync")


# --- the app ------------------------------------------------------------------------------------


def _engine() -> Engine:
    return get_engine()


async def _caller(request: Request) -> Visitor:
    try:
        return await visitor(request)
    except NotSignedIn:
        raise Problem(
            401,
            "Not signed in",
            "Sign in to Airflow first: send `Authorization: Bearer <token>` with a token from Airflow's "
            "POST /auth/token (the same token Airflow's REST API takes).",
        ) from None


def _allowed(who: Visitor, what: str) -> None:
    if not {"read": who.may_read, "sync": who.may_sync}[what]:
        raise Problem(403, "Not allowed", forbidden(what))


async def reader(request: Request) -> Visitor:
    who = await _caller(request)
    _allowed(who, "read")
    return who


async def writer(request: Request) -> Visitor:
    """Who writes; a browser session (no bearer token) must also send the page's own token."""
    who = await _caller(request)
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        try:
            check_post(request, who, request.headers.get(CSRF_HEADER))
        except StarletteHTTPException as exc:
            raise Problem(403, "Refused", str(exc.detail)) from None
    _allowed(who, "sync")
    return who


Reader = Annotated[Visitor, Depends(reader)]
Writer = Annotated[Visitor, Depends(writer)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Any unique text (a UUID): sending the same request with it again records nothing twice",
    ),
]


def create_api() -> FastAPI:
    api = FastAPI(
        title="xpm-sync",
        version="1",
        summary="The practice's XPM integration: its status, Practice Activity, local changes and syncs.",
        description=__doc__,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )

    @api.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        return exc.response(request.url.path)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = str(exc.detail) if exc.status_code != 404 else f"There is no {request.url.path} in this API."
        return Problem(exc.status_code, titles.get(exc.status_code, "Error"), detail).response(request.url.path)

    @api.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> Response:
        log.error("The JSON API failed on %s %s", request.method, request.url.path, exc_info=exc)
        detail = "Something went wrong here, not in your request; the api-server's log says what. Try again later."
        return Problem(500, "Internal error", detail).response(request.url.path)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "message": str(e["msg"])}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return Problem(422, "The request is not valid", detail, errors=errors).response(request.url.path)

    # --- reading ---

    @api.get("/status", response_model=ConnectionStatus, responses=_READS, summary="The XPM connection's status")
    async def status(who: Reader) -> ConnectionStatus:
        found = await run_in_threadpool(read_status, _engine())
        return ConnectionStatus(
            status=found.status,  # type: ignore[arg-type]
            practice=found.practice,
            tenant_id=found.tenant_id,
            connected_by=found.connected_by,
            connected_at=found.connected_at,
            last_refresh_at=found.last_refresh_at,
            reason=found.reason,
            calls_today=found.calls_today,
            calls_left_today=found.calls_left,
            custom_fields=found.custom_fields,
        )

    @api.get("/activity", response_model=ActivityPage, responses=_READS, summary="Practice Activity, newest first")
    async def practice_activity(
        who: Reader,
        status: Annotated[ActivityStatus | None, Query(description="Only entries of this status")] = None,
        category: Annotated[str | None, Query(max_length=64, description="Only entries of this category")] = None,
        page: Annotated[int, Query(ge=1, le=10_000, description="1 is the newest")] = 1,
        per_page: Annotated[int, Query(ge=1, le=200, description="Entries a page, up to 200")] = 25,
    ) -> ActivityPage:
        def read() -> ActivityPage:
            with Session(_engine()) as session:
                found = activity.recent(
                    session,
                    per_page + 1,
                    status=status.value if status else None,
                    category=category,
                    offset=(page - 1) * per_page,
                )
                entries = [
                    ActivityEntry(
                        id=e.id,
                        occurred_at=e.occurred_at,
                        status=e.status,
                        category=e.category,
                        message=e.message,
                        actor=e.actor,
                        run_id=(e.details or {}).get("run_id"),
                    )
                    for e in found[:per_page]
                ]
            return ActivityPage(entries=entries, page=page, per_page=per_page, more=len(found) > per_page)

        return await run_in_threadpool(read)

    @api.get(
        "/feed",
        response_model=FeedPage,
        responses=_READS,
        summary="What the syncs inserted, changed or marked removed, oldest first (the change feed)",
    )
    async def change_feed(
        who: Reader,
        after_id: Annotated[int, Query(ge=0, description="Rows after this id (0: the oldest kept)")] = 0,
        entity: Annotated[str | None, Query(max_length=64, description="Only rows of this entity")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Rows a page, up to 1,000")] = 500,
    ) -> FeedPage:
        if entity is not None and entity not in catalog.ALL:
            raise Problem(422, "The request is not valid", f"{entity!r} is not one of {', '.join(catalog.ALL)}.")

        def read() -> FeedPage:
            with Session(_engine()) as session:
                found = feed.after(session, _tenant(session), after_id, entity=entity, limit=limit + 1)
            rows = [
                FeedRow(id=c.id, entity=c.entity, table=c.table_name, key=c.record_key, kind=c.kind,  # type: ignore[arg-type]
                        run_id=c.run_id, changed_at=c.changed_at)
                for c in found[:limit]
            ]  # fmt: skip
            return FeedPage(rows=rows, after_id=rows[-1].id if rows else after_id, more=len(found) > limit)

        return await run_in_threadpool(read)

    @api.get(
        "/changes", response_model=list[Change], responses=_READS, summary="Local changes not yet in XPM, oldest first"
    )
    async def waiting(who: Reader) -> list[Change]:
        return [_change(e) for e in await run_in_threadpool(changes.open_changes, _engine())]

    @api.get(
        "/changes/{change_id}", response_model=Change, responses=_READS, summary="One local change, whatever its status"
    )
    async def one_change(who: Reader, change_id: Annotated[int, ChangeId]) -> Change:
        def read() -> m.OutboxEntry | None:
            with Session(_engine(), expire_on_commit=False) as session:
                return session.get(m.OutboxEntry, change_id)

        entry = await run_in_threadpool(read)
        if entry is None:
            raise Problem(404, "No such change", f"There is no change {change_id}.")
        return _change(entry)

    @api.get("/jobs", response_model=JobList, responses=_READS, summary="Find jobs by number, name, client or state")
    async def find_jobs(
        who: Reader,
        q: Annotated[
            str | None, Query(max_length=100, description="Part of the job's number or name, or its client's name")
        ] = None,  # noqa: E501
        state: Annotated[str | None, Query(max_length=100, description="Only jobs in this state")] = None,
        client_uuid: Annotated[str | None, Query(pattern=ids.UUID_PATTERN, description="Only this client's")] = None,
        limit: Annotated[int, Query(ge=1, le=200, description="Jobs to give, up to 200")] = 50,
    ) -> JobList:
        return await run_in_threadpool(_find_jobs, _engine(), q, state, client_uuid, limit)

    @api.get(
        "/jobs/{job_number}",
        response_model=Job,
        responses=_READS,
        summary="One job, with its custom fields and waiting changes",
    )
    async def one_job(who: Reader, job_number: Annotated[str, JobNumberPath]) -> Job:
        return await run_in_threadpool(_job, _engine(), job_number)

    @api.get(
        "/clients/{client_uuid}", response_model=Client, responses=_READS, summary="One client, with its custom fields"
    )
    async def one_client(who: Reader, client_uuid: Annotated[str, ClientPath]) -> Client:
        return await run_in_threadpool(_client, _engine(), client_uuid)

    @api.get(
        "/job-states",
        response_model=list[JobState],
        responses=_READS,
        summary="The practice's job states and their codes",
    )
    async def job_states(who: Reader) -> list[JobState]:
        try:
            found = await run_in_threadpool(changes.state_codes, _engine())
        except ChangeRefused as exc:
            raise refused(exc) from None
        return [JobState(name=name, code=code) for name, code in found]

    @api.get("/syncs/{run_id}", response_model=Run, responses=_RUN_READS, summary="A manual sync's state")
    async def sync_state(who: Reader, run_id: Annotated[str, RunPath]) -> Run:
        return await _run(who, catalog.dag_id("manual_sync"), run_id)

    @api.get("/pushes/{run_id}", response_model=Run, responses=_RUN_READS, summary="A push's state")
    async def push_state(who: Reader, run_id: Annotated[str, RunPath]) -> Run:
        return await _run(who, catalog.dag_id("push"), run_id)

    # --- writing ---

    @api.post("/changes/job-state", status_code=201, response_model=Submitted, responses=_WRITES,
              summary="Move a job to another state (pushed to XPM)")  # fmt: skip
    async def change_job_state(
        request: Request, who: Writer, body: JobStateChange, key: IdempotencyKey = None
    ) -> Response:  # noqa: E501
        record = lambda claim: changes.set_job_state(  # noqa: E731
            _engine(), body.job_number, body.state, actor=who.name, claim=claim
        )
        return await _once(request, who, key, body, record)

    @api.post("/changes/job-update", status_code=201, response_model=Submitted, responses=_WRITES,
              summary="Change a job's name, description, dates or budget (pushed to XPM)")  # fmt: skip
    async def change_job(request: Request, who: Writer, body: JobUpdate, key: IdempotencyKey = None) -> Response:
        values = body.model_dump(exclude={"job_number"}, exclude_unset=True)
        if not values:
            nothing = [{"field": "body", "message": "nothing to change"}]
            detail = "Give at least one of name, description, start_date, due_date or budget."
            raise Problem(422, "The request is not valid", detail, errors=nothing)
        record = lambda claim: changes.update_job(  # noqa: E731
            _engine(), body.job_number, actor=who.name, claim=claim, **values
        )
        return await _once(request, who, key, body, record)

    @api.post("/changes/custom-field", status_code=201, response_model=Submitted, responses=_WRITES,
              summary="Set a client's or job's custom field (pushed to XPM)")  # fmt: skip
    async def change_custom_field(
        request: Request, who: Writer, body: CustomFieldChange, key: IdempotencyKey = None
    ) -> Response:
        record = lambda claim: changes.set_custom_field(  # noqa: E731
            _engine(), body.record, body.key, body.field, body.value, actor=who.name, claim=claim
        )
        return await _once(request, who, key, body, record)

    @api.post("/changes/{change_id}/retry", status_code=201, response_model=Submitted, responses=_WRITES,
              summary="Put a change XPM refused back in line for the next push")  # fmt: skip
    async def retry_change(
        request: Request, who: Writer, change_id: Annotated[int, ChangeId], key: IdempotencyKey = None
    ) -> Response:
        record = lambda claim: changes.retry(_engine(), change_id, actor=who.name, claim=claim)  # noqa: E731
        return await _once(request, who, key, {"retry": change_id}, record)

    @api.post("/syncs", status_code=202, response_model=Run, responses=_WRITES, summary="Start a manual sync")
    async def start_sync(request: Request, who: Writer, body: SyncRequest, key: IdempotencyKey = None) -> Response:
        return await _started(request, who, key, body, lambda: _start_sync(who, body))

    @api.post("/pushes", status_code=202, response_model=Run, responses=_WRITES,
              summary="Send the waiting changes to XPM now")  # fmt: skip
    async def start_push(request: Request, who: Writer, key: IdempotencyKey = None) -> Response:
        return await _started(request, who, key, {"push": True}, lambda: _start_push(who))

    @api.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        from xpm_sync.web.app import TEMPLATES

        base = str(request.url.replace(query="")).rsplit("/docs", 1)[0]
        page = TEMPLATES.get_template("api_docs.html").render(
            spec=api.openapi(),
            base=base,
            airflow=base.rsplit("/xpm/", 1)[0],
            css=f"{base.rsplit('/api/', 1)[0]}/static/xpm.css",
        )
        return HTMLResponse(page)

    return api


JobNumberPath = Path(pattern=ids.JOB_NUMBER_PATTERN, description=ids.JOB_HELP)
ClientPath = Path(pattern=ids.UUID_PATTERN, description=ids.CLIENT_HELP)
ChangeId = Path(ge=1, le=2**31 - 1, description="The change's number, as GET /changes gives it")
RunPath = Path(pattern=r"^[A-Za-z0-9_.~:+-]{1,250}$", description="The run id Airflow gave it")
_PROBLEM: dict[str, Any] = {"content": {PROBLEM: {}}}
_READS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not signed in to Airflow", **_PROBLEM},
    403: {"description": "The Airflow role may not read the XPM DAGs", **_PROBLEM},
}
_WRITES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not signed in to Airflow", **_PROBLEM},
    403: {"description": "The Airflow role may not do this", **_PROBLEM},
    409: {"description": "Refused by the practice's settings or the connection's state", **_PROBLEM},
    422: {"description": "A value is not valid: `errors` names the field", **_PROBLEM},
}
_RUN_READS: dict[int | str, dict[str, Any]] = {
    **_READS,
    404: {"description": "Airflow has no such run of this DAG", **_PROBLEM},
    502: {"description": "Airflow's own API did not answer", **_PROBLEM},
}


# --- helpers ------------------------------------------------------------------------------------


def _change(entry: m.OutboxEntry) -> Change:
    fields = [
        FieldChange(
            name=str(f.get("name") or name.replace("_", " ")),
            before=f.get("before"),
            after=f.get("after"),
            xpm=f.get("xpm"),
        )
        for name, f in (entry.payload or {}).get("fields", {}).items()
    ]
    return Change(
        id=entry.id,
        record=entry.entity,  # type: ignore[arg-type]
        key=entry.entity_key,
        operation=entry.operation,
        fields=fields,
        status=entry.status,  # type: ignore[arg-type]
        created_at=entry.created_at,
        created_by=entry.created_by,
        error=entry.last_error,
    )


def _tenant(session: Session) -> str:
    tenant = practice_tenant(session)
    if tenant is None:
        raise Problem(409, "XPM is not connected", "XPM is not connected, so nothing is stored yet. Connect XPM first.")
    return str(tenant)


def _find_jobs(engine: Engine, q: str | None, state: str | None, client_uuid: str | None, limit: int) -> JobList:
    with Session(engine) as session:
        tenant = _tenant(session)
        query = (
            select(m.Job, m.Client.name)
            .outerjoin(m.Client, (m.Client.tenant_id == m.Job.tenant_id) & (m.Client.uuid == m.Job.client_uuid))
            .where(m.Job.tenant_id == tenant, m.Job.removed_upstream_at.is_(None))
            .order_by(m.Job.job_number)
            .limit(limit + 1)
        )
        if q:
            text = q.lower()
            query = query.where(
                or_(
                    func.lower(m.Job.job_number).contains(text, autoescape=True),
                    func.lower(m.Job.name).contains(text, autoescape=True),
                    func.lower(m.Client.name).contains(text, autoescape=True),
                )
            )
        if state:
            query = query.where(func.lower(m.Job.state) == state.lower())
        if client_uuid:
            query = query.where(m.Job.client_uuid == client_uuid)
        rows = session.execute(query).all()
        jobs = [_job_summary(job, client) for job, client in rows[:limit]]
    return JobList(jobs=jobs, more=len(rows) > limit)


def _job_summary(job: m.Job, client_name: str | None) -> JobSummary:
    return JobSummary(
        job_number=job.job_number,
        name=job.name,
        client_uuid=job.client_uuid,
        client_name=client_name,
        state=job.state,
        start_date=job.start_date,
        due_date=job.due_date,
        pending_push=bool(job.pending_push),
    )


def _values(session: Session, model: Any, column: Any, tenant: str, key: str, editable: bool) -> list[CustomFieldValue]:
    from xpm_sync.change_values import VALUE_COLUMN

    rows = session.scalars(
        select(model).where(model.tenant_id == tenant, column == key, model.removed_upstream_at.is_(None))
    )
    found = []
    for row in rows:
        value = next((text_of(getattr(row, c)) for c in VALUE_COLUMN.values() if getattr(row, c) is not None), None)
        found.append(CustomFieldValue(field_uuid=row.field_uuid, name=row.name, value=value, editable=editable))
    return sorted(found, key=lambda v: (v.name or "").lower())


def _open_for(engine: Engine, entity: str, key: str) -> list[Change]:
    return [_change(e) for e in changes.open_changes(engine, entity=entity) if e.entity_key == key]


def _job(engine: Engine, number: str) -> Job:
    with Session(engine) as session:
        tenant = _tenant(session)
        job = session.get(m.Job, (tenant, number))
        if job is None or job.removed_upstream_at is not None:
            raise Problem(404, "No such job", f"There is no job {number} in the practice database.")
        client = session.get(m.Client, (tenant, job.client_uuid)) if job.client_uuid else None
        practice = settings.load(session)
        values = _values(
            session, m.JobCustomFieldValue, m.JobCustomFieldValue.job_number, tenant, number,
            not practice.sync_custom_fields_from_xpm,
        )  # fmt: skip
        summary = _job_summary(job, client.name if client else None)
        found = Job(
            **summary.model_dump(),
            description=job.description,
            budget=job.budget,
            web_url=job.web_url,
            custom_fields=values,
            changes=[],
            editable=practice.maintain_jobs_locally,
        )
    found.changes = _open_for(engine, "job", number) + _open_for(engine, "job_custom_field", number)
    return found


def _client(engine: Engine, uuid: str) -> Client:
    with Session(engine) as session:
        tenant = _tenant(session)
        client = session.get(m.Client, (tenant, uuid))
        if client is None or client.removed_upstream_at is not None:
            raise Problem(404, "No such client", f"There is no client {uuid} in the practice database.")
        editable = not settings.load(session).sync_custom_fields_from_xpm
        values = _values(
            session, m.ClientCustomFieldValue, m.ClientCustomFieldValue.client_uuid, tenant, uuid, editable
        )
        found = Client(
            uuid=client.uuid,
            name=client.name,
            email=client.email,
            phone=client.phone,
            pending_push=bool(client.pending_push),
            custom_fields=values,
            changes=[],
        )
    found.changes = _open_for(engine, "client_custom_field", uuid)
    return found


def _airflow_root() -> str:
    from xpm_sync.web.app import _airflow_root as root

    return root()


async def _run(who: Visitor, dag_id: str, run_id: str) -> Run:
    try:
        state = await run_in_threadpool(who.airflow().run_state, dag_id, run_id)
    except XpmError as exc:
        raise Problem(502, "Airflow did not answer", str(exc)) from None
    if state is None:
        raise Problem(404, "No such run", f"There is no run {run_id} of {dag_id}.")
    return Run(run_id=run_id, dag_id=dag_id, state=state, url=f"{_airflow_root()}/dags/{dag_id}/runs/{run_id}")


def _start_sync(who: Visitor, body: SyncRequest) -> Run:
    engine = get_engine()
    problem = policy.connection_problem(engine, config.get("conn_id"))
    if problem:
        raise Problem(409, "XPM cannot be called now", problem)
    entities = [e for e in catalog.ALL if e in body.entities]  # the catalog's order, each once
    left_out: dict[str, str] = {}
    if "jobs" in entities:
        with session_scope(engine) as session:
            jobs_refused = policy.refusal("jobs", policy.Request(manual=True), settings.load(session))
        if jobs_refused and entities == ["jobs"]:
            raise Problem(409, "The job sync was refused", jobs_refused)
        if jobs_refused:
            entities.remove("jobs")  # the rest goes on while the local job changes wait
            left_out["jobs"] = jobs_refused
    mode = "full" if body.full else "incremental"
    what = "All" if set(entities) >= set(catalog.ALL) else ", ".join(catalog.LABELS[e] for e in entities)
    manual = catalog.dag_id("manual_sync")
    try:
        run_id = airflow_runs.start(
            who.airflow(),
            manual,
            {"entities": entities, "full": body.full},
            note=f"{what}: {mode} sync by {who.name}",
        )
    except XpmError as exc:
        raise Problem(409, "The sync was not started", str(exc)) from None
    url = f"{_airflow_root()}/dags/{manual}/runs/{run_id}"
    return Run(run_id=run_id, dag_id=manual, state="queued", url=url, entities=entities, left_out=left_out)


def _start_push(who: Visitor) -> Run:
    problem = policy.connection_problem(get_engine(), config.get("conn_id"))
    if problem:
        raise Problem(409, "XPM cannot be called now", problem)
    push = catalog.dag_id("push")
    try:
        run_id = airflow_runs.start(who.airflow(), push, {}, note=f"Push by {who.name}", unpause=False)
    except XpmError as exc:  # paused on purpose: say so rather than unpause it
        raise Problem(409, "The push was not started", str(exc)) from None
    return Run(run_id=run_id, dag_id=push, state="queued", url=f"{_airflow_root()}/dags/{push}/runs/{run_id}")


# --- Idempotency-Key ----------------------------------------------------------------------------


def _fingerprint(request: Request, body: Any) -> str:
    shown = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    text = json.dumps([request.method, request.url.path, shown], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(row: m.ApiRequest | None, fingerprint: str) -> Response | None:
    """The answer a request sent before with this key got, if it was this request."""
    if row is None:
        return None
    if row.fingerprint != fingerprint:
        raise Problem(
            422,
            "Idempotency-Key used for another request",
            "This Idempotency-Key was sent before with a different request; use a new key for a new request.",
            errors=[{"field": "Idempotency-Key", "message": "already used for a different request"}],
        )
    if row.status_code is None:
        raise Problem(409, "The same request is still being carried out", "Try again in a few seconds.")
    media = PROBLEM if row.status_code >= 400 else "application/json"
    return JSONResponse(row.response, row.status_code, media_type=media, headers={REPLAYED: "true"})


def _stored(engine: Engine, actor: str, key: str) -> m.ApiRequest | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(m.ApiRequest, (actor, key))


def _forget_old(session: Session) -> None:
    session.execute(delete(m.ApiRequest).where(m.ApiRequest.created_at < datetime.now(UTC) - KEPT))


async def _once(
    request: Request,
    who: Visitor,
    key: str | None,
    body: Any,
    record: Callable[[changes.Claim | None], changes.Recorded],
) -> Response:
    """Record a change once: with a key, the change and the answer are kept in one transaction."""
    engine = get_engine()
    fingerprint = _fingerprint(request, body)
    if key:
        replay = _replay(await run_in_threadpool(_stored, engine, who.name, key), fingerprint)
        if replay is not None:
            return replay
    answer: dict[str, Any] = {}

    def claim(session: Session, result: changes.Recorded) -> None:
        entry = session.get(m.OutboxEntry, result.entry_id) if result.entry_id else None
        answer.update(change=_change(entry).model_dump(mode="json") if entry else None, message=result.message)
        if key:
            _forget_old(session)
            session.add(m.ApiRequest(actor=who.name, idempotency_key=key, fingerprint=fingerprint,
                                     status_code=201, response={**answer, "push": None}))  # fmt: skip
            session.flush()

    try:
        result = await run_in_threadpool(record, claim)
    except ChangeRefused as exc:
        raise refused(exc) from None
    except IntegrityError:  # the same key, sent twice at once: the other one recorded it
        replay = _replay(await run_in_threadpool(_stored, engine, who.name, key or ""), fingerprint)
        if replay is None:
            raise
        return replay
    told = await run_in_threadpool(airflow_runs.notify_push, who.airflow(), who.name) if result.entry_id else "not told"
    answer["push"] = told
    if key:
        await run_in_threadpool(_keep_answer, engine, who.name, key, 201, answer)
    return JSONResponse(answer, 201)


def _keep_answer(engine: Engine, actor: str, key: str, status: int, answer: dict[str, Any]) -> None:
    with Session(writing(engine)) as session, session.begin():
        row = session.get(m.ApiRequest, (actor, key))
        if row is not None:
            row.status_code, row.response = status, answer


def _claim_first(engine: Engine, actor: str, key: str, fingerprint: str) -> bool:
    """Hold the key before starting a run (Airflow's database is not ours to share a transaction with)."""
    try:
        with Session(writing(engine)) as session, session.begin():
            _forget_old(session)
            session.add(m.ApiRequest(actor=actor, idempotency_key=key, fingerprint=fingerprint))
        return True
    except IntegrityError:
        return False


def _release(engine: Engine, actor: str, key: str) -> None:
    with Session(writing(engine)) as session, session.begin():
        session.execute(delete(m.ApiRequest).where(m.ApiRequest.actor == actor, m.ApiRequest.idempotency_key == key))


async def _started(request: Request, who: Visitor, key: str | None, body: Any, start: Callable[[], Run]) -> Response:
    """Start a run once per key."""
    engine = get_engine()
    fingerprint = _fingerprint(request, body)
    if key:
        replay = _replay(await run_in_threadpool(_stored, engine, who.name, key), fingerprint)
        if replay is not None:
            return replay
        if not await run_in_threadpool(_claim_first, engine, who.name, key, fingerprint):
            replay = _replay(await run_in_threadpool(_stored, engine, who.name, key), fingerprint)
            if replay is not None:
                return replay
    try:
        run = await run_in_threadpool(start)
    except BaseException:
        if key:
            await run_in_threadpool(_release, engine, who.name, key)  # nothing started: the key may be used again
        raise
    answer = run.model_dump(mode="json")
    if key:
        await run_in_threadpool(_keep_answer, engine, who.name, key, 202, answer)
    return JSONResponse(answer, 202)
