"""Getting the redirect back from Xero: a one-shot loopback listener, a pasted URL, or the sandbox."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

import requests

from xpm_sync.errors import XpmOAuthError
from xpm_sync.oauth.settings import XpmSettings

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def is_loopback(redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS and parts.port is not None


def wait_for_redirect(redirect_uri: str, timeout: float = 300) -> str:
    """Listen once on the redirect URI's loopback port; return the full URL Xero sent the browser to."""
    parts = urlsplit(redirect_uri)
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != parts.path:
                self.send_error(404)
                return
            received.append(f"{parts.scheme}://{parts.netloc}{self.path}")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"<h1>xpm-sync</h1><p>Sign-in received. You can close this window.</p>")

        def log_message(self, *args: object) -> None:
            return

    host = "127.0.0.1" if parts.hostname == "localhost" else (parts.hostname or "127.0.0.1")
    server = HTTPServer((host, parts.port or 80), Handler)
    server.timeout = 1
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        while not received and not stop.is_set():
            server.handle_request()
    finally:
        timer.cancel()
        server.server_close()
    if not received:
        raise XpmOAuthError(f"No sign-in came back to {redirect_uri} within {timeout:.0f} s. Start again.")
    return received[0]


def sandbox_consent(settings: XpmSettings, authorize_url: str, user: str) -> str:
    """Complete consent as a seeded sandbox user (the sandbox's control API); never against Xero."""
    if settings.is_xero:
        raise XpmOAuthError("--sandbox-user works only against the XPM sandbox, not Xero's real sign-in.")
    reply = requests.post(
        f"{settings.identity_url.rstrip('/')}/_sandbox/consent",
        json={"authorize_url": authorize_url, "user": user},
        timeout=30,
    )
    if reply.status_code != 200:
        raise XpmOAuthError(f"The sandbox refused the sign-in: {reply.text[:200]}")
    return str(reply.json()["redirect"])
