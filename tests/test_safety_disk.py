"""A full disk, for real (issue #25): `data demo`, `curate`, `predict --csv` and `train` writing onto a tiny tmpfs say
"the disk is full" and where, in one line with exit 2 (not "[Errno 28]" or "enforce fail at inline_container.cc"),
and lose nothing that was there.

Each case runs in a private mount namespace (``unshare -m`` as root, ``unshare -rm`` otherwise) with a tmpfs of a
few hundred KB mounted over a folder of the test: nothing outside the test is touched, and no root is needed where
unprivileged user namespaces are allowed. Where neither is permitted (some CI containers) the tests skip with the
reason; tests/test_safety_input.py injects the same failures in-process.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "demo-genre"


def _unshare() -> list[str] | None:
    if not shutil.which("unshare"):
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                                "mount -t tmpfs -o size=64k tmpfs \"$TMPDIR\""], capture_output=True,
                               env={**os.environ, "TMPDIR": "/tmp"})
        if probe.returncode == 0:
            return prefix
    return None


UNSHARE = _unshare()
needs_tmpfs = pytest.mark.skipif(UNSHARE is None, reason="no private mount namespace here (unshare -m / -rm not "
                                 "permitted): a tiny tmpfs cannot be mounted without touching the machine")


def on_full_disk(full: Path, size: str, setup: str, command: list[str], after: str = "") -> tuple[int, str, str]:
    """Mount a tmpfs of ``size`` on ``full`` (privately), run ``setup`` (shell), then artlab ``command``, then
    ``after`` (shell, its output appended to stdout); (exit status of artlab, its stderr, stdout)."""
    full.mkdir(parents=True, exist_ok=True)
    cli = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "artlab.cli", *command])
    script = (f"set -e; mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(full))}; cd {shlex.quote(str(full))}; "
              f"{setup}; set +e; {cli} 2>{shlex.quote(str(full.parent / 'err.txt'))}; echo \"rc=$?\"; {after}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*UNSHARE, "sh", "-c", script], capture_output=True, text=True, env=env, timeout=600)
    err = (full.parent / "err.txt").read_text() if (full.parent / "err.txt").exists() else done.stderr
    rc = next((int(line[3:]) for line in done.stdout.splitlines() if line.startswith("rc=")), -1)
    assert rc != -1, done.stderr
    return rc, err, done.stdout


FILL = "dd if=/dev/zero of=filler bs=4k 2>/dev/null || true"  # every block taken


def says_disk_full(err: str, where: Path) -> None:
    last = [line for line in err.splitlines() if line.startswith("artlab: ")]
    assert last, err
    line = last[-1]
    assert "the disk is full" in line and str(where) in line, err
    assert "Errno" not in line and "inline_container" not in line and "unexpected" not in line, line


@needs_tmpfs
def test_data_demo_on_a_full_disk(tmp_path):
    full = tmp_path / "full"
    rc, err, _ = on_full_disk(full, "1m", "true", ["data", "demo", "--out", str(full / "demo")])
    assert rc == 2
    says_disk_full(err, full)


@needs_tmpfs
def test_curate_on_a_full_disk_keeps_the_decisions(tmp_path):
    coll = tmp_path / "coll"
    coll.mkdir()
    (coll / "manifest.csv").write_text("id,path,title,artist,date,source,license,genre\n"
                                       "a,a.jpg,A,X,1900,folder,CC0,portrait\nb,b.jpg,B,Y,1901,folder,CC0,landscape\n")
    from artlab.collection import curation
    curation.exclude(coll, "a", reason="duplicate")
    before = {p.name: p.read_bytes() for p in coll.iterdir() if p.is_file()}
    full = tmp_path / "full"
    rc, err, out = on_full_disk(full, "256k", f"cp -a {shlex.quote(str(coll))} coll; {FILL}",
                                ["curate", str(full / "coll"), "b", "--exclude"],
                                after="for f in coll/*; do echo \"$(basename $f) $(sha256sum < $f | cut -c1-16)\"; "
                                      "done")
    assert rc == 2
    says_disk_full(err, full / "coll")
    import hashlib
    sums = dict(line.split() for line in out.splitlines() if not line.startswith("rc=") and line.strip())
    for name, data in before.items():
        if not name.startswith("."):  # the lock file
            assert sums[name] == hashlib.sha256(data).hexdigest()[:16], f"{name} changed on a full disk"


@needs_tmpfs
def test_predict_csv_on_a_full_disk(tmp_path):
    image = tmp_path / "p.png"
    Image.new("RGB", (80, 60), (180, 120, 40)).save(image)
    full = tmp_path / "full"
    rc, err, _ = on_full_disk(full, "128k", FILL, ["predict", str(SHIPPED), str(image), "--csv",
                                                   str(full / "p.csv")])
    assert rc == 2
    says_disk_full(err, full / "p.csv")


@needs_tmpfs
def test_train_on_a_full_disk(tmp_path):
    src = tmp_path / "src"
    for label, colour in (("red", (200, 30, 30)), ("green", (30, 200, 30))):
        (src / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (72, 64), tuple(min(255, c + 9 * i) for c in colour)).save(src / label / f"{i}.jpg")
    from artlab.collection.folder import build_folder
    build_folder(src, tmp_path / "coll")
    full = tmp_path / "full"
    rc, err, _ = on_full_disk(full, "400k", "true",
                              ["train", "--collection", str(tmp_path / "coll"), "--out", str(full / "run"),
                               "--epochs", "1", "--no-umap", "--min-per-class", "2", "--cache-views", "0"])
    assert rc == 2
    says_disk_full(err, full)
