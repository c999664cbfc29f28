"""Run the sandbox over real HTTP: in a background thread (tests, demo) or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from xpm_sandbox.app import API_PREFIX, create_app
from xpm_sandbox.state import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def connection_extras(base_url: str) -> dict[str, str]:
    """The `xpm` connection extras that point xpm-sync at a sandbox at `base_url`."""
    return {
        "identity_url": base_url,
        "authorize_url": f"{base_url}/identity/connect/authorize",
        "connections_url": f"{base_url}/connections",
        "api_url": f"{base_url}{API_PREFIX}",
    }


class SandboxServer:
    """A sandbox served by uvicorn on a loopback port, in a daemon thread."""

    def __init__(
        self, sandbox: Sandbox | None = None, *, host: str = "127.0.0.1", port: int = 0, **kwargs: Any
    ) -> None:
        self.sandbox = sandbox or Sandbox(**kwargs)
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(
            create_app(self.sandbox),
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="xpm-sandbox", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def client_id(self) -> str:
        return SANDBOX_CLIENT_ID

    @property
    def client_secret(self) -> str:
        return SANDBOX_CLIENT_SECRET

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the XPM sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()


def serve(*, host: str, port: int, per_minute: int = 60, **kwargs: Any) -> None:
    """Serve a sandbox in the foreground until interrupted, printing how to reach it."""
    sandbox = Sandbox(**kwargs)
    sandbox.gateway.limits.per_minute = per_minute
    url = f"http://{host}:{port}"
    print(f"XPM sandbox at {url}", flush=True)
    main = sandbox.main
    print(f"  practice: {main.name} ({main.tenant_id}), {len(main.clients)} clients, {len(main.jobs)} jobs")
    print(f"  client id: {SANDBOX_CLIENT_ID}  (secret: see the README; sandbox only)")
    if per_minute != 60:
        print(f"  rate limit: {per_minute} calls a minute (XPM allows 60)")
    for key, value in connection_extras(url).items():
        print(f"  {key}: {value}")
    print(flush=True)
    # A hung request (the "hang" fault) must not keep the process alive after SIGTERM.
    uvicorn.run(
        create_app(sandbox),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
