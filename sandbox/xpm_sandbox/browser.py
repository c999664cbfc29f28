"""The person at the browser, for the sandbox's sign-in only.

Given the address xpm-sync sends a person to, log in as one of the sandbox's seeded users, allow
access, and return the address Xero would send the browser back to. Xero's real sign-in has no
such door: `xpm-dev connect` and the tests use this; xpm-sync itself never does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class SignInRefused(Exception):
    """The sandbox would not complete the sign-in (as Xero would show an error page)."""


def sign_in(authorize_url: str, user: str, *, timeout: float = 30) -> str:
    """Complete consent at the sandbox that `authorize_url` points at; the redirect address."""
    parts = urlsplit(authorize_url)
    if parts.hostname not in LOOPBACK:
        raise SignInRefused(
            f"{parts.hostname} is not a sandbox on this machine: sign in there with a browser, as a person would."
        )
    reply = requests.post(
        f"{parts.scheme}://{parts.netloc}/_sandbox/consent",
        json={"authorize_url": authorize_url, "user": user},
        timeout=timeout,
    )
    if reply.status_code != 200:
        raise SignInRefused(f"The sandbox refused the sign-in: {reply.text[:200]}")
    return str(reply.json()["redirect"])
