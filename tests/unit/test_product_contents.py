"""The product ships only the product: its wheel holds no sandbox, developer harness, test or bench
module, and nothing in `include/xpm_sync`, the DAG files or the plugin imports one."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO

NOT_PRODUCT = ("xpm_sandbox", "xpm_devtools", "tests", "bench", "aiosmtpd", "psutil", "dotenv", "defusedxml")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_nothing_the_product_runs_imports_the_harness_tests_or_benchmarks():
    files = [
        *(REPO / "include" / "xpm_sync").rglob("*.py"),
        *(REPO / "dags").glob("*.py"),
        *(REPO / "plugins").glob("*.py"),
    ]
    offending = {str(p.relative_to(REPO)): sorted(_imports(p) & set(NOT_PRODUCT)) for p in files}
    assert {p: m for p, m in offending.items() if m} == {}
    assert len(files) > 40  # the walk saw the package


def test_the_products_wheel_holds_only_the_product(tmp_path: Path):
    source = tmp_path / "xpm-sync"  # what `pip install .` builds from, copied: the build leaves nothing here
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "include", source / "include", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("xpm_sync-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"xpm_sync"}, tops
    assert "xpm_sync/web/templates/page.html" in names  # the page's files come with it
