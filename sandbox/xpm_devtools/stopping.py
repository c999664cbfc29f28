"""Stopping the harness's long-running commands (`make airflow`, `make stack`) the same way whatever
stops them: Ctrl-C, `kill` (SIGTERM) or a closed terminal (SIGHUP)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Inside, each of SIGNALS raises KeyboardInterrupt, so the caller's `finally` cleans up.

    Also when this process was started with SIGINT ignored, as a background job of a script is:
    Python then would not turn Ctrl-C into KeyboardInterrupt at all. Once one has arrived, the
    others are ignored until the cleanup is done (`kill -9` still stops everything at once).
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        for each in SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {each: signal.signal(each, stop) for each in SIGNALS}
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
