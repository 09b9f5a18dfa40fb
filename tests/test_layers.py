"""The house rules of artlab's layout (docs/design.md), read from the source with ast: each folder knows only the
ones below it, only the app package (and the test helpers of artlab/testing) imports Streamlit, nothing below the app and the CLI imports a collection
builder, no import circle, no module over 400 lines. And the one Streamlit internal the app relies on is still there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTLAB = ROOT / "artlab"

#: Each stage's rank: a module may import its own stage and lower ranks only, never a sibling of its own rank.
LAYERS = {
    "core": 0,  # artlab.errors, io, progress, images (and the package itself)
    "collection": 1, "model": 1, "report": 1,
    "runfolder": 2,
    "train": 3, "explain": 3,
    "audit": 3.5,  # above train/ (it reuses the frozen-feature cache and the artist-grouped folds), below app and CLI
    "app": 4, "cli": 4,
    "testing": 5,  # helpers for the tests and benchmarks (a Streamlit protocol client): nothing in artlab uses them
}
BUILDERS = ("artlab.collection.demo", "artlab.collection.folder", "artlab.collection.met", "artlab.collection.wikiart")
#: The one module below the CLI allowed a builder: an experiment row's ``collection = "demo:PATH"`` builds the demo
#: collection where it is missing (as `artlab data demo` would).
BUILDER_USERS = {"artlab.train.experiment"}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ARTLAB.rglob("*.py"))}


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def is_module(name: str) -> bool:
    return name in MODULES


def imports(module: str) -> set[str]:
    """Every module ``module`` imports, at the top or inside a function (artlab modules by their file, others by
    their top-level package)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if is_module(full) else base)
    return {name if name.startswith("artlab") else name.split(".")[0] for name in found}


GRAPH = {m: {i for i in imports(m) if i.startswith("artlab")} for m in MODULES}


def test_every_stage_imports_only_its_own_and_lower_stages():
    wrong = []
    for module, targets in GRAPH.items():
        mine = stage(module)
        for target in targets:
            theirs = stage(target)
            if theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_model_never_imports_training_and_the_report_needs_no_run():
    assert not [(m, t) for m, ts in GRAPH.items() for t in ts if stage(m) == "model" and stage(t) == "train"]
    assert not [(m, t) for m, ts in GRAPH.items() for t in ts if stage(m) == "report" and stage(t) != "core"
                and stage(t) != "report"]


def test_only_the_app_package_imports_streamlit():
    assert sorted(m for m in MODULES if "streamlit" in imports(m) and stage(m) not in ("app", "testing")) == []
    assert any("streamlit" in imports(m) for m in MODULES if stage(m) == "app")


def test_nothing_below_the_app_and_the_cli_imports_a_collection_builder():
    offenders = [f"{m} -> {t}" for m, ts in GRAPH.items() for t in ts
                 if t.startswith(BUILDERS) and not m.startswith(BUILDERS) and stage(m) not in ("cli",)
                 and m not in BUILDER_USERS]
    assert offenders == []


def test_no_import_circle():
    state: dict[str, int] = {}  # 1 visiting, 2 done
    circles = []

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for t in sorted(GRAPH.get(m, ())):
            if t not in GRAPH or t == m:
                continue
            if state.get(t) == 1 and not m.startswith(t + "."):  # a package's own __init__ re-exporting its parts
                circles.append(" -> ".join(trail[trail.index(t):] + [t]) if t in trail else f"{m} -> {t}")
            elif t not in state:
                visit(t, trail + [t])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_no_module_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_layering_test_sees_real_imports():
    """The checks above would pass on an empty graph: make sure they read the imports they guard."""
    assert "artlab.runfolder" in GRAPH["artlab.train.runner"]
    assert "artlab.model.backbones" in GRAPH["artlab.runfolder"]
    assert "artlab.collection.demo" in GRAPH["artlab.cli.commands"]  # a lazy import inside a function
    assert stage("artlab.train.runner") == "train" and stage("artlab.errors") == "core"


def test_the_streamlit_internal_behind_the_pages_workaround_is_still_there():
    """artlab/app/pages_mode.py switches Streamlit's legacy ``pages/`` mode off through this internal (before the
    first session in artlab.app.serve, from a page in require_frame). If a Streamlit upgrade moves it, this fails
    here, loudly, rather than the pages silently running without the frame."""
    from streamlit.runtime.pages_manager import PagesManager
    assert isinstance(getattr(PagesManager, "uses_pages_directory", None), (bool, type(None))), \
        "PagesManager.uses_pages_directory is gone or changed: see artlab/app/pages_mode.py"
    assert hasattr(PagesManager, "uses_pages_directory")


@pytest.mark.parametrize("page", sorted((ROOT / "pages").glob("*.py")), ids=lambda p: p.name)
def test_pages_only_lay_out(page):
    """Pages call into artlab through the app package (and the report's charts and tables), nothing deeper."""
    tree = ast.parse(page.read_text())
    used = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("artlab")}
    used |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "artlab"
             for a in n.names}
    assert {u for u in used if u != "artlab" and stage(u) not in ("app", "report")} == set()
