"""Bad input is one line naming the file or field, exit 2, never "artlab: unexpected error" (issue #25, defects 4
and 5 and the smaller findings): crafted cards, configs, options, output paths, labels and run arrays, generated here.
The full disk is tested in tests/test_safety_disk.py."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artlab.cli import main
from artlab.errors import ArtlabError, ConfigError, RunError
from artlab.runfolder import Run, safe_load_state
from artlab.train.config import TrainConfig
from artlab.train.grid import read_experiment

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "demo-genre"


@pytest.fixture
def run(tmp_path) -> Path:
    """A copy of the shipped demo run (complete, real weights), to be broken."""
    dst = tmp_path / "runs" / "r"
    shutil.copytree(SHIPPED, dst)
    return dst


def one_line_exit_2(capsys, argv, *words) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("artlab: ") and "unexpected error" not in err, err
    for w in words:
        assert w in err, err
    return err


# --- cards ---------------------------------------------------------------------------------------------------------

def test_a_card_nested_100000_levels_deep(run, capsys):
    (run / "card.json").write_text("[" * 100_000 + "]" * 100_000)
    one_line_exit_2(capsys, ["evaluate", str(run)], "card.json", "nests too deeply")


def test_a_card_number_of_10_to_the_400(run, capsys):
    text = (run / "card.json").read_text()
    card = json.loads(text)
    accuracy = card["metrics"]["finetuned"]["accuracy"]
    (run / "card.json").write_text(text.replace(f'"accuracy": {json.dumps(accuracy)}', '"accuracy": 1' + "0" * 400,
                                                1))
    assert "0" * 400 in (run / "card.json").read_text()
    one_line_exit_2(capsys, ["evaluate", str(run)], "card.json", "metrics.finetuned.accuracy")


def edit(run: Path, change) -> None:
    card = json.loads((run / "card.json").read_text())
    change(card)
    (run / "card.json").write_text(json.dumps(card))


@pytest.mark.parametrize("change, field", [
    (lambda c: c["metrics"]["finetuned"].update(n=-5), "metrics.finetuned.n"),
    (lambda c: c["metrics"]["knn"].update(accuracy=-0.5), "metrics.knn.accuracy"),
    (lambda c: c["metrics"]["finetuned"].update(accuracy=1.5), "metrics.finetuned.accuracy"),
    (lambda c: c["metrics"]["knn"].update(k=-3), "metrics.knn.k"),
    (lambda c: c["task"].update(n_images=-1), "task.n_images"),
    (lambda c: next(iter(c["metrics"]["finetuned"]["per_class"].values())).update(precision=float("nan")),
     "precision"),
    (lambda c: next(iter(c["metrics"]["knn"]["per_class"].values())).update(support=-2), "support"),
    (lambda c: c.update(deviations="one sentence, not a list"), "deviations"),
    (lambda c: c["backbone"].setdefault("weights", {}).update(sha256=12345), "backbone.weights.sha256"),
    (lambda c: c["backbone"].setdefault("weights", {}).update(classifier="x"), "backbone.weights.classifier"),
    (lambda c: c["task"].update(split_sizes={"train": "many"}), "task.split_sizes"),
    (lambda c: c["task"].update(per_class={"portrait": 3}), "task.per_class"),
    (lambda c: c["task"].update(leakage=["copies"]), "task.leakage"),
])
def test_card_fields_the_app_and_the_cli_read_are_checked(run, capsys, change, field):
    """What the app's model card, `evaluate` and the experiment table read is checked on open: the app shows this
    line instead of "Something went wrong while describing the model", `evaluate` prints no deviations string one
    character a line."""
    edit(run, change)
    with pytest.raises(RunError, match=f"card.json: field '[^']*{field.split('.')[-1]}"):
        Run.open(run)
    one_line_exit_2(capsys, ["evaluate", str(run)], field)


def test_one_deeply_nested_card_does_not_hide_the_other_runs(run, tmp_path, monkeypatch):
    from artlab import app
    shutil.copytree(SHIPPED, run.parent / "good")
    (run / "card.json").write_text("{\"a\":" * 50_000 + "1" + "}" * 50_000)
    monkeypatch.setenv("ARTLAB_RUNS", str(run.parent))
    table = app.runs_overview.__wrapped__(str(run.parent)) if hasattr(app.runs_overview, "__wrapped__") else \
        app.runs_overview(str(run.parent))
    status = dict(zip(table["run"], table["status"]))
    assert status["good"] == "ok" and status["r"].startswith("broken: ") and "nests too deeply" in status["r"]


# --- weights and arrays -----------------------------------------------------------------------------------------------

def test_a_model_file_of_random_bytes_is_damaged_not_code(run):
    (run / "model.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(RunError, match="model.pt is damaged") as info:
        safe_load_state(run / "model.pt")
    assert "run code" not in str(info.value)


def test_knn_columns_must_match_the_backbone(run, tmp_path, capsys):
    with np.load(run / "knn.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["embeddings"] = arrays["embeddings"][:, :-8]
    with open(run / "knn.npz", "wb") as f:
        np.savez(f, **arrays)
    image = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(image)
    one_line_exit_2(capsys, ["predict", str(run), str(image)], "knn.npz", "embeddings", "columns")


# --- configs and options ----------------------------------------------------------------------------------------------

def test_a_config_of_random_bytes(tmp_path, capsys):
    path = tmp_path / "noise.toml"
    path.write_bytes(bytes(np.random.default_rng(1).integers(128, 256, 2000, dtype=np.uint8)))
    one_line_exit_2(capsys, ["experiment", str(path)], "noise.toml", "not valid TOML")


@pytest.mark.parametrize("option, words", [
    (["--seed", "-1"], "seed"), (["--lr", "nan"], "lr"), (["--lr", "inf"], "lr"), (["--knn-ks", "0,-3"], "knn_ks"),
    (["--weight-decay", "1e308"], "weight_decay"), (["--momentum", "-1"], "momentum"),
    (["--knn-ks", "1000000000"], "knn_ks"),
])
def test_bad_numbers_are_refused_before_any_work(tmp_path, capsys, monkeypatch, option, words):
    def no_work(*a, **k):
        raise AssertionError("started training")

    monkeypatch.setattr("artlab.train.runner.train_run", no_work)
    one_line_exit_2(capsys, ["train", "--collection", str(tmp_path), "--out", str(tmp_path / "r"), *option], words)


@pytest.mark.parametrize("line, field", [
    ("weight_decay = 1e308", "weight_decay"), ("knn_ks = [1000000000]", "knn_ks"), ("knn_ks = [0, -3]", "knn_ks"),
    ("knn_ks = []", "knn_ks"), ("seed = -1", "seed"), ("lr = nan", "lr"),
])
def test_bad_numbers_in_a_config(tmp_path, line, field):
    path = tmp_path / "exp.toml"
    path.write_text(f'out = "runs"\n[base]\ncollection = "c"\n{line}\n[[runs]]\nname = "a"\n')
    with pytest.raises(ConfigError, match=f"row 'a': {field} must be") as info:
        read_experiment(path)
    assert "\n" not in str(info.value)


def test_valid_numbers_still_pass():
    cfg = TrainConfig(collection="c", lr=0.01, weight_decay=1e-4, knn_ks=(1, 3, 1000), seed=2 ** 32 - 1)
    assert cfg.knn_ks == (1, 3, 1000)


# --- output paths -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["file", "/dev/null"])
def test_embed_out_that_is_not_a_folder(tmp_path, capsys, target):
    out = tmp_path / "a-file" if target == "file" else Path(target)
    if target == "file":
        out.write_text("mine")
    one_line_exit_2(capsys, ["embed", "--collection", str(tmp_path), "--out", str(out)], str(out), "not a folder")
    if target == "file":
        assert out.read_text() == "mine"


def test_embed_out_tilde_is_the_home_folder(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home-is-a-file"
    home.write_text("x")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    one_line_exit_2(capsys, ["embed", "--collection", str(tmp_path), "--out", "~"], str(home))
    assert not (tmp_path / "~").exists()


# --- labels -----------------------------------------------------------------------------------------------------------

@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    for i, colour in enumerate(((200, 30, 30), (30, 200, 30))):
        Image.new("RGB", (40, 30), colour).save(folder / f"{i}.jpg")
    return folder


@pytest.mark.parametrize("label, words", [("x" * 300, "300 characters"), ("=HYPERLINK(1)", "formula"),
                                          ("@SUM(A1)", "formula")])
def test_labels_that_cannot_be_folder_names_or_cells(images, tmp_path, capsys, label, words):
    csv = tmp_path / "labels.csv"
    csv.write_text(f"path,label\n{images / '0.jpg'},{label}\n{images / '1.jpg'},landscape\n")
    out = tmp_path / "coll"
    one_line_exit_2(capsys, ["data", "folder", str(images), "--csv", str(csv), "--out", str(out)], "labels.csv",
                    words)
    assert not out.exists()  # no partial collection folder left behind


def test_a_long_file_name_is_shortened_not_refused(images, tmp_path):
    from artlab.collection.folder import build_folder
    long = images / ("y" * 240 + ".jpg")
    shutil.copy(images / "0.jpg", long)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"path,label\n{long},portrait\n{images / '1.jpg'},landscape\n")
    report = build_folder(images, tmp_path / "coll", csv=csv)
    assert report.kept == 2


# --- the disk full, in-process (the real thing: tests/test_safety_disk.py) --------------------------------------------

@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter "
                                                  "failed writing file data/0: file write failed")])
def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, failure):
    from artlab.io import DiskFull, atomic_save
    target = tmp_path / "model.pt"
    target.write_bytes(b"the earlier file")

    def save(tmp):
        tmp.write_bytes(b"half")
        raise failure

    with pytest.raises(DiskFull, match=f"the disk is full: could not write {target}") as info:
        atomic_save(target, save)
    assert "Errno" not in str(info.value) and "inline_container" not in str(info.value)
    assert target.read_bytes() == b"the earlier file" and os.listdir(tmp_path) == ["model.pt"]
    assert isinstance(info.value, ArtlabError)


# --- make bench -------------------------------------------------------------------------------------------------------

def test_make_bench_leaves_the_long_figures_to_bench_scale():
    """`make bench` stays under 15 minutes: the study-scale and 20,000-painting figures run in `make bench-scale`."""
    import subprocess
    root = SHIPPED.parent.parent
    quick = subprocess.run(["make", "-n", "bench"], cwd=root, capture_output=True, text=True, check=True).stdout
    scale = subprocess.run(["make", "-n", "bench-scale"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert "bench_app.py" in quick and "bench_knn.py" in quick
    assert "bench_study_scale" not in quick and "bench_embed_scale" not in quick
    assert "bench_study_scale.py --scale" in scale and "bench_embed_scale.py --paintings 20000" in scale


# --- the app's roots --------------------------------------------------------------------------------------------------

def test_the_root_refusal_shows_no_server_paths(tmp_path, monkeypatch):
    from artlab import app
    monkeypatch.delenv("ARTLAB_ALLOW_ANY_FOLDER", raising=False)
    monkeypatch.setenv("ARTLAB_RUNS", str(tmp_path / "secret-place" / "runs"))
    with pytest.raises(ArtlabError, match="only opens trained models under checkpoints/") as info:
        app.check_root("/")
    assert str(tmp_path) not in str(info.value) and str(SHIPPED.parent.parent) not in str(info.value)
    assert "…/runs/" in str(info.value)


def test_flagging_into_an_absolute_collection_only_under_a_root(run, tmp_path, monkeypatch):
    from artlab.app import curation as app_curation
    elsewhere = tmp_path / "elsewhere" / "coll"
    elsewhere.mkdir(parents=True)
    (elsewhere / "manifest.csv").write_text("id,path,title,artist,date,source,license,genre\n"
                                            "a,a.jpg,A,X,1900,folder,CC0,portrait\n")
    edit(run, lambda c: c["task"].update(collection=str(elsewhere), collection_relative="../no-such-folder"))
    monkeypatch.delenv("ARTLAB_ALLOW_ANY_FOLDER", raising=False)
    monkeypatch.setenv("ARTLAB_RUNS", str(run.parent))
    curated, why = app_curation.state(Run.open(run))
    assert curated is not None and why and "outside the folders this app opens" in why
    monkeypatch.setenv("ARTLAB_RUNS", os.pathsep.join([str(run.parent), str(elsewhere.parent)]))
    assert app_curation.state(Run.open(run))[1] is None  # that folder is itself under a root: flagging allowed
    beside = run.parent / "coll"  # a collection beside the run (collection_relative, as artlab writes it)
    shutil.copytree(elsewhere, beside)
    edit(run, lambda c: c["task"].update(collection="/nowhere", collection_relative="../coll"))
    monkeypatch.setenv("ARTLAB_RUNS", str(tmp_path / "other-root"))
    assert app_curation.state(Run.open(run))[1] is None


# --- a huge grid ------------------------------------------------------------------------------------------------------

def test_a_grid_of_thousands_of_runs_asks_first(tmp_path, monkeypatch, capsys):
    def no_work(*a, **k):
        raise AssertionError("started training")

    monkeypatch.setattr("artlab.train.runner.train_run", no_work)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.csv").write_text("id,path\n")
    path = tmp_path / "big.toml"
    path.write_text('out = "runs"\n[base]\ncollection = "c"\n[grid]\nseed = [' + ", ".join(map(str, range(100)))
                    + ']\nlr = [0.001, 0.01, 0.1]\n')
    one_line_exit_2(capsys, ["experiment", str(path)], "big.toml would train 300 runs", "--yes")
    assert not (tmp_path / "runs").exists()
    assert main(["experiment", str(path), "--dry-run"]) == 0  # listing them needs no --yes
