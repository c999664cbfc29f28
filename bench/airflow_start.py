"""`make airflow` from a finished demo: seconds until Airflow's UI answers, and any traceback it prints.

Run from a checkout whose `make demo` has finished (it reuses that demo):

    .venv/bin/python bench/airflow_start.py [--port 8093]

Prints the seconds from `make airflow` to the first answer of Airflow's UI (`GET /` 200) and of the
XPM page's sign-in redirect, then stops it with Ctrl-C (SIGINT), as a person would, and says whether
"Traceback" appears in what it printed or in `.demo/logs/`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--wait", type=float, default=30, help="seconds to keep it running once it answers")
    args = parser.parse_args()
    logs = ROOT / ".demo" / "logs"
    sizes = {p: p.stat().st_size for p in logs.glob("*.log")} if logs.exists() else {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "airflow", f"PORT={args.port}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    ui = None
    while time.monotonic() - started < 300 and proc.poll() is None:
        try:
            if requests.get(f"http://localhost:{args.port}/", timeout=2).status_code == 200:
                ui = time.monotonic() - started
                break
        except requests.RequestException:
            pass
        time.sleep(0.25)
    time.sleep(args.wait)  # what starts once it answers: the scheduled runs, the health check
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    new_logs = ""
    for path in sorted(logs.glob("*.log")):
        with path.open() as f:
            f.seek(sizes.get(path, 0))
            new_logs += f.read()
    print(out)
    print(f"UI answered after {ui:.1f} s" if ui is not None else "UI never answered")
    print(f"make airflow exit code after Ctrl-C: {proc.returncode}")
    print(f"'Traceback' in its output: {out.count('Traceback')}; in .demo/logs since it started: "
          f"{new_logs.count('Traceback')}")  # fmt: skip
    return 0 if ui is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
