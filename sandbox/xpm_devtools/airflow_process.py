"""`python -m xpm_devtools.airflow_process ARGS` runs `airflow ARGS`, for the services `make airflow`
and `make stack` start, so that one SIGTERM stops each of them for sure.

Airflow's scheduler stops by raising SystemExit from its SIGTERM handler. A signal handler runs
wherever the main thread is, and when that is a garbage-collection callback (SQLAlchemy registers
some), Python cannot raise from there: it prints "Exception ignored in ..." with a traceback, and
the scheduler carries on until it is killed. Here a stop swallowed that way is sent again, so it
lands at the next ordinary step, and the log says so in one line instead of a traceback.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
from typing import Any

SWALLOWED = "stop signal arrived inside a garbage-collection callback; sending it again"


def _stop_again(owner: int) -> Any:
    def hook(unraisable: Any) -> None:
        if os.getpid() == owner and isinstance(unraisable.exc_value, (SystemExit, KeyboardInterrupt)):
            print(f"xpm-devtools: {SWALLOWED}", file=sys.stderr, flush=True)
            # Not from here: a handler run inside this hook would be swallowed the same way.
            threading.Timer(0.05, os.kill, (owner, signal.SIGTERM)).start()
            return
        sys.__unraisablehook__(unraisable)  # anything else, and in forked children, as Python would

    return hook


def install() -> None:
    """From here on, a stop signal swallowed by a callback in this process is sent again."""
    sys.unraisablehook = _stop_again(os.getpid())


def main(argv: list[str]) -> None:
    install()
    sys.argv = ["airflow", *argv]
    runpy.run_module("airflow", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
