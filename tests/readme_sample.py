"""The README's sample of what `make demo` prints, kept true by the demo itself.

`tests/e2e/test_demo.py` runs `make demo` in a fresh copy and fails when the README's sample no
longer has the shape of what the demo printed (the same lines and words; numbers, times and ids may
differ). To refresh the sample's figures from a run of your own:

    make demo | tee /tmp/demo.txt
    .venv/bin/python -m tests.readme_sample /tmp/demo.txt      # rewrites the sample in README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START = "== Connecting XPM"  # the sample starts at this step of the demo
END = "To use the demo from this shell:"  # and ends with this line
_WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z]{2,5}")
_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
_NUMBER = re.compile(r"\d[\d,]*(\.\d+)?")
_PATH = re.compile(r"/\S*/\.demo/")


def shape(line: str) -> str:
    """A line with what changes from run to run (times, ids, counts, the checkout's path) blanked."""
    line = _WHEN.sub("<when>", line)
    line = _ID.sub("<id>", line)
    line = _PATH.sub(".../.demo/", line)
    line = _NUMBER.sub("N", line)
    return " ".join(line.split())


def printed(output: str) -> list[str]:
    """The part of the demo's output the README shows, as the README shows it."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(START))
    end = next(i for i, line in enumerate(lines) if line.startswith(END))
    return [_PATH.sub(".../.demo/", line.rstrip()) for line in lines[start : end + 1]]


def sample(readme: str) -> tuple[int, int]:
    """Where the sample's lines are in the README (first and last line numbers, 0-based)."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(START))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(END))
    return start, end


def _same(a: str, b: str) -> bool:
    """Two shaped lines alike; a line the demo cut short ("...") matches on the words both show."""
    if a == b:
        return True
    if not (a.endswith("...") or b.endswith("...")):
        return False
    words_a, words_b = a.removesuffix("...").split(), b.removesuffix("...").split()
    shorter, longer = sorted((words_a, words_b), key=len)
    return longer[: len(shorter) - 1] == shorter[:-1]


def _is_entry(line: str) -> bool:
    return line.startswith("<when>")


def mismatches(readme: str, output: str) -> list[str]:
    """How the README's sample differs in shape from the demo's output; [] when it matches. The
    Practice Activity entries are compared as a set: tasks that run side by side finish in either
    order."""
    start, end = sample(readme)
    shown = [shape(line) for line in readme.splitlines()[start : end + 1]]
    ran = [shape(line) for line in printed(output)]
    found = []
    steps_shown, steps_ran = [x for x in shown if not _is_entry(x)], [x for x in ran if not _is_entry(x)]
    found += [f"README: {a!r}\n  demo: {b!r}" for a, b in zip(steps_shown, steps_ran, strict=False) if a != b]
    if len(steps_shown) != len(steps_ran):
        found.append(f"the README shows {len(steps_shown)} lines, the demo printed {len(steps_ran)}")
    unmatched = [x for x in ran if _is_entry(x)]
    for entry in (x for x in shown if _is_entry(x)):
        match = next((y for y in unmatched if _same(entry, y)), None)
        if match is None:
            found.append(f"README entry not printed by the demo: {entry!r}")
        else:
            unmatched.remove(match)
    found += [f"demo entry not in the README: {y!r}" for y in unmatched]
    return found


def status_mismatches(readme: str, output: str) -> list[str]:
    """How the README's `xpm-sync status` sample differs in shape from a real `status` output."""
    lines = readme.splitlines()
    start = lines.index("$ xpm-sync status") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    shown, ran = [shape(x) for x in lines[start:end]], [shape(x) for x in output.strip().splitlines()]
    return [] if shown == ran else [f"README: {shown}\n  status: {ran}"]


def rewrite(output: str) -> None:
    text = README.read_text()
    lines = text.splitlines()
    start, end = sample(text)
    README.write_text("\n".join([*lines[:start], *printed(output), *lines[end + 1 :]]) + "\n")


if __name__ == "__main__":
    rewrite(Path(sys.argv[1]).read_text())
    print(f"README.md's demo sample rewritten from {sys.argv[1]}")
