"""Getting the redirect back from Xero: a one-shot loopback listener, or a pasted URL."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TypeVar
from urllib.parse import urlsplit

from xpm_sync.errors import XpmOAuthError

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
T = TypeVar("T")


def is_loopback(redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS and parts.port is not None


def wait_for_redirect(
    redirect_uri: str,
    finish: Callable[[str], T],
    *,
    describe: Callable[[T], str],
    timeout: float = 300,
) -> T:
    """Listen once on the redirect URI's loopback port for Xero's redirect, finish the connection with
    it, and tell the browser how that went (connected, or why not). Return what `finish` returned;
    raise what it raised."""
    parts = urlsplit(redirect_uri)
    outcome: list[T] = []
    failure: list[Exception] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != parts.path:
                self.send_error(404)
                return
            try:
                outcome.append(finish(f"{parts.scheme}://{parts.netloc}{self.path}"))
                title, text = "XPM is connected", describe(outcome[0]) + " You can close this window."
            except Exception as exc:
                failure.append(exc)
                title, text = "XPM was not connected", str(exc)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            page = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
            self.wfile.write((page + f"<p>{html.escape(text)}</p>").encode())

        def log_message(self, *args: object) -> None:
            return

    host = "127.0.0.1" if parts.hostname == "localhost" else (parts.hostname or "127.0.0.1")
    server = HTTPServer((host, parts.port or 80), Handler)
    server.timeout = 1
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        while not (outcome or failure) and not stop.is_set():
            server.handle_request()
    finally:
        timer.cancel()
        server.server_close()
    if failure:
        raise failure[0]
    if not outcome:
        raise XpmOAuthError(f"No sign-in came back to {redirect_uri} within {timeout:.0f} s. Start again.")
    return outcome[0]
