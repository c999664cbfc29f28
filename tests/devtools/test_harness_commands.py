"""The developer harness's own rules: how its long-running commands stop, and where its
browser stand-in may sign in."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xpm_sandbox.browser import SignInRefused, sign_in

# A long-running command as the harness writes one: work inside stopped_by_signals, cleanup in finally.
LONG_RUNNING = """
import sys, time
from pathlib import Path
from xpm_devtools.stopping import stopped_by_signals

marker = Path(sys.argv[1])
try:
    with stopped_by_signals():
        try:
            print("running", flush=True)
            while True:
                time.sleep(0.1)
        finally:
            marker.write_text("cleaned up")
except KeyboardInterrupt as exc:
    print(f"stopped by {exc}", flush=True)
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a script's background job starts


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
@pytest.mark.parametrize("started_with_sigint_ignored", [False, True], ids=["foreground", "background-job"])
def test_every_stop_signal_cleans_up(tmp_path: Path, sent: signal.Signals, started_with_sigint_ignored: bool):
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", LONG_RUNNING, str(marker)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if started_with_sigint_ignored else None,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(sent)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.strip() == f"stopped by {sent.name}"
    assert marker.read_text() == "cleaned up"


def test_a_second_signal_does_not_cut_the_cleanup_short(tmp_path: Path):
    marker = tmp_path / "marker"
    slow_cleanup = LONG_RUNNING.replace(
        'marker.write_text("cleaned up")', 'time.sleep(1); marker.write_text("cleaned up")'
    )
    proc = subprocess.Popen([sys.executable, "-c", slow_cleanup, str(marker)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # an impatient Ctrl-C while the services are being stopped
    proc.communicate(timeout=30)
    assert marker.read_text() == "cleaned up"


def test_the_browser_stand_in_signs_in_only_at_a_sandbox_on_this_machine():
    with pytest.raises(SignInRefused, match="login.xero.com is not a sandbox on this machine"):
        sign_in("https://login.xero.com/identity/connect/authorize?client_id=x", "admin@harbourview.example")


# A service that stops as Airflow's scheduler does (SystemExit from its SIGTERM handler), with the
# signal landing inside a garbage-collection callback: the window the scheduler met on CI.
SWALLOWED_STOP = """
import os, signal, sys, time, weakref
if sys.argv[1] == "launcher":
    from xpm_devtools.airflow_process import install
    install()
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

class Session: pass

def collected(ref):
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(100_000): pass  # the handler runs in here, where Python cannot raise

session = Session()
ref = weakref.ref(session, collected)
del session
time.sleep(3)
print("kept running after the stop", flush=True)
sys.exit(3)
"""


def test_a_stop_swallowed_by_a_collection_callback_is_sent_again_by_the_launcher():
    plain = subprocess.run([sys.executable, "-c", SWALLOWED_STOP, "plain"], capture_output=True, text=True, timeout=30)
    # Python's own behaviour: the stop is reported as ignored, and the process carries on.
    assert plain.returncode == 3
    assert "kept running after the stop" in plain.stdout
    assert "Traceback" in plain.stderr
    assert "SystemExit: 0" in plain.stderr

    launched = subprocess.run(
        [sys.executable, "-c", SWALLOWED_STOP, "launcher"], capture_output=True, text=True, timeout=30
    )
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert "kept running" not in launched.stdout
    assert "Traceback" not in launched.stderr
    assert "stop signal arrived inside a garbage-collection callback; sending it again" in launched.stderr
