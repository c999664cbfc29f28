"""Benchmark: how long the command line takes to answer, as a person runs it in a plain shell.

Each command runs `--runs` times as a new process of the installed `xpm-sync`, with an empty HOME
and no AIRFLOW_HOME (`--help`, a usage error), and, when a finished demo is here, `status` with the
demo's environment (`.demo/env`), which does need Airflow's configuration. Reported: the median and
the slowest wall-clock seconds, and whether anything appeared under HOME.

Run: .venv/bin/python bench/cli_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
XPM_SYNC = REPO / ".venv" / "bin" / "xpm-sync"


def _demo_env() -> dict[str, str] | None:
    env_file = REPO / ".demo" / "env"
    if not env_file.exists():
        return None
    env: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        words = shlex.split(line)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep:
                env[name] = value
    return env


def _time(args: list[str], env: dict[str, str], runs: int) -> tuple[float, float, int]:
    seconds = []
    code = 0
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.run([str(XPM_SYNC), *args], env=env, capture_output=True, check=False).returncode
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), max(seconds), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as home:
        plain = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
        print(f"{'command':<28} {'median s':>9} {'slowest s':>10} {'exit':>5}")
        for args in (["--help"], ["frobnicate"]):
            median, slowest, code = _time(args, plain, runs)
            print(f"{' '.join(args):<28} {median:>9.2f} {slowest:>10.2f} {code:>5}")
        created = sorted(str(p.relative_to(home)) for p in Path(home).rglob("*"))
        print(f"created under an empty HOME: {created or 'nothing'}")
        demo = _demo_env()
        if demo is None:
            print("status: no finished demo here (run `make demo` first)")
            return
        median, slowest, code = _time(["status"], {**plain, **demo}, runs)
        print(f"{'status (demo environment)':<28} {median:>9.2f} {slowest:>10.2f} {code:>5}")


if __name__ == "__main__":
    main()
