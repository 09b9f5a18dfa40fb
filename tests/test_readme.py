"""The README as a curator follows it: short, its links there, its commands typed as they work after `make app`, and
every command block that can run offline run as written (in a scratch folder laid out like a clone: the shipped demo
runs in checkpoints/, a folder of the demo paintings as my_paintings/ with a labels.csv beside it)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from _shipped import shipped_runs
from artlab.train.command import VENV_ARTLAB, typed_program

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: Why a README command is not run here: (pattern over the command, reason).
NOT_HERE = [
    (re.compile(r"^make (app|test)\b"), "installs into .venv and serves the app or runs this very suite"),
    (re.compile(r"wikiart|data met|MetObjects|genre_table1|culture_table2"),
     "needs the internet (the Hugging Face hub, the Met, torchvision's ImageNet weights)"),
]
PROGRAMS = (VENV_ARTLAB, "artlab", "make", "source", "python", "torchrun")


def blocks(text: str) -> list[str]:
    """The fenced code blocks of a markdown text."""
    return re.findall(r"(?ms)^```[a-z]*\n(.*?)^```", text)


def commands(text: str) -> list[str]:
    """The commands in the fenced blocks, continuation lines joined, comments dropped; lines that start with no
    program (a folder layout drawn as text) are not commands."""
    found = []
    for block in blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] in PROGRAMS:
                found.append(shlex.join(words))
    return found


def why_not(command: str) -> str | None:
    return next((reason for pattern, reason in NOT_HERE if pattern.search(command)), None)


def test_the_readme_is_short_and_for_curators():
    text = README.read_text()
    assert len(text.splitlines()) < 200
    first_screens = "\n".join(text.splitlines()[:60])
    for word in ("kNN", "FAISS", "bfloat16", "malloc", "NCCL", "MALLOC_"):
        assert word not in first_screens, word
    for heading in ("## Two commands", "## Your own collection", "## The real studies", "## Where the rest is"):
        assert heading in text
    for column in ("`path`", "`label`", "`title`", "`artist`", "`date`", "`license`"):  # what the CSV import reads
        assert column in text, column


def test_the_readme_links_resolve():
    text = README.read_text()
    links = set(re.findall(r"\]\(([^)#\s]+)\)", text))
    assert "docs/guide.md" in links and "docs/studies.md" in links
    missing = sorted(link for link in links if "://" not in link and not (ROOT / link).exists())
    assert not missing, missing
    guide = ROOT / "docs" / "guide.md"
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", guide.read_text())
    assert len(pictures) >= 6
    assert not [p for p in pictures if not (guide.parent / p).is_file()]
    for picture in pictures:
        assert (guide.parent / picture).stat().st_size < 250_000, picture


def test_commands_are_typed_as_they_work_after_make_app():
    """`make app` installs artlab into .venv without putting it on the PATH: every artlab command the README gives
    is typed .venv/bin/artlab (the console script pyproject declares and make installs), as the app's retrain
    command is in a clone."""
    typed = commands(README.read_text())
    artlab = [c for c in typed if c.split()[0] in (VENV_ARTLAB, "artlab")]
    assert len(artlab) >= 6 and all(c.startswith(VENV_ARTLAB + " ") for c in artlab), artlab
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["artlab"] == "artlab.cli:main"
    assert re.search(r"pip install .*-e \.", (ROOT / "Makefile").read_text())
    if (ROOT / VENV_ARTLAB).exists():  # this clone was set up by make: the app's retrain command reads the same
        assert typed_program(ROOT) == VENV_ARTLAB


def test_no_file_names_a_path_outside_the_clone():
    """A user's clone has no ../shared: no tracked file may send them there."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True) if shutil.which("git") \
        else None
    if listed is None or listed.returncode != 0:
        pytest.skip("not a git checkout: no list of the clone's files")
    files = listed.stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        text = path.suffix in (".py", ".md", ".txt", ".toml", ".cfg", "") and path.is_file()
        if text and name != "tests/test_readme.py" and "../shared" in path.read_text(errors="ignore"):
            offenders.append(name)
    assert not offenders, offenders


def test_the_makefile_finds_python_3_12_or_3_13_alone(tmp_path):
    """With only python3.12 (or only python3.13) on the PATH, make picks it and says so; with none, one line."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    for version in ("3.12", "3.13", "3.11"):
        folder = tmp_path / version
        folder.mkdir()
        fake = folder / f"python{version}"
        fake.write_text(f"#!/bin/sh\necho Python {version}.0\n")
        fake.chmod(0o755)
    for chosen, path in (("3.12", "3.12"), ("3.13", "3.13"), ("3.13", "3.11:3.13:3.12")):
        env = {"PATH": ":".join(str(tmp_path / v) for v in path.split(":")) + ":/usr/bin:/bin"}
        out = subprocess.run([make, "-s", "-p", "-n", "-f", str(ROOT / "Makefile"), "app", "PY=/nonexistent"],
                             cwd=tmp_path, env=env, capture_output=True, text=True).stdout
        assert f"PYTHON := python{chosen}" in out.splitlines() or _system_python_is_newer(out, chosen), path
    none = subprocess.run([make, "-s", "-f", str(ROOT / "Makefile"), "app", "PY=/nonexistent",
                           f"STAMP={tmp_path / 'stamp'}", "PYTHON="], cwd=ROOT, env={"PATH": "/nonexistent"},
                          capture_output=True, text=True)
    assert none.returncode != 0 and "no python3.13, python3.12 or python3.11 on the PATH" in none.stdout


def _system_python_is_newer(out: str, chosen: str) -> bool:
    """/usr/bin may hold a newer Python than the one the test put first (then make rightly takes that one)."""
    picked = re.search(r"^PYTHON := python(3\.\d+)$", out, re.MULTILINE)
    return bool(picked) and tuple(map(int, picked[1].split("."))) >= tuple(map(int, chosen.split(".")))


# --- running the README's commands ------------------------------------------------------------------------------

@pytest.fixture()
def clone(tmp_path, demo_collection):
    """A scratch folder laid out as the README expects: checkpoints/ with the shipped runs, my_paintings/ with one
    folder per class (file names as a museum export names them: Title_ObjectID.jpg), and labels.csv beside it."""
    root = tmp_path / "clone"
    (root / "checkpoints").mkdir(parents=True)
    for run in shipped_runs():
        (root / "checkpoints" / run.name).symlink_to(run, target_is_directory=True)
    manifest = pd.read_csv(demo_collection / "manifest.csv", dtype=str, keep_default_na=False)
    rows = []
    for genre in ("portrait", "landscape", "religious"):
        for rec in manifest[manifest["genre"] == genre].head(10).itertuples():
            name = re.sub(r"\W+", "_", rec.title).strip("_")[:40] + "_" + rec.id.split("-")[-1] + ".jpg"
            target = root / "my_paintings" / genre / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(demo_collection / rec.path, target)
            rows.append({"path": f"{genre}/{name}", "label": genre, "title": rec.title, "artist": rec.artist,
                         "date": rec.date, "license": rec.license})
    shutil.copy(root / "my_paintings" / rows[0]["path"], root / "my_paintings" / "portrait" / "lady.jpg")  # README's
    pd.DataFrame(rows).to_csv(root / "my_paintings" / "labels.csv", index=False)
    shutil.copy(root / "my_paintings" / "labels.csv", root / "labels.csv")
    return root


@pytest.mark.slow
@pytest.mark.train
def test_every_readme_command_block_runs_as_written(clone, monkeypatch, capsys):
    """Each command of the README's blocks, in order, exactly as written (artlab's own command line in-process:
    .venv/bin/artlab is its console script), in the scratch clone; those that need the internet or install are
    named with the reason."""
    from artlab.cli import main
    monkeypatch.chdir(clone)
    ran, skipped = [], {}
    for command in commands(README.read_text()):
        reason = why_not(command)
        if reason:
            skipped[command] = reason
            continue
        words = shlex.split(command)
        assert words[0] == VENV_ARTLAB, f"a README command this test cannot run offline nor explain: {command}"
        code = main(words[1:])
        out = capsys.readouterr()
        assert code == 0, f"{command}\n{out.out[-2000:]}\n{out.err[-2000:]}"
        ran.append(words[1])
    assert {"data", "train", "predict", "explain"} <= set(ran), ran
    assert skipped and all(skipped.values())
    for command, reason in skipped.items():
        print(f"not run here: {command}  ({reason})", file=sys.stderr)
    assert (clone / "checkpoints" / "mine" / "card.json").is_file()
    titles = set(pd.read_csv(clone / "data" / "mine" / "manifest.csv", dtype=str)["title"])
    assert not any(re.search(r"_\d{4,}$|_", t) for t in titles), titles  # cleaned from the file names
