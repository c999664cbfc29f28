"""Connecting XPM, the connection's lifecycle: sign-in attempts, practice choice, pinning, storing
the tokens, reconnecting, switching and disconnecting. Xero's side of it (PKCE, the authorize URL,
the code exchange, the connections list, revoking) is `oauth.xero`.

1. `start()` records a pending attempt (random `state`, PKCE verifier encrypted, who asked, expiry)
   and returns Xero's authorize URL.
2. The administrator signs in at Xero and allows access; Xero redirects back with `code` and `state`.
3. `complete()` checks the state (and, from the XPM page, that the same Airflow user started it),
   exchanges the code, lists the practices this sign-in connected (`/connections` filtered by the
   sign-in's auth event and tenant type PRACTICEMANAGER), lets the administrator choose when there
   are several, enforces the pinned practice, and stores the tokens. On the XPM page the choice is a
   second request: the tokens wait, encrypted, on the attempt until `choose()` takes them.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from xpm_sync import activity
from xpm_sync import settings as practice_settings
from xpm_sync.errors import XpmError, XpmOAuthError
from xpm_sync.oauth import scopes, xero
from xpm_sync.oauth.connection_config import XpmSettings
from xpm_sync.oauth.tokens import (
    TokenSet,
    decrypt_tokens,
    encrypt_tokens,
    fernet,
)
from xpm_sync.store.engine import writing
from xpm_sync.store.locks import active_connection, sharing
from xpm_sync.store.models import ActivityStatus, ConnectionStatus, OAuthAttempt, XpmConnection, XpmGrant
from xpm_sync.store.types import utcnow

log = logging.getLogger(__name__)
Practice = xero.Practice  # a practice a sign-in reached, as the command line and the page name it

ATTEMPT_LIFETIME = timedelta(minutes=15)
NO_PRACTICE = (
    "Xero connected no XPM practice. The person who signs in must be an XPM Administrator with the staff "
    "privilege 'Authorise 3rd Party Full Access'. In XPM, go to Business > Settings > Staff, open that "
    "person, tick 'Authorise 3rd Party Full Access' under Privileges (their access level must be "
    "Administrator), save, and connect again."
)
WRONG_PRACTICE_WARNING = (
    "Choose carefully: the practice chosen here is the one xpm-sync will read from and write to. "
    "Connecting the wrong practice syncs the wrong practice's data."
)


class ChoiceNeeded(XpmOAuthError):
    """The sign-in reached several practices: the administrator must pick one."""

    def __init__(self, state: str, practices: list[xero.Practice]) -> None:
        super().__init__(f"This sign-in reaches {len(practices)} XPM practices: choose one. {WRONG_PRACTICE_WARNING}")
        self.state = state
        self.practices = practices


@dataclass(frozen=True)
class ConnectResult:
    tenant_id: str
    tenant_name: str
    connected_by: str
    reconnected: bool
    switched: bool
    was_broken: bool = False
    grant_id: int | None = None  # the grant holding the tokens (another practice of the sign-in may join it)
    also: list[tuple[str, ConnectResult]] = field(default_factory=list)  # further practices, by conn id
    also_refused: list[str] = field(default_factory=list)  # why a further practice was not connected


Chooser = Callable[[list[xero.Practice]], str | None]


def describe(result: ConnectResult) -> str:
    """What the administrator is told when the connection is made."""
    verb = "Reconnected" if result.reconnected else ("Switched" if result.switched else "Connected")
    return f"{verb}: XPM practice {result.tenant_name!r} ({result.tenant_id}), signed in as {result.connected_by}."


def start(
    settings: XpmSettings,
    engine: Engine,
    *,
    requested_by: str | None,
    switch_practice: bool = False,
    redirect_uri: str | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> str:
    """Record a pending sign-in and return the URL the administrator must open.

    `redirect_uri` is where Xero sends the browser back (the XPM page's own callback); by default the
    connection's (the command line's loopback listener).
    """
    redirect_uri = redirect_uri or settings.redirect_uri
    with Session(engine) as session:
        practice = practice_settings.load(session)
    scope = scopes.requested(settings.scopes, practice, settings.scope_style)
    state = secrets.token_urlsafe(32)
    verifier, challenge = xero.pkce_pair()
    now = clock()
    with Session(writing(engine)) as session, session.begin():
        session.add(
            OAuthAttempt(
                state=state,
                conn_id=settings.conn_id,
                requested_by=requested_by,
                verifier_ciphertext=fernet().encrypt(verifier.encode()).decode(),
                redirect_uri=redirect_uri,
                switch_practice=switch_practice,
                created_at=now,
                expires_at=now + ATTEMPT_LIFETIME,
            )
        )
    return xero.authorize_url(settings, redirect_uri, state, challenge, scope)


def _attempt(session: Session, settings: XpmSettings, state: str, acting_user: str | None) -> OAuthAttempt:
    attempt = session.get(OAuthAttempt, state, with_for_update=True)
    if attempt is None or attempt.conn_id != settings.conn_id:
        raise XpmOAuthError(
            "This sign-in was not started here (unknown state): it may be forged, or from another "
            "installation. Start again from the XPM page or with `xpm-sync connect`."
        )
    if acting_user is not None and attempt.requested_by != acting_user:
        raise XpmOAuthError(
            "This sign-in was started by another Airflow user. Nothing was changed; start it again yourself "
            "from the XPM page."
        )
    return attempt


def _claim_attempt(
    engine: Engine, settings: XpmSettings, state: str, now: datetime, acting_user: str | None = None
) -> tuple[OAuthAttempt, str]:
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        attempt = _attempt(session, settings, state, acting_user)
        if attempt.consumed_at is not None:
            raise XpmOAuthError(
                "This sign-in was already used. Start again from the XPM page or with `xpm-sync connect`."
            )
        if now > attempt.expires_at:
            raise XpmOAuthError("This sign-in took too long and expired. Start again.")
        attempt.consumed_at = now
        verifier = fernet().decrypt(attempt.verifier_ciphertext.encode()).decode()
    return attempt, verifier


def practice_of_attempt(engine: Engine, state: str) -> str | None:
    """The practice (its connection id) a sign-in was started for; None for an unknown state."""
    with Session(engine) as session:
        attempt = session.get(OAuthAttempt, state)
        return attempt.conn_id if attempt is not None else None


def _taken_by_another(engine: Engine, settings: XpmSettings, chosen: xero.Practice, person: str) -> str | None:
    """Why storing `chosen` is refused because another practice of this deployment already holds that XPM
    practice (its rows would be written by both), or None."""
    with Session(engine) as session:
        other = session.scalars(
            select(XpmConnection).where(
                XpmConnection.tenant_id == chosen.tenant_id,
                XpmConnection.active.is_(True),
                XpmConnection.conn_id != settings.conn_id,
            )
        ).first()
    if other is None:
        return None
    return (
        f"{person} signed in and chose the practice {chosen.name!r}, but it is already connected here as the "
        f"practice of the connection {other.conn_id!r}. {WRONG_PRACTICE_WARNING} Nothing was changed: connect "
        "this entry to its own XPM practice."
    )


def _pinned_elsewhere(engine: Engine, settings: XpmSettings, chosen: xero.Practice, person: str) -> str | None:
    """Why storing `chosen` is refused (the installation is pinned to another practice, or another practice
    here holds it), or None."""
    taken = _taken_by_another(engine, settings, chosen, person)
    if taken:
        return taken
    with Session(engine) as session:
        current = session.scalars(active_connection(settings.conn_id)).first()
    pinned = current.tenant_id if current else settings.pinned_tenant_id
    if not pinned or pinned == chosen.tenant_id:
        return None
    pinned_name = current.tenant_name if current else pinned
    return (
        f"{person} signed in and chose the practice {chosen.name!r}, but this connection is pinned to "
        f"{pinned_name!r}. Nothing was changed. To reconnect, choose {pinned_name!r}. To move this "
        "installation to another practice on purpose, use Switch practice on the XPM page "
        "(or `xpm-sync connect --switch-practice`)."
    )


def refused(engine: Engine, settings: XpmSettings, message: str, who: str) -> XpmOAuthError:
    """A sign-in that connected nothing, in Practice Activity under who tried; the error to raise.
    The connection as it was (if any) goes on working: the message says so."""
    with Session(writing(engine)) as session, session.begin():
        current = session.scalars(active_connection(settings.conn_id)).first()
        if current is not None and current.status == ConnectionStatus.CONNECTED.value:
            message += f" The current connection to {current.tenant_name} still works."
        activity.record(
            session,
            ActivityStatus.FAILURE,
            "Connection",
            f"Sign-in refused: {message}",
            actor=who,
            tenant_id=current.tenant_id if current else None,
        )
    return XpmOAuthError(message)


def _choose(found: list[xero.Practice], choose: Chooser | None, practice: str | None) -> xero.Practice:
    if practice:
        match = [p for p in found if practice in (p.tenant_id, p.name)]
        if not match:
            names = ", ".join(f"{p.name} ({p.tenant_id})" for p in found)
            raise XpmOAuthError(f"This sign-in did not connect the practice {practice!r}. It connected: {names}.")
        return match[0]
    if len(found) == 1:
        return found[0]
    picked = choose(found) if choose else None
    chosen = next((p for p in found if picked in (p.tenant_id, p.name)), None)
    if chosen is None:
        names = "; ".join(f"{p.name} (practice id {p.tenant_id})" for p in found)
        raise XpmOAuthError(
            f"This sign-in reaches several XPM practices: {names}. {WRONG_PRACTICE_WARNING} "
            "Connect again and say which, e.g. `xpm-sync connect --practice <practice id>`."
        )
    return chosen


def complete(
    settings: XpmSettings,
    engine: Engine,
    redirect_url: str,
    *,
    practice: str | None = None,
    choose: Chooser | None = None,
    acting_user: str | None = None,
    hold_for_choice: bool = False,
    http: requests.Session | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ConnectResult:
    """Finish a sign-in from the URL Xero redirected to; store the tokens for the chosen practice.

    `acting_user` (the XPM page's signed-in Airflow user) must be who started the sign-in. With
    `hold_for_choice`, a sign-in that reaches several practices keeps its tokens, encrypted, and
    raises `ChoiceNeeded`; `choose()` finishes it.
    """
    http = http or requests.Session()
    params = xero.callback_params(redirect_url)
    attempt, verifier = _claim_attempt(engine, settings, params["state"], clock(), acting_user)
    reply = xero.exchange(settings, http, params["code"], verifier, attempt.redirect_uri)
    tokens = TokenSet.from_reply(reply, clock())
    identity = xero.claims(str(reply.get("id_token", "")))
    person = identity.get("name") or identity.get("email") or attempt.requested_by or "unknown user"
    found = xero.practices_of(settings, http, tokens.access_token)
    if not found:
        xero.revoke_quietly(settings, http, tokens.refresh_token)
        raise refused(engine, settings, f"{person} signed in to Xero. {NO_PRACTICE}", acting_user or person)
    if hold_for_choice and len(found) > 1 and not practice:
        _hold(engine, attempt.state, tokens, found, person, identity.get("email"))
        raise ChoiceNeeded(attempt.state, found)
    chosen = _choose(found, choose, practice)
    return _store(settings, engine, attempt, chosen, tokens, person, identity.get("email"), http, clock(), acting_user)


def _hold(
    engine: Engine, state: str, tokens: TokenSet, found: list[xero.Practice], person: str, email: str | None
) -> None:
    held = json.dumps({"tokens": encrypt_tokens(tokens), "person": person, "email": email})
    with Session(writing(engine)) as session, session.begin():
        attempt = session.get(OAuthAttempt, state, with_for_update=True)
        if attempt is not None:
            attempt.pending_ciphertext = fernet().encrypt(held.encode()).decode()
            attempt.pending_practices = [
                {"tenant_id": p.tenant_id, "name": p.name, "connection_id": p.connection_id} for p in found
            ]


def choose(
    settings: XpmSettings,
    engine: Engine,
    state: str,
    tenant_id: str,
    *,
    acting_user: str | None,
    also: dict[str, str] | None = None,
    http: requests.Session | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ConnectResult:
    """Finish a held sign-in with the practice the administrator chose; `also` ({XPM practice id:
    connection id}) connects further practices of this deployment with the same sign-in, sharing its
    token set (one grant, refreshed once for all)."""
    http = http or requests.Session()
    now = clock()
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        attempt = _attempt(session, settings, state, acting_user)
        if attempt.pending_ciphertext is None or attempt.chosen_at is not None:
            raise XpmOAuthError("This sign-in was already used. Start again.")
        if now > attempt.expires_at:
            raise XpmOAuthError("This sign-in took too long and expired. Start again.")
        held = json.loads(fernet().decrypt(attempt.pending_ciphertext.encode()))
        found = [xero.Practice(**p) for p in attempt.pending_practices or []]
        attempt.chosen_at, attempt.pending_ciphertext = now, None
    tokens = decrypt_tokens(held["tokens"])
    chosen = next((p for p in found if p.tenant_id == tenant_id), None)
    further = _further(settings, found, tenant_id, also or {})
    if chosen is None or further is None:
        xero.revoke_quietly(settings, http, tokens.refresh_token)
        raise XpmOAuthError("That practice was not one this sign-in reached. Nothing was changed; start again.")
    result = _store(settings, engine, attempt, chosen, tokens, held["person"], held["email"], http, now, acting_user)
    for conn_id, other in further:
        _join(conn_id, other, engine, attempt, tokens, held, http, now, acting_user, result)
    return result


def _further(
    settings: XpmSettings, found: list[xero.Practice], tenant_id: str, also: dict[str, str]
) -> list[tuple[str, xero.Practice]] | None:
    """The further practices to connect, checked: each an XPM practice the sign-in reached (not the one
    chosen), each to a different practice of this deployment (not this one). None when one is not."""
    from xpm_sync import practices

    picked: list[tuple[str, xero.Practice]] = []
    for tenant, conn_id in also.items():
        other = next((p for p in found if p.tenant_id == tenant), None)
        if other is None or tenant == tenant_id or conn_id == settings.conn_id:
            return None
        try:
            practices.find(conn_id)  # a practice of this deployment
        except XpmError:
            return None
        picked.append((conn_id, other))
    if len({conn_id for conn_id, _ in picked}) != len(picked):
        return None
    return picked


def _join(
    conn_id: str,
    other: xero.Practice,
    engine: Engine,
    attempt: OAuthAttempt,
    tokens: TokenSet,
    held: dict[str, Any],
    http: requests.Session,
    now: datetime,
    acting_user: str | None,
    result: ConnectResult,
) -> None:
    """Connect a further practice of this deployment to the grant `result` stored, acting for it (its
    Practice Activity); a refusal is recorded there and in `result`, and the grant lives on."""
    from xpm_sync import practices
    from xpm_sync.oauth.connection_config import load

    with practices.using(practices.for_connection(conn_id)):
        try:
            joined = _store(
                load(conn_id), engine, attempt, other, tokens, held["person"], held["email"], http, now,
                acting_user, grant_id=result.grant_id,
            )  # fmt: skip
        except XpmOAuthError as exc:
            result.also_refused.append(f"{conn_id}: {exc}")
            return
    result.also.append((conn_id, joined))


def _store(
    settings: XpmSettings,
    engine: Engine,
    attempt: OAuthAttempt,
    chosen: xero.Practice,
    tokens: TokenSet,
    person: str,
    email: str | None,
    http: requests.Session,
    now: datetime,
    acting_user: str | None = None,
    grant_id: int | None = None,
) -> ConnectResult:
    """Store the tokens for `chosen`: in a new grant, or, for a further practice of the same sign-in, in
    the grant `grant_id` the first one stored (`ConnectResult.grant_id`). Practice Activity names who
    acted: the Airflow user on the XPM page, else the person who signed in to Xero."""
    who = acting_user or person
    held_back = (
        _pinned_elsewhere(engine, settings, chosen, person)
        if not attempt.switch_practice
        else _taken_by_another(engine, settings, chosen, person)
    )
    if held_back:
        if grant_id is None:  # a further practice's refusal leaves the grant others already use
            xero.revoke_quietly(settings, http, tokens.refresh_token)  # outside any transaction: Xero may be slow
        raise refused(engine, settings, held_back, who)
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        rows = session.scalars(select(XpmConnection).where(XpmConnection.conn_id == settings.conn_id)).all()
        taken = session.scalars(
            select(XpmConnection.conn_id).where(
                XpmConnection.tenant_id == chosen.tenant_id,
                XpmConnection.active.is_(True),
                XpmConnection.conn_id != settings.conn_id,
            )
        ).first()
        if taken:  # another practice here connected it meanwhile
            raise XpmOAuthError(f"Another practice here ({taken}) took {chosen.name!r} meanwhile. Nothing changed.")
        current = next((r for r in rows if r.active), None)
        pinned = current.tenant_id if current else settings.pinned_tenant_id
        switched = bool(pinned and pinned != chosen.tenant_id)
        if switched and not attempt.switch_practice:  # pinned meanwhile by another sign-in
            raise XpmOAuthError("Another sign-in connected a practice meanwhile. Nothing was changed; start again.")
        old_grant = current.grant_id if current else None
        reconnected = bool(current and current.tenant_id == chosen.tenant_id)
        was_broken = bool(reconnected and current and current.status == ConnectionStatus.NEEDS_RECONNECT.value)
        for r in rows:
            r.active = False
        row = next((r for r in rows if r.tenant_id == chosen.tenant_id), None)
        if row is None:
            row = XpmConnection(conn_id=settings.conn_id, tenant_id=chosen.tenant_id, version=0)
            session.add(row)
        row.active = True
        row.tenant_name = chosen.name
        row.xero_connection_id = chosen.connection_id
        row.auth_event_id = xero.claims(tokens.access_token).get("authentication_event_id")
        row.status = ConnectionStatus.CONNECTED.value
        if grant_id is None:
            grant = XpmGrant(
                token_ciphertext=encrypt_tokens(tokens),
                auth_event_id=row.auth_event_id,
                access_expires_at=tokens.expires_at,
                refresh_issued_at=now,
            )
            session.add(grant)
            session.flush()
            grant_id = grant.id
        row.grant_id = grant_id
        row.scopes = tokens.scope
        row.connected_at = now
        row.connected_by, row.connected_by_email = person, email
        row.last_error = row.last_error_at = None
        row.alert_sent_at = None
        row.missing_scopes = None  # what this consent granted is known afresh
        row.version = (row.version or 0) + 1
        if switched:
            message = (
                f"XPM practice switched from {current.tenant_name if current else pinned} to {chosen.name} by {who}"
            )
        elif reconnected:
            message = f"XPM connection reset by {who}"
        else:
            message = f"XPM connected to {chosen.name} by {who}"
        activity.record(
            session,
            ActivityStatus.SUCCESS,
            "Connection",
            message,
            details={
                "practice": chosen.name,
                "tenant_id": chosen.tenant_id,
                "requested_by": attempt.requested_by,
                "xero_user": person,
            },
            actor=attempt.requested_by or person,
            tenant_id=chosen.tenant_id,
        )
    if old_grant is not None and old_grant != grant_id:
        _retire_if_unused(settings, engine, old_grant, http)
    return ConnectResult(chosen.tenant_id, chosen.name, person, reconnected, switched, was_broken, grant_id)


def _retire_if_unused(settings: XpmSettings, engine: Engine, grant_id: int, http: requests.Session) -> None:
    """Forget a grant no practice points at any more, and revoke it at Xero (after the commit: Xero may
    be slow). A grant another practice still uses is left alone: revoking it would cut that one off."""
    refresh_token = None
    with Session(writing(engine)) as session, session.begin():
        grant = session.get(XpmGrant, grant_id, with_for_update=True)
        if grant is None or sharing(session, grant_id) or not grant.token_ciphertext:
            return
        try:
            refresh_token = decrypt_tokens(grant.token_ciphertext).refresh_token
        except Exception:
            log.warning("A retired grant's tokens could not be read to revoke them")
        grant.token_ciphertext = None
        grant.version += 1
    if refresh_token:
        xero.revoke_quietly(settings, http, refresh_token)


def disconnect(
    settings: XpmSettings,
    engine: Engine,
    *,
    access_token: str | None,
    requested_by: str | None,
    http: requests.Session | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> str | None:
    """Forget the practice's tokens here, then drop its connection at Xero and revoke the grant unless
    another practice here still uses it.
    The tokens are forgotten first, in a transaction of their own; Xero is called after it commits,
    so no database lock waits on Xero's answer (and a failure there leaves nothing usable here)."""
    http = http or requests.Session()
    with Session(writing(engine), expire_on_commit=False) as session, session.begin():
        row = session.scalars(active_connection(settings.conn_id)).first()
        if row is None:
            return None
        xero_connection_id = row.xero_connection_id
        grant_id = row.grant_id
        row.status = ConnectionStatus.DISCONNECTED.value
        row.grant_id = None
        row.version += 1
        activity.record(
            session,
            ActivityStatus.SUCCESS,
            "Connection",
            f"XPM disconnected from {row.tenant_name} by {requested_by or 'unknown user'}",
            actor=requested_by,
            tenant_id=row.tenant_id,
        )
        name = row.tenant_name
    if access_token and xero_connection_id:
        try:
            http.delete(
                f"{settings.connections_url.rstrip('/')}/{xero_connection_id}",
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=15,
            )
        except requests.RequestException:
            log.warning("Could not remove the practice's connection at Xero")
    if grant_id is not None:
        _retire_if_unused(settings, engine, grant_id, http)  # other practices on the grant keep it
    return name
