"""Training under torchrun: two CPU processes (gloo) on the demo collection, against one process.

torchrun's workers are real processes, so these tests launch ``python -m torch.distributed.run`` as users would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from artlab.runfolder import RUN_FILES, Run

TRAIN = ["train", "--label", "genre", "--backbone", "efficientnet_lite0", "--epochs", "2", "--patience", "2",
         "--no-umap"]


def launch(args: list[str], processes: int, script: Path | None = None) -> subprocess.CompletedProcess:
    entry = [str(script)] if script else ["-m", "artlab.cli"]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *entry]
    else:
        cmd = [sys.executable, *entry]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels in both runs (and 2 processes on 2 cores)
    env.pop("WORLD_SIZE", None)
    out = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


@pytest.mark.train
def test_two_processes_make_the_same_updates_as_one(demo_collection, tmp_path):
    """Each global batch of 15 is split 8 + 7 (80 training paintings: the last batch 3 + 2), the loss is class-weighted,
    and each process backpropagates its share of the global mean: with a linear head on cached frozen features (no
    BatchNorm, dropout off) that is the same Adam step as one process on the whole batch."""
    args = TRAIN + ["--collection", str(demo_collection), "--method", "transfer", "--cache-views", "1",
                    "--batch-size", "15", "--class-weights", "--dropout", "0"]  # dropout masks are per process
    launch(args + ["--out", str(tmp_path / "one")], 1)
    out = launch(args + ["--out", str(tmp_path / "two")], 2)
    assert out.stdout.count("run written to") == 1  # rank 0 reports, and writes, alone
    one, two = (torch.load(tmp_path / name / "model.pt", weights_only=True) for name in ("one", "two"))
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key
    h1, h2 = (pd.read_csv(tmp_path / name / "history.csv") for name in ("one", "two"))
    assert h1["train_loss"].tolist() == pytest.approx(h2["train_loss"].tolist(), abs=1e-5)
    assert h1["val_loss"].tolist() == pytest.approx(h2["val_loss"].tolist(), abs=1e-5)
    assert json.loads((tmp_path / "two" / "card.json").read_text())["training"]["processes"] == 2
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no staging folder left behind"


@pytest.mark.train
def test_partial_fine_tuning_on_two_processes_writes_a_whole_run(demo_collection, tmp_path):
    """The default CPU path (last block + head on the cached stem output, through DDP) end to end, with BatchNorm
    trained in the block and early stopping allowed after one epoch without progress: the processes must agree on
    when to stop (rank 0's BatchNorm statistics are shared, the validation loss averaged) or one would hang."""
    out = tmp_path / "partial"
    launch(["train", "--label", "genre", "--backbone", "efficientnet_lite0", "--epochs", "4", "--patience", "1",
            "--batch-size", "16", "--lr", "0.01", "--no-umap", "--collection", str(demo_collection),
            "--method", "partial", "--cache-views", "1", "--out", str(out)], 2)
    run = Run.open(out)
    assert all((out / name).is_file() for name in RUN_FILES)
    assert run.card["training"]["processes"] == 2 and 2 <= len(run.history()) <= 4
    assert 0 <= run.card["metrics"]["finetuned"]["accuracy"] <= 1


@pytest.mark.train
def test_fine_tuning_from_images_on_two_processes(demo_collection, tmp_path):
    """No cache: each process loads its half of every shuffled batch of images (with its own augmentation)."""
    out = tmp_path / "finetune"
    launch(["train", "--label", "genre", "--backbone", "efficientnet_lite0", "--epochs", "1", "--batch-size", "8",
            "--max-per-class", "8", "--no-umap", "--collection", str(demo_collection), "--method", "partial",
            "--cache-views", "0", "--out", str(out)], 2)
    run = Run.open(out)
    assert run.card["training"]["processes"] == 2 and run.card["config"]["cache_views"] == 0
    assert len(run.predictions()) == run.card["task"]["split_sizes"]["test"]


def test_every_global_batch_is_split_between_the_processes():
    from artlab.train.distributed import World
    from artlab.train.batches import shuffled as _shuffled

    def shards(n, batch, world):
        torch.manual_seed(0)  # fit seeds every epoch alike in every process
        return [s.tolist() for s in _shuffled(n, batch, world)]

    whole = shards(37, 8, World())
    halves = [shards(37, 8, World(rank, 2)) for rank in (0, 1)]
    assert [len(b) for b in whole] == [8, 8, 8, 8, 5]
    for w, a, b in zip(whole, *halves):
        assert not set(a) & set(b) and sorted(a + b) == sorted(w) and abs(len(a) - len(b)) <= 1
    # a last batch with fewer paintings than processes is dropped (33 = 4 x 8 + 1)
    assert len(shards(33, 8, World(0, 2))) == 4 and len(shards(33, 8, World())) == 5


def test_experiment_grids_refuse_torchrun(monkeypatch, tmp_path):
    from artlab.errors import ConfigError
    from artlab.train.experiment import run_experiment
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one process"):
        run_experiment(tmp_path / "grid.toml")
