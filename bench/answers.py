"""XPM's answers for a full sync's client and job lists, saved to disk once and reused.

`saved(clients, jobs)` makes a sandbox practice of that size, fetches the detailed client list, the
yearly job lists from 2022 and the current job list (day 1), runs the sandbox's "next day" changing
2% of the practice and fetches them again (day 2). The folder (`/tmp/xpm-bench-answers-C-J` unless
given) holds `day1/`, `day2/` and `answers.json`, which names each file and its kind in the order a
full sync reads them, and is reused by later runs of the same size.

Run alone to fill the cache: .venv/bin/python bench/answers.py [--clients 20000] [--jobs 100000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

YEARS = range(2022, 2027)


def _fetch(url: str, headers: dict[str, str], folder: Path) -> list[dict[str, str]]:
    import requests

    wanted = [("clients", "client.api/list", {"detailed": "true"})]
    wanted += [("jobs", "job.api/list", {"from": f"{y}0101", "to": f"{y}1231", "detailed": "true"}) for y in YEARS]
    wanted.append(("jobs", "job.api/current", {"detailed": "true"}))
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for number, (kind, path, params) in enumerate(wanted):
        name = f"{number}-{kind}.xml"
        with requests.get(
            f"{url}/practicemanager/3.1/{path}", params=params, headers=headers, timeout=600, stream=True
        ) as reply:
            reply.raise_for_status()
            with (folder / name).open("wb") as out:
                for chunk in reply.iter_content(1 << 20):
                    out.write(chunk)
        request = path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        saved.append({"kind": kind, "file": name, "request": request})
    return saved


def saved(clients: int, jobs: int, folder: Path | None = None) -> Path:
    """The folder of saved answers for a practice of this size (made if missing)."""
    folder = folder or Path(tempfile.gettempdir()) / f"xpm-bench-answers-{clients}-{jobs}"
    manifest = folder / "answers.json"
    if manifest.exists():
        return folder
    from common import connect, control, start_sandbox, store
    from xpm_sync.oauth.connection_config import load as load_settings
    from xpm_sync.oauth.tokens import TokenStore

    proc, url = start_sandbox(clients, jobs)
    try:
        engine = connect(url, store("sqlite"))
        tokens = TokenStore(load_settings("xpm_default"), engine)
        headers = {"Authorization": f"Bearer {tokens.access_token()}", "xero-tenant-id": tokens.tenant_id()}
        day1 = _fetch(url, headers, folder / "day1")
        changes = control(url, "next-day", {"share": 0.02})
        day2 = _fetch(url, headers, folder / "day2")
    finally:
        proc.terminate()
    info: dict[str, Any] = {
        "clients": clients,
        "jobs": jobs,
        "answers": day1,
        "day2": day2,
        "mb": round(sum((folder / "day1" / a["file"]).stat().st_size for a in day1) / 1e6, 1),
        "next_day_changes": {k: (v if isinstance(v, int) else len(v)) for k, v in changes.items()},
    }
    manifest.write_text(json.dumps(info, indent=1))
    return folder


def manifest(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "answers.json").read_text()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    where = saved(args.clients, args.jobs)
    about = {k: v for k, v in manifest(where).items() if k not in ("answers", "day2")}
    print(json.dumps({"folder": str(where), **about}))
