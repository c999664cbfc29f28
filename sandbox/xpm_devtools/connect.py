"""`xpm-dev connect`: run the product's `xpm-sync connect --paste` and play the person at the browser.

The command line prints Xero's sign-in address and asks for the address the browser was sent back
to; here the sandbox signs in as a seeded user and that address is typed in. Everything after (the
wording, the exit code, the sync started after) is the product's own, printed as it comes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

import requests

from xpm_sandbox.browser import SignInRefused, sign_in
from xpm_sync.cli import PASTE_PROMPT


def run(user: str, connect_args: Sequence[str]) -> int:
    """`xpm-sync connect --paste <connect_args>`, signing in as `user`; the product's exit code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpm_sync.cli", "connect", "--paste", *connect_args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    before: list[str] = []  # the sign-in instructions, shown only if no sign-in address follows
    try:
        for line in proc.stdout:
            address = line.strip()
            if not address.startswith(("http://", "https://")):
                before.append(line)
                continue
            try:
                redirect = sign_in(address, user)
            except (SignInRefused, requests.RequestException) as exc:
                proc.kill()  # it waits for an address that will not come
                print(f"xpm-dev connect: {exc}", file=sys.stderr)
                return 2
            print(f"Signed in at the sandbox as {user}; the address it sent the browser to was pasted.")
            proc.stdin.write(redirect + "\n")
            proc.stdin.close()
            break
        else:
            sys.stdout.write("".join(before))
        rest = proc.stdout.read()
        sys.stdout.write(rest.split(PASTE_PROMPT, 1)[-1])
        sys.stdout.flush()
    finally:
        code = proc.wait()
    return code
