"""Benchmark: the sandbox serving a 20,000-client practice's big lists over loopback HTTP.

Run: .venv/bin/python bench/sandbox_serve.py
"""

from __future__ import annotations

import time

import requests
from tests.xpm_sandbox.conftest import connect

from xpm_sandbox.server import SandboxServer


def main() -> None:
    with SandboxServer(clients=20_000, jobs=100_000) as srv:
        srv.sandbox.identity.access_lifetime = srv.sandbox.identity.access_lifetime * 100
        conn = connect(srv)
        for path in (
            "client.api/list?detailed=true",
            "job.api/current?detailed=true",
            "job.api/list?from=20250101&to=20251231",
        ):
            started = time.perf_counter()
            size = 0
            with requests.get(conn.api + path, headers=conn.headers(), stream=True, timeout=300) as reply:
                for chunk in reply.iter_content(1 << 16):
                    size += len(chunk)
            took = time.perf_counter() - started
            print(f"{path:<45} {size / 1e6:7.1f} MB  {took:5.2f} s  {size / 1e6 / took:6.1f} MB/s")


if __name__ == "__main__":
    main()
