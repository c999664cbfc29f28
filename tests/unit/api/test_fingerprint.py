"""Fingerprints are the same in every process: each Airflow task is a new one, and a stored
fingerprint that the next night's process cannot reproduce makes every row look changed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from xpm_sync.api import fingerprint

CLIENT = b"<Client><UUID>0b7c1a</UUID><Name>Harbour Cafe</Name><Phone>09 555 0101</Phone></Client>"
_PRINT = (
    "import sys; from xpm_sync.api import fingerprint as f; "
    "print(f._SALT.hex(), f.digest(sys.stdin.buffer.read()).hex(), f.field_maps_signature().count(chr(10)))"
)


def _in_a_new_process(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO / "include")}
    done = subprocess.run(
        [sys.executable, "-c", _PRINT], input=CLIENT, capture_output=True, env=env, check=True, cwd=REPO
    )
    return done.stdout.decode().strip()


@pytest.mark.parametrize(
    "seeds", [pytest.param(("0", "1"), id="hash-seeds-0-1"), pytest.param(("2", "random"), id="2-random")]
)
def test_a_fingerprint_is_the_same_in_separate_processes(seeds: tuple[str, str]) -> None:
    lines = fingerprint.field_maps_signature().count("\n")
    here = f"{fingerprint._SALT.hex()} {fingerprint.digest(CLIENT).hex()} {lines}"
    assert [_in_a_new_process(seed) for seed in seeds] == [here, here]


def test_the_salt_is_built_from_declared_text_only() -> None:
    signature = fingerprint.field_maps_signature()
    # Names of fields, columns and converters; no object reprs, which carry memory addresses.
    assert " at 0x" not in signature
    assert "client.phone=phone:as_text" in signature
    assert "job.budget=budget:as_decimal" in signature


def test_a_changed_field_map_changes_the_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    from xpm_sync.api import records

    before = fingerprint.field_maps_signature()
    monkeypatch.setitem(records.JOB, "priority", ("priority", records.as_text))
    assert fingerprint.field_maps_signature() != before
