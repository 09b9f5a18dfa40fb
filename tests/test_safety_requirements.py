"""Install what each command needs: every package the app and the CLI import is declared in requirements.txt; the
tests' and benchmarks' packages only in requirements-dev.txt, which `make app` does not install."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_ONLY = {"pytest", "pytest-timeout", "playwright", "psutil"}


def declared(file: str) -> set[str]:
    names = set()
    for line in (ROOT / file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(_norm(re.split(r"[=<>~!\[; ]", line)[0]))
    return names


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(files) -> set[str]:
    """Top-level modules imported anywhere in ``files`` (functions included), stdlib and artlab left out."""
    out = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
    return {m for m in out if m not in sys.stdlib_module_names and m != "artlab"}


def runtime_files():
    """artlab/, app.py and pages/; artlab/testing/ (the tests' and benchmarks' Streamlit protocol client, which
    nothing in artlab imports: tests/test_layers.py) is for the tests, so its packages are requirements-dev.txt's."""
    testing = ROOT / "artlab" / "testing"
    return [*sorted(p for p in (ROOT / "artlab").rglob("*.py") if testing not in p.parents), ROOT / "app.py",
            *sorted((ROOT / "pages").glob("*.py"))]


def test_the_test_client_s_packages_are_declared_for_the_tests():
    dists = importlib.metadata.packages_distributions()
    dev = declared("requirements-dev.txt") | declared("requirements.txt")
    client = sorted((ROOT / "artlab" / "testing").rglob("*.py"))
    assert client, "artlab/testing/ moved: update runtime_files"
    missing = {m: sorted(dists.get(m, [])) for m in imported_modules(client)
               if not {_norm(d) for d in dists.get(m, [])} & dev}
    assert not missing, f"imported by artlab/testing but not in requirements-dev.txt: {missing}"


def test_every_package_the_app_and_cli_import_is_declared():
    dists = importlib.metadata.packages_distributions()
    runtime = declared("requirements.txt")
    missing = {}
    for module in imported_modules(runtime_files()):
        owners = {_norm(d) for d in dists.get(module, [])}
        assert owners, f"no installed distribution provides {module!r}"
        if not owners & runtime:
            missing[module] = sorted(owners)
    assert not missing, f"imported but not in requirements.txt: {missing}"


def test_test_tools_are_kept_out_of_the_runtime():
    runtime, dev = declared("requirements.txt"), declared("requirements-dev.txt")
    assert not runtime & TEST_ONLY and TEST_ONLY <= dev
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    assert not imported_modules(runtime_files()) & {"pytest", "playwright", "psutil", "_pytest"}
    app = subprocess.run(["make", "-n", "-B", "app"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    test = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "requirements-dev.txt" not in app and "-r requirements.txt" in app
    assert "requirements-dev.txt" in test
