"""Nothing lost: artlab never deletes or overwrites what it did not write (each case checks the user's files after)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artlab.cli import main
from artlab.safety import OutputError, check_output


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the sha256 of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def painting(path: Path, seed: int = 0, size=(90, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=95)
    return path


@pytest.fixture
def documents(tmp_path):
    d = tmp_path / "documents"
    d.mkdir()
    (d / "thesis.docx").write_bytes(b"PK\x03\x04 four years of work")
    painting(d / "scan.jpg")
    return d


def one_line_exit_2(capsys, argv) -> str:
    capsys.readouterr()  # what earlier commands printed
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_train_out_at_a_users_folder_is_refused(documents, demo_collection, capsys):
    before = snapshot(documents)
    err = one_line_exit_2(capsys, ["train", "--collection", str(demo_collection), "--out", str(documents),
                                   "--overwrite"])
    assert "did not write" in err
    assert snapshot(documents) == before


@pytest.mark.parametrize("where", ["collection", "parent", "inside"])
def test_train_out_at_or_around_the_collection_is_refused(demo_collection, capsys, where):
    out = {"collection": demo_collection, "parent": demo_collection.parent,
           "inside": demo_collection / "images" / "run"}[where]
    before = snapshot(demo_collection)
    err = one_line_exit_2(capsys, ["train", "--collection", str(demo_collection), "--out", str(out), "--overwrite"])
    assert "the collection" in err
    assert snapshot(demo_collection) == before and not (demo_collection / "images" / "run").exists()


def test_data_folder_never_reencodes_its_own_source(tmp_path, capsys):
    d = tmp_path / "mine"
    for i, cls in enumerate(["portrait", "landscape"]):
        painting(d / "images" / cls / f"{cls}.jpg", seed=i, size=(1500, 1200))
    before = snapshot(d)
    err = one_line_exit_2(capsys, ["data", "folder", str(d / "images"), "--out", str(d)])
    assert "a folder containing the source folder" in err
    err = one_line_exit_2(capsys, ["data", "folder", str(d / "images"), "--out", str(d / "images")])
    assert "the same folder as the source folder" in err
    assert snapshot(d) == before


def test_data_builders_refuse_a_users_folder_and_resume_their_own(tmp_path, documents, capsys):
    src = tmp_path / "src"
    for i, cls in enumerate(["portrait", "landscape"]):
        painting(src / cls / f"{cls}.jpg", seed=i)
    before = snapshot(documents)
    assert "did not write" in one_line_exit_2(capsys, ["data", "folder", str(src), "--out", str(documents)])
    assert "did not write" in one_line_exit_2(capsys, ["data", "demo", "--out", str(documents)])
    assert snapshot(documents) == before
    out = tmp_path / "c"
    assert main(["data", "folder", str(src), "--out", str(out)]) == 0
    assert json.loads((out / ".artlab.json").read_text())["kind"] == "collection"
    assert main(["data", "folder", str(src), "--out", str(out)]) == 0  # its own collection: rebuilt in place


def test_overwrite_replaces_only_artlabs_own_output_of_the_same_kind(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "card.json").write_text(json.dumps({"artlab_version": "0.1.0"}))
    with pytest.raises(OutputError, match="pass --overwrite"):
        check_output(run, "run")
    assert check_output(run, "run", overwrite=True) == run
    with pytest.raises(OutputError, match="holds an artlab run, not a collection"):
        check_output(run, "collection", overwrite=True)
    (tmp_path / "file.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a folder"):
        check_output(tmp_path / "file.txt", "run", overwrite=True)
    assert (tmp_path / "file.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", "run") == tmp_path / "empty"


def test_a_user_folder_named_like_the_staging_folder_is_kept(demo_collection, tmp_path, capsys):
    staging = tmp_path / ".run.partial"
    staging.mkdir()
    (staging / "notes.txt").write_text("not artlab's")
    err = one_line_exit_2(capsys, ["train", "--collection", str(demo_collection), "--out", str(tmp_path / "run"),
                                   "--epochs", "1"])
    assert "in the way" in err and (staging / "notes.txt").read_text() == "not artlab's"


def test_explain_and_predict_outputs(genre_run, demo_images, documents, tmp_path, capsys):
    image = str(demo_images[0])
    before = snapshot(documents)
    assert "did not write" in one_line_exit_2(capsys, ["explain", str(genre_run), image, "--out", str(documents)])
    assert snapshot(documents) == before
    out = tmp_path / "why"
    assert main(["explain", str(genre_run), image, "--out", str(out)]) == 0
    first = snapshot(out)
    assert "pass --overwrite" in one_line_exit_2(capsys, ["explain", str(genre_run), image, "--out", str(out)])
    assert snapshot(out) == first
    (out / "my-notes.txt").write_text("kept")  # a user's file beside artlab's: --overwrite leaves it alone
    assert main(["explain", str(genre_run), str(demo_images[1]), "--out", str(out), "--overwrite"]) == 0
    assert (out / "my-notes.txt").read_text() == "kept"
    assert not (out / f"{demo_images[0].stem}_knn.png").exists() and (out / f"{demo_images[1].stem}_knn.png").exists()
    assert "the image" in one_line_exit_2(capsys, ["explain", str(genre_run), str(demo_images[0].parent), "--out",
                                                   str(demo_images[0].parent / "x")])

    sheet = documents / "budget.csv"
    sheet.write_text("item,cost\nrent,900\n")
    before = snapshot(documents)
    assert "did not write" in one_line_exit_2(capsys, ["predict", str(genre_run), image, "--csv", str(sheet),
                                                       "--overwrite"])
    assert snapshot(documents) == before
    csv = tmp_path / "p.csv"
    assert main(["predict", str(genre_run), image, "--csv", str(csv)]) == 0
    assert "pass --overwrite" in one_line_exit_2(capsys, ["predict", str(genre_run), image, "--csv", str(csv)])
    assert main(["predict", str(genre_run), image, "--csv", str(csv), "--overwrite"]) == 0


def test_met_damaged_looking_images_are_set_aside_not_deleted(tmp_path):
    from artlab.collection.met import decodes
    images = tmp_path / "met" / "images"
    long = painting(images / "1.jpg", size=(8000, 60))  # valid, but too elongated to use
    broken = images / "2.jpg"
    broken.write_bytes(long.read_bytes()[:300])
    data = {p.name: p.read_bytes() for p in (long, broken)}
    assert not decodes(long) and not decodes(broken)
    aside = tmp_path / "met" / "set_aside"
    assert {p.name: p.read_bytes() for p in aside.glob("*.jpg")} == data
    assert "elongated" in (aside / "1.jpg.why.txt").read_text()
    assert "unreadable" in (aside / "2.jpg.why.txt").read_text()
    # a rebuild meets the same damaged bytes again: one copy stays set aside; other bytes of that name are kept too
    broken.write_bytes(data["2.jpg"])
    assert not decodes(broken)
    broken.write_bytes(data["2.jpg"][:200])
    assert not decodes(broken)
    assert sorted(p.name for p in aside.glob("*.jpg")) == ["1.jpg", "2-2.jpg", "2.jpg"]
    assert (aside / "2.jpg").read_bytes() == data["2.jpg"] and (aside / "2-2.jpg").read_bytes() == data["2.jpg"][:200]


def test_the_cli_knows_a_run_from_a_users_folder_without_loading_torch(tmp_path):
    """A fresh `artlab data folder` aimed at a run is refused as a run (not as a stranger's folder), and the command
    never imports torch: the run-file names live in artlab.runfiles, not in the torch-heavy artlab.runfolder."""
    import subprocess
    import sys
    src = tmp_path / "src"
    painting(src / "portrait" / "a.jpg")
    run = tmp_path / "run"
    run.mkdir()
    (run / "card.json").write_text(json.dumps({"artlab_version": "0.1.0"}))
    code = ("import sys; from artlab.cli import main; rc = main(sys.argv[1:]); "
            "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "data", "folder", str(src), "--out", str(run)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "holds an artlab run, not a collection" in done.stderr
    assert done.stdout.strip() == "no torch"
