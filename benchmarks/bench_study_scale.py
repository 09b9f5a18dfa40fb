"""The GenRe study at full size, end to end, as a user runs it: `artlab data folder`, `artlab train`, `artlab evaluate`.

Scale S = 1 is the study: 8,000 paintings, 4 balanced genres (2,000 each), split 70/15/15; S < 1 takes 2,000 x S
paintings a genre and projects every figure to S = 1 (stage times grow with the number of paintings; the commands'
start-up does not). The paintings are synthetic (benchmarks/paintings.py): JPEGs at quality 90 in WikiArt's mix of
shapes, stored as the builders store them (1024 px long side, some smaller), with enough structure that they cost
what a painting costs to decode. Writing them stands for the download and is not timed.

Then, through the CLI in subprocesses (so that this script does not depend on the package's layout):
  collection   `artlab data folder` (verify, shrink, re-encode, manifest);
  train        `artlab train --backbone densenet121 --method partial --optimizer adam --epochs 20`, early stopping
               off (patience > epochs) so that all 20 epochs are timed, DenseNet121 with random ImageNet-shaped weights
               through `--weights FILE` (its ImageNet weights cannot be downloaded here; timings do not depend on
               them); the card's `training` timings split it into the frozen cache, the epochs, the final features +
               kNN + evaluation and the writing of the run folder; the process's peak RSS comes from wait4;
  evaluate     `artlab evaluate RUN` (the study's Table 1).
Side by side, in the same run, the loop a user would write from the torchvision fine-tuning tutorial: ImageFolder +
DataLoader(num_workers=2) + DenseNet121 with everything below denseblock4 frozen (requires_grad False) but recomputed
every epoch, Adam, a train and a val phase per epoch, for one epoch on the same training paintings; its 20 epochs are
projected from that one, and compared with artlab's frozen cache + 20 epochs.

    python benchmarks/bench_study_scale.py [--scale 0.05] [--workdir DIR] [--epochs 20] [--cache-views N]

--workdir keeps the generated paintings (8,000 take about 5 minutes to write on 2 CPUs) for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import common

common.steady_process()

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from paintings import GENRES, write_paintings  # noqa: E402

PER_CLASS = 2000  # the GenRe study: 4 genres x 2,000
TARGET_TOTAL_S = 45 * 60
TARGET_RSS_GB = 6.0
TARGET_SPEEDUP = 3.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the study's 8,000 paintings")
    p.add_argument("--workdir", default=None, help="keep the generated paintings here (default: a temporary folder)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--cache-views", type=int, default=None, help="artlab train's --cache-views (default: its own)")
    p.add_argument("--no-tutorial", action="store_true", help="skip the tutorial loop")
    args = p.parse_args()
    if not 0 < args.scale <= 1:
        sys.exit("--scale takes a number in (0, 1]")
    work = Path(args.workdir) if args.workdir else common.workdir()
    per_class = max(10, round(PER_CLASS * args.scale))
    scale = per_class / PER_CLASS
    src, coll, run, logs = work / "paintings", work / "collection", work / "run", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common.header(f"the GenRe study at scale {scale:g}: {per_class * len(GENRES)} synthetic paintings "
                  f"({per_class} a genre), DenseNet121 partial, Adam, {args.epochs} epochs, through the artlab CLI; "
                  f"{common.cpu_count()} CPUs, {torch.get_num_threads()} torch threads")
    t0 = time.perf_counter()
    size = write_paintings(src, per_class, processes=common.cpu_count())
    common.note(f"paintings written or found in {time.perf_counter() - t0:.0f} s (not timed: stands for the download), "
                f"{size / 1e6 / (per_class * len(GENRES)):.2f} MB each on average")

    for done in (coll, run, run.parent / f".{run.name}.partial"):  # this script's own outputs from an earlier run
        shutil.rmtree(done, ignore_errors=True)
    collection_s, _ = cli(["data", "folder", str(src), "--out", str(coll)], logs / "data.log")
    weights = random_densenet_weights(work)
    train_args = ["train", "--collection", str(coll), "--label", "genre", "--backbone", "densenet121",
                  "--method", "partial", "--optimizer", "adam", "--epochs", str(args.epochs),
                  "--patience", str(args.epochs + 1), "--weights", str(weights), "--device", "cpu", "--out", str(run)]
    if args.cache_views is not None:
        train_args += ["--cache-views", str(args.cache_views)]
    train_s, rss = cli(train_args, logs / "train.log")
    evaluate_s, _ = cli(["evaluate", str(run)], logs / "evaluate.log")
    card = json.loads((run / "card.json").read_text())
    tutorial = None if args.no_tutorial else tutorial_epoch(src, coll, run)
    report(scale, card, collection_s, train_s, evaluate_s, rss, run, tutorial, args.epochs)
    return common.finish()


def cli(argv: list[str], log: Path) -> tuple[float, int]:
    """Run ``python -m artlab.cli ARGV``; (wall seconds, peak RSS in bytes). Its output goes to ``log``."""
    env = {**os.environ, "TQDM_MININTERVAL": "10"}
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "artlab.cli", *argv], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        sys.exit(f"artlab {argv[0]} failed ({proc.returncode}): " + " | ".join(tail))
    return seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def random_densenet_weights(work: Path) -> Path:
    """DenseNet121 weights of ImageNet's shape (1000 classes), randomly initialised, as a --weights file."""
    import torchvision
    path = work / "densenet121-random.pth"
    if not path.is_file():
        torch.manual_seed(0)
        torch.save(torchvision.models.densenet121(weights=None).state_dict(), path)
    return path


def tutorial_epoch(src: Path, coll: Path, run: Path) -> dict:
    """One epoch of the torchvision fine-tuning tutorial's loop on artlab's training and validation paintings."""
    import torchvision
    from torchvision import transforms as T
    manifest = pd.read_csv(coll / "manifest.csv", dtype=str)
    split = pd.read_csv(run / "paintings.csv", dtype=str).set_index("id")["split"]
    originals = manifest.set_index("id")["original"]
    norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    phases = {"train": T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm]),
              "val": T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])}
    loaders = {}
    for phase, tf in phases.items():
        ds = torchvision.datasets.ImageFolder(str(src), tf)
        wanted = {str(Path(originals[i]).resolve()) for i in split.index[split == phase]}
        keep = [k for k, (path, _) in enumerate(ds.samples) if str(Path(path).resolve()) in wanted]
        loaders[phase] = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, keep), batch_size=32,
                                                     shuffle=phase == "train", num_workers=2)
    torch.manual_seed(0)
    model = torchvision.models.densenet121(weights=None)
    for param in model.parameters():
        param.requires_grad = False
    for module in (model.features.denseblock4, model.features.norm5):
        module.requires_grad_(True)
    model.classifier = nn.Linear(model.classifier.in_features, len(GENRES))
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    seconds = {}
    for phase, dl in loaders.items():
        model.train(phase == "train")
        t0 = time.perf_counter()
        for x, y in dl:
            opt.zero_grad()
            with torch.set_grad_enabled(phase == "train"):
                loss = criterion(model(x), y)
                if phase == "train":
                    loss.backward()
                    opt.step()
        seconds[phase] = time.perf_counter() - t0
        seconds[f"n_{phase}"] = len(dl.dataset)
    return seconds


def report(scale, card, collection_s, train_s, evaluate_s, rss, run, tutorial, epochs) -> None:
    tr = card["training"]
    n, sizes = card["task"]["n_images"], card["task"]["split_sizes"]
    startup = train_s - tr["total_seconds"]  # interpreter, imports, reading the manifest, publishing the folder
    common.note(f"{n} paintings, split {sizes}; cache views {card['training'].get('cache_views', card['config']['cache_views'])}; "
                f"best epoch {tr['best_epoch']}, test accuracy {card['metrics']['finetuned']['accuracy']:.3f} "
                f"(kNN {card['metrics']['knn']['accuracy']:.3f}): synthetic paintings, random weights")
    stages = {"collection (artlab data folder)": collection_s, "frozen cache": tr["frozen_cache_seconds"],
              f"{epochs} epochs": tr["train_seconds"], "final features + kNN + evaluation": tr["evaluation_seconds"],
              "writing the run folder": tr["writing_seconds"], "train start-up and publishing": startup,
              "artlab evaluate": evaluate_s}
    full = scale == 1
    for name, s in stages.items():
        common.result(f"stage: {name}, s", f"{s:.1f}")
    total = collection_s + train_s + evaluate_s
    fixed = startup + evaluate_s  # does not grow with the collection
    projected = fixed + (total - fixed) / scale
    if full:
        common.result("end to end (collection + train + evaluate), min", f"{total / 60:.1f}",
                      f"<= {TARGET_TOTAL_S / 60:.0f}", total <= TARGET_TOTAL_S)
    else:
        common.result(f"end to end at scale {scale:g}, min", f"{total / 60:.1f}")
        common.result("end to end PROJECTED to 8,000 paintings, min", f"{projected / 60:.1f}",
                      f"<= {TARGET_TOTAL_S / 60:.0f}", projected <= TARGET_TOTAL_S)
    cache = tr["frozen_cache_bytes"]
    rss_full = rss + cache * (1 / scale - 1)  # the cache is what grows with the collection (embeddings: < 1%)
    if full:
        common.result("peak RSS of artlab train, GB", f"{rss / 1e9:.2f}", f"<= {TARGET_RSS_GB:g}",
                      rss / 1e9 <= TARGET_RSS_GB)
    else:
        common.result(f"peak RSS of artlab train at scale {scale:g}, GB", f"{rss / 1e9:.2f}")
        common.result("peak RSS PROJECTED to 8,000 paintings (+ the cache's growth), GB", f"{rss_full / 1e9:.2f}",
                      f"<= {TARGET_RSS_GB:g}", rss_full / 1e9 <= TARGET_RSS_GB)
    common.result("frozen cache in memory, GB" + ("" if full else " (projected)"), f"{cache / scale / 1e9:.2f}")
    folder = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
    common.result("run folder size, MB" + ("" if full else " (projected)"), f"{folder / scale / 1e6:.0f}")
    if tutorial is None:
        return
    epoch = tutorial["train"] + tutorial["val"]
    artlab_training = tr["frozen_cache_seconds"] + tr["train_seconds"]
    common.note(f"tutorial loop, one epoch: train {tutorial['train']:.1f} s ({tutorial['n_train']} paintings), val "
                f"{tutorial['val']:.1f} s ({tutorial['n_val']})")
    common.result("tutorial loop (ImageFolder + DataLoader(2 workers)), one epoch, s", f"{epoch:.1f}")
    common.result(f"tutorial loop, {epochs} epochs" + (", s" if full else " PROJECTED to 8,000 paintings, min"),
                  f"{epoch * epochs:.0f}" if full else f"{epoch * epochs / scale / 60:.1f}")
    ratio = epoch * epochs / artlab_training
    common.result(f"speed-up over the tutorial, {epochs} epochs (artlab: frozen cache + epochs)", f"{ratio:.2f}x",
                  f">= {TARGET_SPEEDUP:g}x", ratio >= TARGET_SPEEDUP)
    common.result(f"speed-up over the tutorial, {epochs} epochs, whole artlab train (kNN, run folder)",
                  f"{epoch * epochs / (train_s - startup):.2f}x")


if __name__ == "__main__":
    sys.exit(main())
