"""The sandbox's web app: Xero identity, the connections API, XPM 3.1 and a control API."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from xpm_sandbox import api, render, scopes
from xpm_sandbox.gateway import FAULT_KINDS, Fault
from xpm_sandbox.generate import next_day
from xpm_sandbox.identity import OAuthError, PendingAuthorize
from xpm_sandbox.state import Sandbox

XML = "text/xml; charset=utf-8"
API_PREFIX = "/practicemanager/3.1/"
_LIST = re.compile(r"(<Status>OK</Status>)<(\w+)(?: />|>.*</\2>)", re.DOTALL)


def _emptied(text: str) -> str:
    return _LIST.sub(lambda m: f"{m.group(1)}<{m.group(2)} />", text, count=1)


def _rewrapped(text: str) -> str:
    return _LIST.sub(
        lambda m: m.group(0).replace(f"<{m.group(2)}", "<Items", 1).replace(f"</{m.group(2)}>", "</Items>"),
        text,
        count=1,
    )


async def _in_two_halves(body: bytes, pause: float) -> AsyncIterator[bytes]:
    yield body[: len(body) // 2]
    await asyncio.sleep(pause or 2)
    yield body[len(body) // 2 :]


class _Slot:
    """A call's place among its practice's calls in flight, given up once."""

    def __init__(self, release: Callable[[str], None], tenant_id: str) -> None:
        self._release, self._tenant_id, self._held = release, tenant_id, True

    def free(self) -> None:
        if self._held:
            self._held = False
            self._release(self._tenant_id)


class _Answered(Response):
    """An answer whose call stops counting as in flight just before its last bytes are sent.

    XPM counts a call until it has answered. Freeing the slot later (after the body, as a
    background task would) let a caller's next call, already sent on the same connection, find
    its previous one still counted and be refused for concurrency it never had. A caller that
    goes away mid-answer frees the slot too.
    """

    def __init__(self, inner: Response, slot: _Slot) -> None:
        self.inner, self.slot = inner, slot
        self.status_code, self.raw_headers, self.background = inner.status_code, inner.raw_headers, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.slot.free()
            await send(message)

        try:
            await self.inner(scope, receive, sending)
        finally:
            self.slot.free()


def _api_method(path: str) -> str:
    """The api-method XPM names in an answer: `job.api/state` -> State."""
    method = path.split("/")[1] if "/" in path else "Get"
    return method[:1].upper() + method[1:] if method not in ("get", "list") else method.title()


def _gzip_bomb(text: str, megabytes: int) -> bytes:
    """The answer with `megabytes` MB of spaces before its end, as gzip members one after another
    (a reader must take them all; one member of a megabyte of spaces is made once and repeated)."""
    import gzip

    head, end, tail = text.rpartition("</Response>")
    if not end:
        head, tail = text, ""
    padding = gzip.compress(b" " * (1 << 20), 9)
    return gzip.compress(head.encode()) + padding * megabytes + gzip.compress((end + tail).encode())


# Faults that change an answer's body.
BODY_FAULTS = {
    "truncate": lambda text: text[: max(20, len(text) // 2)],
    "malformed": lambda text: text.replace("</Status>", "</Stat>", 1),
    "empty": _emptied,
    "wrong_wrapper": _rewrapped,
}


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, object] = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return Response(json.dumps(body, separators=(",", ":")), status, headers=headers, media_type="application/json")


def _oauth_error(exc: OAuthError) -> JSONResponse:
    body = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    return JSONResponse(body, status_code=400)


def _basic_auth(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        raise OAuthError("invalid_client")
    try:
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        raise OAuthError("invalid_client") from None
    return client_id, secret


class _CountEgress:
    """Counts the bytes of every body the XPM API sends, per practice (the request's xero-tenant-id)."""

    def __init__(self, app: Any, gateway: Any) -> None:
        self.app, self.gateway = app, gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        tenant = headers.get(b"xero-tenant-id", b"").decode("latin-1")

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.gateway.served(tenant, len(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, counting)


def create_app(sandbox: Sandbox) -> FastAPI:
    """Build the app around one sandbox's state."""
    app = FastAPI(title="XPM sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    ident, gate = sandbox.identity, sandbox.gateway
    app.add_middleware(_CountEgress, gateway=gate)

    # --- identity -------------------------------------------------------------------------------

    @app.get("/identity/connect/authorize")
    def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        try:
            ident.check_authorize(params)
        except OAuthError as exc:
            return HTMLResponse(f"<h1>Error</h1><p>{html.escape(exc.error)}: {html.escape(exc.description)}</p>", 400)
        users = "".join(f'<option value="{html.escape(u)}">{html.escape(u)}</option>' for u in ident.users)
        practices = "".join(
            f'<label><input type="checkbox" name="tenant" value="{p.tenant_id}" checked> '
            f"{html.escape(p.name)}</label><br>"
            for p in sandbox.practices.values()
        )
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
        )
        return HTMLResponse(
            "<h1>XPM sandbox: log in and allow access</h1>"
            f'<form method="post">{hidden}<p>User <select name="user">{users}</select></p>'
            f"<p>Practices to connect:<br>{practices}</p>"
            '<p>Only an XPM Administrator with "Authorise 3rd Party Full Access" can connect a practice.</p>'
            '<button name="allow" value="1">Allow access</button> <button name="deny" value="1">Cancel</button></form>'
        )

    @app.post("/identity/connect/authorize")
    async def authorize_consent(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        tenants = [v for k, v in parse_qsl((await request.body()).decode()) if k == "tenant"]
        try:
            pending = ident.check_authorize(form)
        except OAuthError as exc:
            return HTMLResponse(f"<h1>Error</h1><p>{html.escape(exc.error)}</p>", 400)
        return RedirectResponse(_consent_redirect(pending, form.get("user", ""), tenants, deny="deny" in form), 302)

    def _consent_redirect(
        pending: PendingAuthorize, email: str, tenants: list[str] | None, *, deny: bool = False
    ) -> str:
        query: dict[str, str] = {}
        if deny:
            query["error"] = "access_denied"
        else:
            query["code"] = ident.consent(pending, email, tenants)
            query["scope"] = pending.scope
        if pending.state is not None:
            query["state"] = pending.state
        return f"{pending.redirect_uri}?{urlencode(query)}"

    @app.post("/connect/token")
    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        fault = gate.take_fault("connect/token", explicit=True)
        if fault and fault.kind in ("500", "503"):
            return Response(status_code=int(fault.kind))
        try:
            app_ = ident.authenticate_client(*_basic_auth(request))
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                reply = ident.exchange_code(
                    app_, form.get("code", ""), form.get("redirect_uri", ""), form.get("code_verifier")
                )
            elif grant_type == "refresh_token":
                reply = ident.refresh(app_, form.get("refresh_token", ""))
            else:
                raise OAuthError("unsupported_grant_type")
        except OAuthError as exc:
            return _oauth_error(exc)
        if fault and fault.kind in ("slow", "hang"):
            # The token was issued; the caller may give up before this reply arrives (a lost reply).
            await asyncio.sleep(fault.seconds or 3600)
        return JSONResponse(reply, headers={"Cache-Control": "no-store"})

    @app.post("/connect/revocation")
    async def revocation(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        try:
            ident.revoke(ident.authenticate_client(*_basic_auth(request)), form.get("token", ""))
        except OAuthError as exc:
            return _oauth_error(exc)
        return Response(status_code=200)

    def _bearer(request: Request) -> tuple[Any, Response | None]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        at, why = ident.access(token)
        if at is None:
            return None, _problem(
                401,
                "Unauthorized",
                "AuthenticationUnsuccessful",
                {"www-authenticate": "Bearer error=invalid_token"},
            )
        if why == "expired":
            stamp = at.expires.strftime("%m/%d/%Y %H:%M:%S")
            return None, _problem(
                401,
                "Unauthorized",
                f"TokenExpired: token expired at {stamp}",
                {"www-authenticate": "Bearer error=invalid_token"},
            )
        return at, None

    @app.get("/connections")
    def connections(request: Request, authEventId: str | None = None) -> Response:  # noqa: N803
        at, problem = _bearer(request)
        if problem:
            return problem
        rows = [
            {
                "id": c.id,
                "authEventId": c.auth_event_id,
                "tenantId": c.tenant_id,
                "tenantType": "PRACTICEMANAGER",
                "tenantName": c.tenant_name,
                "createdDateUtc": c.created.isoformat(timespec="seconds"),
                "updatedDateUtc": c.updated.isoformat(timespec="seconds"),
            }
            for c in ident.connections(at.grant)
            if authEventId is None or c.auth_event_id == authEventId
        ]
        return JSONResponse(rows)

    @app.delete("/connections/{connection_id}")
    def delete_connection(request: Request, connection_id: str) -> Response:
        at, problem = _bearer(request)
        if problem:
            return problem
        if not ident.delete_connection(at.grant, connection_id):
            return _problem(404, "Not Found", "Resource not found")
        return Response(status_code=204)

    # --- XPM API through the gateway ------------------------------------------------------------

    @app.api_route(API_PREFIX + "{path:path}", methods=["GET", "PUT", "POST", "DELETE"])
    async def xpm(request: Request, path: str) -> Response:
        method, tenant_id = request.method, request.headers.get("xero-tenant-id", "")
        at, problem = _bearer(request)
        if problem:
            gate.log(method, path, request.url.query, tenant_id, problem.status_code)
            return problem
        practice = sandbox.practices.get(tenant_id)
        if practice is None or not practice.active or not ident.tenant_allowed(at.grant, tenant_id):
            gate.log(method, path, request.url.query, tenant_id, 403)
            return _problem(403, "Forbidden", "AuthenticationUnsuccessful", {"x-appminlimit-remaining": "9999"})
        found = api.resolve(method, path)
        if found is None:
            gate.log(method, path, request.url.query, tenant_id, 404)
            return Response(status_code=404)
        route, args = found
        if not scopes.covers(at.grant.scopes, route.spec_path, writes=route.writes):
            # Outside what the token was granted: not an expiry, so a refresh changes nothing.
            gate.log(method, path, request.url.query, tenant_id, 401)
            need = scopes.wanted(route.spec_path, writes=route.writes)
            challenge = f'Bearer error="insufficient_scope", scope="{need}"'
            return _problem(401, "Unauthorized", "AuthorizationUnsuccessful", {"WWW-Authenticate": challenge})
        verdict = gate.admit(tenant_id)
        if verdict.status:
            gate.log(method, path, request.url.query, tenant_id, 429)
            return Response(status_code=429, headers=verdict.headers)
        slot = _Slot(gate.release, tenant_id)
        try:
            fault = gate.take_fault(path)
            refused = _refusal(fault, at, tenant_id) if fault else None
            if refused is not None:
                gate.log(method, path, request.url.query, tenant_id, refused.status_code)
                slot.free()
                return refused
            # Read before any wait: a caller that gives up may not be there to send it afterwards.
            sent = await request.body()
            if fault and fault.kind in ("slow", "hang", "applies_late"):
                await asyncio.sleep(fault.seconds or (2 if fault.kind == "slow" else 3600))
            req = api.Request(
                method,
                path,
                dict(request.query_params),
                sent,
                str(request.base_url).rstrip("/") + API_PREFIX,
                sandbox.clock.now(),
            )
            if fault and fault.kind == "business_error":
                body: Any = render.error(_api_method(path), fault.description)  # refused: nothing applied
            else:
                body = await run_in_threadpool(route.handler, practice, req, *args)
                if route.writes and isinstance(body, str) and "<Status>OK</Status>" in body:
                    gate.applied(method, path)
            if fault and fault.kind == "late":
                await asyncio.sleep(fault.seconds or 3600)
        except BaseException:
            slot.free()
            raise
        gate.log(method, path, request.url.query, tenant_id, 200)
        if fault and fault.kind in BODY_FAULTS:
            body = BODY_FAULTS[fault.kind](body if isinstance(body, str) else b"".join(body).decode())
        if fault and fault.kind == "gzip_bomb":
            bomb = _gzip_bomb(body if isinstance(body, str) else b"".join(body).decode(), int(fault.seconds or 64))
            headers = {**verdict.headers, "Content-Encoding": "gzip"}
            return _Answered(Response(bomb, 200, media_type=XML, headers=headers), slot)
        if fault and fault.kind == "trickle":
            whole = (body if isinstance(body, str) else b"".join(body).decode()).encode()
            halves = _in_two_halves(whole, fault.seconds)
            return _Answered(StreamingResponse(halves, 200, media_type=XML, headers=verdict.headers), slot)
        if isinstance(body, str):
            return _Answered(Response(body, 200, media_type=XML, headers=verdict.headers), slot)
        return _Answered(StreamingResponse(body, 200, media_type=XML, headers=verdict.headers), slot)

    def _refusal(fault: Fault, at: Any, tenant_id: str) -> Response | None:
        """The answer for a fault that refuses the call outright, or None."""
        unauthorized = {"www-authenticate": "Bearer error=invalid_token"}
        if fault.kind == "500":
            return Response('{Status":500}', 500, media_type="application/json", headers=unauthorized)
        if fault.kind == "503":
            return _problem(503, "Unavailable", "ServiceNotAvailable", unauthorized)
        if fault.kind == "revoke_grant":
            at.grant.revoked = True
            return _problem(401, "Unauthorized", "AuthenticationUnsuccessful", unauthorized)
        if fault.kind == "401":
            return _problem(401, "Unauthorized", "AuthenticationUnsuccessful", unauthorized)
        if fault.kind == "remove_privilege":
            admin, _third_party = at.grant.user.practices.get(tenant_id, (True, True))
            at.grant.user.practices[tenant_id] = (admin, False)
            return _problem(403, "Forbidden", "AuthenticationUnsuccessful")
        if fault.kind == "403":
            return _problem(403, "Forbidden", "AuthenticationUnsuccessful")
        if fault.kind == "429":
            headers = {"Retry-After": str(int(fault.seconds or 5)), "X-Rate-Limit-Problem": fault.problem}
            return Response(status_code=429, headers=headers)
        return None

    # --- control API, for tests and the demo only -----------------------------------------------

    @app.get("/_sandbox")
    def overview() -> dict[str, Any]:
        return {
            "client_id": next(iter(ident.apps)),
            "practices": [
                {
                    "tenant_id": p.tenant_id,
                    "name": p.name,
                    "clients": len(p.clients),
                    "jobs": len(p.jobs),
                    "active": p.active,
                }
                for p in sandbox.practices.values()
            ],
            "users": {
                u.email: {"name": u.name, "practices": {t: list(v) for t, v in u.practices.items()}}
                for u in ident.users.values()
            },
            "now": sandbox.clock.now().isoformat(),
        }

    @app.post("/_sandbox/consent")
    async def consent(request: Request) -> Response:
        """Play the browser: log in as a seeded user and allow access; return where Xero redirects."""
        data = await request.json()
        params = dict(parse_qsl(urlsplit(data["authorize_url"]).query))
        try:
            pending = ident.check_authorize(params)
            redirect = _consent_redirect(pending, data["user"], data.get("tenant_ids"), deny=bool(data.get("deny")))
        except OAuthError as exc:  # what Xero's sign-in page would show instead of sending the browser back
            return JSONResponse({"error": exc.error, "error_description": exc.description}, 400)
        return JSONResponse({"redirect": redirect})

    @app.post("/_sandbox/apps")
    async def register_app(request: Request) -> dict[str, str]:
        from xpm_sandbox.identity import App

        data = await request.json()
        app_ = App(data["client_id"], data["client_secret"], list(data["redirect_uris"]))
        if data.get("allowed_scopes") is not None:
            app_.allowed_scopes = frozenset(data["allowed_scopes"])
        ident.apps[data["client_id"]] = app_
        return {"client_id": data["client_id"]}

    @app.post("/_sandbox/clock")
    async def clock(request: Request) -> dict[str, str]:
        data = await request.json()
        return {"now": sandbox.clock.advance(float(data.get("advance_seconds", 0))).isoformat()}

    @app.post("/_sandbox/identity")
    async def identity_settings(request: Request) -> dict[str, float]:
        from datetime import timedelta

        data = await request.json()
        if "access_lifetime_seconds" in data:
            ident.access_lifetime = timedelta(seconds=float(data["access_lifetime_seconds"]))
        if "refresh_idle_days" in data:
            ident.refresh_idle_expiry = timedelta(days=float(data["refresh_idle_days"]))
        return {
            "access_lifetime_seconds": ident.access_lifetime.total_seconds(),
            "refresh_idle_days": ident.refresh_idle_expiry.days,
        }

    @app.post("/_sandbox/faults")
    async def add_fault(request: Request) -> Response:
        data = await request.json()
        if data.get("kind") not in FAULT_KINDS:
            return JSONResponse({"error": f"kind must be one of {sorted(FAULT_KINDS)}"}, 400)
        if data.get("problem", "minute") not in ("minute", "day"):
            return JSONResponse({"error": "problem must be minute or day"}, 400)
        gate.faults.append(
            Fault(
                str(data["kind"]),
                data.get("path", ""),
                int(data.get("count", 1)),
                float(data.get("seconds", 0)),
                str(data.get("description") or Fault.description),
                str(data.get("problem", "minute")),
            )
        )
        return JSONResponse({"pending": len(gate.faults)})

    @app.delete("/_sandbox/faults")
    def clear_faults() -> dict[str, int]:
        gate.faults.clear()
        return {"pending": 0}

    @app.post("/_sandbox/limits")
    async def limits(request: Request) -> dict[str, int]:
        data = await request.json()
        for key in ("concurrent", "per_minute", "per_day", "app_per_minute"):
            if key in data:
                setattr(gate.limits, key, int(data[key]))
        return vars(gate.limits)

    @app.post("/_sandbox/revoke")
    async def revoke(request: Request) -> dict[str, int]:
        data = await request.json()
        return {"revoked": ident.revoke_all(data.get("user"))}

    @app.post("/_sandbox/privilege")
    async def privilege(request: Request) -> Response:
        data = await request.json()
        user = ident.users.get(str(data["user"]).lower())
        if user is None:
            return JSONResponse({"error": "unknown user"}, 404)
        user.practices[data["tenant_id"]] = (
            bool(data.get("admin", True)),
            bool(data.get("third_party", True)),
        )
        return JSONResponse({"user": user.email, "practices": {t: list(v) for t, v in user.practices.items()}})

    @app.post("/_sandbox/tenants/{tenant_id}")
    async def tenant(request: Request, tenant_id: str) -> Response:
        data = await request.json()
        practice = sandbox.practices.get(tenant_id)
        if practice is None:
            return JSONResponse({"error": "unknown tenant"}, 404)
        practice.active = bool(data.get("active", True))
        return JSONResponse({"tenant_id": tenant_id, "active": practice.active})

    @app.post("/_sandbox/next-day")
    async def advance_day(request: Request) -> dict[str, Any]:
        data = await request.json() if await request.body() else {}
        now = sandbox.clock.advance(86_400)
        return next_day(
            sandbox.main,
            seed=int(data.get("seed", sandbox.seed)),
            share=float(data.get("share", 0.02)),
            now=now,
            closed_backdated=int(data.get("closed_backdated", 0)),
            days_back=int(data.get("days_back", 3)),
        )

    @app.post("/_sandbox/times")
    async def times(request: Request) -> dict[str, Any]:
        """The main practice's time entries (uuid, minutes, note), or with `count_only` how much work it holds."""
        data = await request.json() if await request.body() else {}
        p = sandbox.main
        if data.get("count_only"):
            work = f"{len(p.times):,} time entries, {len(p.costs):,} costs, {len(p.invoices):,} invoices, "
            return {"work": work + f"{len(p.quotes):,} quotes"}
        return {"times": [{"uuid": t.uuid, "minutes": t.minutes, "note": t.note} for t in p.times.values()]}

    @app.get("/_sandbox/answers")
    def answers() -> dict[str, Any]:
        """The main practice's own answers to the example queries of docs/schema.md."""
        from xpm_sandbox import work

        return work.answers(sandbox.main)

    @app.get("/_sandbox/calls")
    def calls() -> dict[str, Any]:
        return {
            "total": len(gate.calls),
            "writes_applied": [f"{method} {path}" for method, path in gate.writes],
            "by_status": dict(Counter(str(c.status) for c in gate.calls)),
            "peak_in_flight": max(gate.peak_in_flight.values(), default=0),
            "egress_bytes": dict(gate.egress),
            "by_endpoint": gate.endpoint_counts(),
            "token_requests": ident.token_requests,
            "refreshes": ident.refreshes,
        }

    @app.delete("/_sandbox/calls")
    def reset_calls() -> dict[str, int]:
        gate.reset_counts()
        return {"total": 0}

    return app
