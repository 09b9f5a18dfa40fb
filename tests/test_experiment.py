"""``artlab experiment``: configs expand into named rows, mistakes stop it before training, a real grid runs, resumes
and records a failing row; and the shipped configs in configs/ stay valid."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from artlab.train import experiment
from artlab.cli import main
from artlab.errors import ConfigError, RunError
from artlab.train.experiment import is_complete, load_experiment, read_experiment, results_table, run_experiment

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

GRID = """
out = "runs"
[base]
collection = "data/demo"
label = "culture"
head = "mlp3"
optimizer = "sgd"
split = [0.8, 0.1, 0.1]
epochs = 3
[grid]
backbone = ["resnet50", "alexnet"]
method = ["finetune", "transfer"]
scheduler = ["step", "plateau"]
[[runs]]
name = "lite0-partial"
backbone = "efficientnet_lite0"
method = "partial"
epochs = 5
[[runs]]
backbone = "efficientnet_lite0"
lr = 0.05
class_weights = true
"""


def _write(tmp_path, text, name="exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_and_runs_expand_to_named_rows(tmp_path):
    rows = load_experiment(_write(tmp_path, GRID))
    names = [n for n, _ in rows]
    assert names[:3] == ["resnet50-finetune-step", "resnet50-finetune-plateau", "resnet50-transfer-step"]
    assert len(names) == 2 * 2 * 2 + 2 and names[-2:] == ["lite0-partial", "efficientnet_lite0-lr0.05-class_weights"]
    cfg = dict(rows)
    c = cfg["alexnet-transfer-plateau"]
    assert (c.backbone, c.method, c.scheduler, c.head, c.optimizer, c.epochs) == (
        "alexnet", "transfer", "plateau", "mlp3", "sgd", 3)
    assert c.split == (0.8, 0.1, 0.1) and c.label == "culture"
    assert c.collection == str((tmp_path / "data/demo").resolve()), "paths are relative to the config's folder"
    assert (cfg["lite0-partial"].method, cfg["lite0-partial"].epochs) == ("partial", 5)
    assert cfg["efficientnet_lite0-lr0.05-class_weights"].class_weights is True
    assert read_experiment(tmp_path / "exp.toml").out == (tmp_path / "runs").resolve()


def test_environment_variables_and_demo_collections(tmp_path, monkeypatch):
    text = 'out = "${OUT_ROOT:-fallback}/x"\n[base]\ncollection = "${ARTLAB_DATA}/met"\n[[runs]]\nname = "a"\n'
    monkeypatch.setenv("ARTLAB_DATA", "/somewhere")
    exp = read_experiment(_write(tmp_path, text))
    assert exp.rows[0].config.collection == "/somewhere/met" and exp.out == (tmp_path / "fallback/x").resolve()
    monkeypatch.delenv("ARTLAB_DATA")
    with pytest.raises(ConfigError, match="ARTLAB_DATA is not set"):
        read_experiment(tmp_path / "exp.toml")
    demo = read_experiment(_write(tmp_path, 'out = "r"\n[base]\ncollection = "demo:d/demo"\n[[runs]]\nname = "a"\n'))
    assert demo.demo_dirs == {(tmp_path / "d/demo").resolve()}


@pytest.mark.parametrize("edit, message", [
    (("epochs = 3", "epoch = 3"), r"\[base\]: unknown key 'epoch'; did you mean 'epochs'"),
    (("[grid]", "[grid]\nlayers = [1, 2]"), r"\[grid\]: unknown key 'layers'"),
    (('name = "lite0-partial"', 'name = "lite0-partial"\nheads = "mlp3"'), r"\[\[runs\]\] #1: unknown key 'heads'"),
    (('out = "runs"', 'out = "runs"\nouts = "x"'), r"top level: unknown key 'outs'"),
    (('"alexnet"]', '"alexnet", "resnet51"]'), r"unknown backbone 'resnet51'"),
    (("epochs = 3", 'epochs = "3"'), r"epochs must be int, got '3'"),
    (("split = [0.8, 0.1, 0.1]", "split = [0.8, 0.1]"), r"split ratios"),
    (('scheduler = ["step", "plateau"]', 'scheduler = "step"'), r"\[grid\] scheduler must be a non-empty list"),
    (('out = "runs"', ""), r"`out = \"FOLDER\"`"),
    (('name = "lite0-partial"', 'name = "alexnet-finetune-step"'), r"two rows are named 'alexnet-finetune-step'"),
    (("[base]", "[base\n"), r"not valid TOML"),
])
def test_mistakes_are_one_line_config_errors(tmp_path, edit, message):
    path = _write(tmp_path, GRID.replace(*edit, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_experiment(path)
    assert "\n" not in str(info.value)


def test_mistakes_stop_before_any_training(tmp_path, monkeypatch, capsys):
    def no_training(*a, **k):
        raise AssertionError("trained despite an invalid config")

    monkeypatch.setattr("artlab.train.runner.train_run", no_training)
    bad = _write(tmp_path, GRID.replace('"alexnet"]', '"alexnet", "resnet51"]'))
    assert main(["experiment", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("artlab: ") and "resnet51" in err and "\n" not in err
    # a valid config whose collection does not exist also stops before the first row
    with pytest.raises(ConfigError, match="no collection at"):
        run_experiment(_write(tmp_path, GRID, "ok.toml"))
    assert not (tmp_path / "runs").exists()


def test_dry_run_lists_rows_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("artlab.train.runner.train_run", lambda *a, **k: pytest.fail("dry run trained"))
    path = _write(tmp_path, GRID)
    assert main(["experiment", str(path), "--dry-run", "--only", "alexnet"]) == 0
    out = capsys.readouterr().out
    assert "4 row(s)" in out and "alexnet-transfer-plateau" in out and "resnet50" not in out
    assert "to train" in out and "MISSING" in out
    assert not (tmp_path / "runs").exists()
    assert main(["experiment", str(path), "--only", "vgg"]) == 2, "--only matching nothing is a mistake"


@pytest.mark.parametrize("name", ["culture_table2", "genre_table1", "demo_grid", "demo"])
def test_shipped_configs_are_valid(name):
    exp = read_experiment(CONFIGS / f"{name}.toml")
    assert exp.rows and exp.description


def test_shipped_study_configs_reproduce_the_papers():
    culture = read_experiment(CONFIGS / "culture_table2.toml")
    assert len(culture.rows) == 18
    assert {(r.config.backbone, r.config.method, r.config.scheduler) for r in culture.rows} == {
        (b, m, s) for b in ("resnet50", "vgg16_bn", "alexnet") for m in ("finetune", "transfer", "scratch")
        for s in ("step", "plateau")}
    assert all((r.config.head, r.config.optimizer, r.config.split, r.config.label) == ("mlp3", "sgd", (0.8, 0.1, 0.1),
                                                                                       "culture") for r in culture.rows)
    # the culture study's Table 2 (section 4.1), all six rows, in its order, run first
    assert list(culture.published) == ["resnet50-finetune-plateau", "resnet50-finetune-step", "vgg16_bn-finetune-step",
                                       "alexnet-finetune-step", "resnet50-transfer-step", "resnet50-scratch-step"]
    assert culture.published["resnet50-finetune-plateau"] == {"val": 0.6928, "top1": 0.7179, "top3": 0.9184}
    assert culture.published["resnet50-scratch-step"] == {"val": 0.5001, "top1": 0.4804, "top3": 0.7855}
    assert [r.name for r in culture.rows[:6]] == list(culture.published), "published rows run first"
    table = results_table(culture)
    assert table["row"].tolist() == ["published"] * 6 + ["extension"] * 12
    columns = list(table.columns)
    for key in ("val", "top1", "top3"):  # the paper's figure beside ours
        assert columns[columns.index(key) + 1] == f"paper_{key}"
    assert table.loc[0, "paper_top1"] == 0.7179 and table["paper_top1"].iloc[6:].isna().all()
    assert "precision" not in columns, "no published P/R/F1 for the culture table: no column"

    genre_exp = read_experiment(CONFIGS / "genre_table1.toml")
    genre, disjoint = genre_exp.rows
    g = genre.config
    assert (g.backbone, g.method, g.optimizer, g.epochs, g.patience, g.head, g.split, g.group_by_artist) == (
        "densenet121", "partial", "adam", 20, 5, "linear", (0.7, 0.15, 0.15), False)
    assert disjoint.config == g.replace(group_by_artist=True), "the same recipe on an artist-disjoint split"
    assert genre_exp.published[genre.name] == {"top1": 0.8933, "precision": 0.8931, "recall": 0.8933, "f1": 0.8930,
                                               "knn_top1": 0.8666, "knn_precision": 0.8669, "knn_recall": 0.8666,
                                               "knn_f1": 0.8663}
    assert genre_exp.averaging == "weighted"
    table = results_table(genre_exp).set_index("name")
    assert table.loc[genre.name, "split"] == "random" and table.loc[disjoint.name, "split"] == "artist-disjoint"
    assert table.loc[genre.name, "paper_knn_f1"] == 0.8663 and pd.isna(table.loc[disjoint.name, "paper_top1"])
    demo = {r.name: r.config for r in read_experiment(CONFIGS / "demo.toml").rows}
    assert set(demo) == {"demo-genre", "demo-culture"}
    c = demo["demo-culture"]  # the recipes chosen by cross-validation (make demo-select; see demo.toml)
    assert (c.head, c.optimizer, c.method, c.split, c.label) == ("linear", "adam", "transfer", (0.8, 0.1, 0.1),
                                                                 "culture")
    g = demo["demo-genre"]
    assert (g.head, g.optimizer, g.backbone, g.split, g.label) == ("mlp3", "adam", "efficientnet_lite0",
                                                                   (0.7, 0.15, 0.15), "genre")
    for r in (c, g):  # the recipe the folds measured: class-balanced loss, a fixed number of epochs, last weights
        assert r.class_weights and not r.restore_best and r.patience == r.epochs and "folds" in r.selected_by
    assert read_experiment(CONFIGS / "demo.toml").out == CONFIGS.parent / "checkpoints"


TINY = """
out = "runs"
[base]
collection = "{collection}"
label = "culture"
classes = ["Dutch", "French", "Italian"]
max_per_class = 12
backbone = "efficientnet_lite0"
method = "transfer"
head = "mlp3"
optimizer = "sgd"
lr = 0.02
step_size = 1
gamma = 0.5
epochs = 2
split = [0.8, 0.1, 0.1]
cache_views = 1
knn_ks = [1, 3]
umap = false
[grid]
scheduler = ["step", "plateau"]
[[runs]]
name = "too-demanding"
min_per_class = 1000
[published.step]
val = 0.5
precision = 0.25
"""


@pytest.mark.slow
def test_tiny_grid_runs_resumes_and_records_failures(demo_collection, tmp_path, capsys):
    cfg = _write(tmp_path, TINY.format(collection=demo_collection))
    assert main(["experiment", str(cfg)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("name"))
    columns = {"top1", "top3", "knn_top1", "knn_top3", "knn_k", "val", "split", "epochs", "status", "error"}
    assert columns <= set(header.split())
    assert "2 trained, 0 already complete, 1 failed" in out

    runs = tmp_path / "runs"
    table = pd.read_csv(runs / "results.csv")
    assert table["name"].tolist() == ["step", "plateau", "too-demanding"]
    ok = table[table["status"] == "trained"]
    assert len(ok) == 2 and ok[["top1", "top3", "knn_top1", "knn_top3"]].notna().all().all()
    assert (ok["top1"] <= ok["top3"]).all() and (ok["epochs"] == 2).all()
    failed = table.set_index("name").loc["too-demanding"]
    assert failed["status"] == "failed" and "fewer than two" in failed["error"]
    assert "| name |" in (runs / "results.md").read_text()
    card = json.loads((runs / "step" / "card.json").read_text())
    assert table.set_index("name").loc["step", "top1"] == pytest.approx(card["metrics"]["finetuned"]["accuracy"])
    step = table.set_index("name").loc["step"]  # a published row: the paper's figures beside ours
    assert (step["row"], step["paper_val"], step["paper_precision"]) == ("published", 0.5, 0.25)
    assert step["precision"] == pytest.approx(card["metrics"]["finetuned"]["precision_weighted"])
    assert step["val"] == pytest.approx(card["metrics"]["finetuned"]["val_accuracy"])
    assert table.set_index("name").loc["plateau", "row"] == "extension"
    assert pd.read_csv(runs / "step" / "history.csv")["lr"].tolist() == pytest.approx([0.02, 0.01])

    # again: the complete rows are skipped (their files untouched), the failed one is retried
    mtimes = {n: (runs / n / "card.json").stat().st_mtime_ns for n in ("step", "plateau")}
    assert main(["experiment", str(cfg)]) == 0
    assert "0 trained, 2 already complete, 1 failed" in capsys.readouterr().out
    assert {n: (runs / n / "card.json").stat().st_mtime_ns for n in mtimes} == mtimes
    assert pd.read_csv(runs / "results.csv")["status"].tolist() == ["complete", "complete", "failed"]

    # a changed configuration is not "complete": that row trains again, --only leaves the others alone
    cfg.write_text(cfg.read_text().replace("epochs = 2", "epochs = 1"))
    text = run_experiment(cfg, only="plateau")
    assert "1 trained" in text and "2 not selected" in text
    table = pd.read_csv(runs / "results.csv").set_index("name")
    assert table.loc["plateau", "epochs"] == 1 and table.loc["step", "status"] == "pending"
    assert (runs / "step" / "card.json").stat().st_mtime_ns == mtimes["step"]


def test_demo_collection_is_built_once(tmp_path, monkeypatch):
    """collection = "demo:PATH" builds the demo collection into PATH when it has no manifest, and only then."""
    built = []

    def fake_build(folder, progress=None):
        built.append(Path(folder))
        Path(folder).mkdir(parents=True)
        (Path(folder) / "manifest.csv").write_text("id,path\n")

    monkeypatch.setattr("artlab.collection.demo.build_demo", fake_build)
    def fake_train(cfg, out, progress=None, umap=True, overwrite=False):
        raise RunError("not training in this test")

    monkeypatch.setattr("artlab.train.runner.train_run", fake_train)
    cfg = _write(tmp_path, 'out = "r"\n[base]\ncollection = "demo:data/demo"\n[[runs]]\nname = "a"\n')
    text = run_experiment(cfg)
    assert built == [(tmp_path / "data/demo").resolve()]
    assert "not training in this test" in text
    run_experiment(cfg)
    assert len(built) == 1
    assert {experiment.RESULTS_CSV, experiment.RESULTS_MD} <= {p.name for p in (tmp_path / "r").iterdir()}


def test_shipped_demo_runs_count_as_complete_in_any_checkout(tmp_path):
    """A clone elsewhere records other absolute paths: `make demo` must still see the shipped runs as complete
    (their cards locate the collection relative to the run) instead of retraining over them."""
    import shutil
    repo = tmp_path / "elsewhere"
    shutil.copytree(CONFIGS, repo / "configs")
    from _shipped import shipped_runs
    for run in shipped_runs():  # the shipped runs only: a user's own runs in checkpoints/ are none of this test's
        shutil.copytree(run, repo / "checkpoints" / run.name)
    exp = read_experiment(repo / "configs" / "demo.toml")
    assert len(exp.rows) == 2
    assert all(is_complete(exp.folder(row), row) for row in exp.rows)
    card = json.loads((exp.folder(exp.rows[0]) / "card.json").read_text())
    assert card["config"]["collection"] != exp.rows[0].config.collection  # recorded by another checkout
    changed = dataclasses.replace(exp.rows[0].config, epochs=exp.rows[0].config.epochs + 1)
    assert not is_complete(exp.folder(exp.rows[0]), dataclasses.replace(exp.rows[0], config=changed))
