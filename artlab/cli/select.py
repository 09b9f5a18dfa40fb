"""``python -m artlab.cli.select`` (``make demo-select``): cross-validate the demo candidates of each task and write
the results files (artlab.train.selection); an interrupted selection resumes per candidate."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from artlab.progress import TqdmProgress
from artlab.train.selection import TODAY, default_candidates, markdown, select, write_results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m artlab.cli.select",
                                description="Model selection by repeated, artist-grouped cross-validation.")
    p.add_argument("--collection", default="data/demo")
    p.add_argument("--out", default="runs/demo-cv", help="results and the feature cache go here")
    p.add_argument("--labels", nargs="+", default=["genre", "culture"])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--head-backbones", nargs="+", default=None,
                   help="train heads only on these backbones (kNN and centroid run on every backbone)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)  # head fits are tiny: one thread each, tasks side by side
    out, candidates = Path(a.out), default_candidates(tuple(a.backbones), a.head_backbones)
    for label in a.labels:
        pool = candidates + [TODAY[label]] if label in TODAY and TODAY[label] not in candidates else candidates
        sel = select(a.collection, label, pool, out / "features", a.folds, a.repeats, progress=TqdmProgress())
        baseline = TODAY[label].name if label in TODAY else None
        print(markdown(sel, baseline))
        print(f"results written to {write_results(out, sel, baseline)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
