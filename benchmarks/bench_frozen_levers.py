"""The levers of the frozen-feature cache, measured one at a time on the genre study's backbone (DenseNet121).

Partial fine-tuning of the GenRe study spends most of a CPU run computing the frozen part (DenseNet121 up to
transition3) over every painting's eval view and a few augmented views of each training painting, then trains
denseblock4 + the head on the cached outputs. Each lever is measured here on the same synthetic 1024 px paintings
(benchmarks/paintings.py), variants interleaved round by round, medians:

  frozen forward    no_grad vs inference_mode, contiguous vs channels_last, batch 32, on tensors in memory;
  torch threads     the frozen forward on 1 thread vs all usable CPUs;
  decoding          load_image full size vs JPEG draft mode (decoding at 1/2-1/8 scale), + the eval transform;
  overlap           decode + forward one after the other vs artlab.train.data.in_order (decoding threads beside
                    the model);
  cached views      a training epoch (denseblock4 + head, Adam) from float32 vs float16 cached features.

Random weights (the timings do not depend on their values).

    python benchmarks/bench_frozen_levers.py [--images 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys

import common

common.steady_process()

import torch  # noqa: E402
from torch import nn  # noqa: E402

from artlab.images import load_image  # noqa: E402
from artlab.model.backbones import get_backbone  # noqa: E402
from artlab.model.classifier import Classifier, Head, apply_method, train_mode  # noqa: E402
from artlab.model.transforms import eval_transform  # noqa: E402
from artlab.train.data import ImageDataset, in_order  # noqa: E402
from paintings import GENRES, write_paintings  # noqa: E402

BATCH = 32


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    folder = common.workdir() / "paintings"
    write_paintings(folder, per_class=max(1, args.images // len(GENRES)))
    paths = sorted(folder.rglob("*.jpg"))
    spec = get_backbone("densenet121")
    torch.manual_seed(0)
    parts, _ = spec.parts(pretrained=False)
    model = apply_method(Classifier(parts, Head("linear", spec.feature_dim, len(GENRES))), "partial").eval()
    threads = torch.get_num_threads()
    common.header(f"frozen-part levers: DenseNet121 (random weights) up to transition3, {len(paths)} synthetic 1024 px "
                  f"JPEGs, batch {BATCH}, {threads} torch threads, {common.cpu_count()} CPUs")
    tf = eval_transform(spec)
    x = [torch.stack([tf(load_image(q)) for q in paths[i:i + BATCH]]) for i in range(0, len(paths), BATCH)]
    forward_levers(model, x, len(paths), args.rounds, threads)
    decode_levers(model, spec, paths, args.rounds)
    view_storage(model, x, args.rounds)
    return common.finish()


def _stem_pass(model, x, grad_mode, channels_last: bool):
    """One pass of the frozen stem over the batches; sets the stem's memory format first (variants alternate)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run():
        model.stem.to(memory_format=fmt)
        with grad_mode():
            return [model.stem(b.contiguous(memory_format=fmt)) for b in x]
    return run


def forward_levers(model, x, n, rounds, threads) -> None:
    names = ("no_grad", "inference_mode", "no_grad+channels_last", "inference_mode+channels_last")
    calls = {k: _stem_pass(model, x, *_grad_fmt(k)) for k in names}
    times = common.interleaved(calls, rounds=rounds, warmup=1)
    common.note("seconds per pass: " + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    base = common.median(times["no_grad"])
    for k, t in times.items():
        common.result(f"frozen forward, {k}: images/s", f"{n / common.median(t):.1f}")
    for k in names[1:]:
        common.result(f"frozen forward, {k} / no_grad speed-up", f"{base / common.median(times[k]):.2f}x")
    if threads > 1:
        by_threads = {}
        for t in (1, threads):
            torch.set_num_threads(t)
            by_threads[t] = common.interleaved({"f": calls["no_grad+channels_last"]}, rounds=rounds, warmup=1)["f"]
        torch.set_num_threads(threads)
        common.result(f"frozen forward, {threads} threads / 1 thread speed-up",
                      f"{common.median(by_threads[1]) / common.median(by_threads[threads]):.2f}x")
    model.stem.to(memory_format=torch.contiguous_format)


def _grad_fmt(name: str):
    return (torch.inference_mode if "inference" in name else torch.no_grad), "channels_last" in name


def decode_levers(model, spec, paths, rounds) -> None:
    tf = eval_transform(spec)

    def decode(min_side):
        return lambda: [tf(load_image(q, min_side=min_side)) for q in paths]

    def sequential():
        with torch.no_grad():
            for i in range(0, len(paths), BATCH):
                model.stem(torch.stack([tf(load_image(q, min_side=spec.resize_size)) for q in paths[i:i + BATCH]]))

    def overlapped():
        ds = ImageDataset(paths[0].parent.parent, [str(q.relative_to(paths[0].parent.parent)) for q in paths], tf,
                          min_side=spec.resize_size)
        with torch.no_grad():
            for b in in_order(ds, BATCH):
                model.stem(b)

    times = common.interleaved({"full": decode(None), "draft": decode(spec.resize_size), "sequential": sequential,
                                "overlapped": overlapped}, rounds=rounds, warmup=1)
    common.note("seconds per pass: " + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    ms = {k: common.median(v) / len(paths) * 1000 for k, v in times.items()}
    common.result("decode + eval transform, full size: ms/painting", f"{ms['full']:.1f}")
    common.result("decode + eval transform, draft mode: ms/painting", f"{ms['draft']:.1f}")
    common.result("decode + frozen forward, sequential / overlapped speed-up",
                  f"{ms['sequential'] / ms['overlapped']:.2f}x")


def view_storage(model, x, rounds) -> None:
    """One training epoch of denseblock4 + head over cached stem outputs stored as float32 or float16."""
    with torch.no_grad():
        feats = torch.cat([model.stem(b) for b in x])
    y = torch.arange(len(feats)) % len(GENRES)
    stores = {"float32": feats, "float16": feats.half(), "bfloat16": feats.bfloat16()}
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-4)

    def epoch(store):
        def run():
            train_mode(model, "partial")
            for i in range(0, len(store), BATCH):
                loss = criterion(model.from_stem(store[i:i + BATCH].float()), y[i:i + BATCH])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
        return run

    times = common.interleaved({k: epoch(v) for k, v in stores.items()}, rounds=rounds, warmup=1)
    common.note("seconds per epoch: " + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    base = common.median(times["float32"])
    with torch.no_grad():
        ref = model.from_stem(feats)
        for k in ("float16", "bfloat16"):
            err = (model.from_stem(stores[k].float()) - ref).abs().max() / ref.abs().max()
            common.result(f"cached views in {k}: epoch speed-up over float32", f"{base / common.median(times[k]):.2f}x")
            common.result(f"cached views in {k}: memory / float32, largest logit error (relative)",
                          f"0.50, {float(err):.1e}")
    common.result("cached view size, float32 (one painting)", f"{feats[0].numel() * 4 / 1e3:.0f} KB")


if __name__ == "__main__":
    sys.exit(main())
