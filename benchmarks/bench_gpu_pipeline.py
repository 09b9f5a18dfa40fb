"""The culture study's GPU path: ResNet50 fine-tuning (every layer trained on images every epoch) and its input
pipeline, the way artlab.train.runner trains finetune and scratch rows.

Synthetic 1024 px paintings (benchmarks/paintings.py) through artlab's own pieces: ImageDataset (draft decoding, the
train transform), artlab.train.loaders.run_loader (one DataLoader for the run: persistent workers, prefetching, pinned
memory) and artlab.train.accel (bfloat16 autocast, channels_last). Per variant, two epochs (the first warms up cuDNN and
starts the workers, the second is measured): images/s and the fraction of each training step spent waiting for the
next batch (time blocked in the loader / (that + the step, synchronised)).

  float32          no autocast, contiguous tensors;
  bf16+NHWC        what the runner does on CUDA (artlab.train.accel.for_device);
  bf16+NHWC, 2 w.  the same with 2 loader workers instead of all usable CPUs (a laptop's input pipeline).

Where there is no CUDA device it prints one line and exits 0 (the CPU build never depends on a GPU).

    python benchmarks/bench_gpu_pipeline.py [--images 1024] [--batch-size 64] [--workers N]
"""

from __future__ import annotations

import argparse
import sys
import time

import common

common.steady_process()

import torch  # noqa: E402
from torch import nn  # noqa: E402

TARGET_WAIT = 0.10  # at most a tenth of a step waiting for data, with the machine's CPUs decoding


def main() -> int:
    if not torch.cuda.is_available():
        print("# GPU input pipeline (bench_gpu_pipeline.py): skipped, no CUDA device on this machine")
        return 0
    from artlab.model.backbones import get_backbone
    from artlab.model.classifier import Classifier, Head, apply_method
    from artlab.model.transforms import train_transform
    from artlab.train.accel import NONE, for_device
    from artlab.train.data import ImageDataset, usable_cpus
    from artlab.train.loaders import run_loader
    from paintings import GENRES, write_paintings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="loader workers (default: usable CPUs - 1, at most 16)")
    args = p.parse_args()
    device = torch.device("cuda")
    workers = args.workers or max(1, min(16, usable_cpus() - 1))
    folder = common.workdir() / "paintings"
    write_paintings(folder, per_class=max(1, args.images // len(GENRES)), processes=usable_cpus())
    paths = sorted(str(q.relative_to(folder)) for q in folder.rglob("*.jpg"))
    labels = [GENRES.index(q.split("/")[0]) for q in paths]
    spec = get_backbone("resnet50")
    ds = ImageDataset(folder, paths, train_transform(spec), min_side=spec.resize_size, labels=labels)
    common.header(f"GPU input pipeline: ResNet50 fine-tuning (random weights), {len(ds)} synthetic 1024 px JPEGs, "
                  f"batch {args.batch_size}, {torch.cuda.get_device_name()}, {usable_cpus()} CPUs")
    accel = for_device(device)
    for name, acc, w in (("float32", NONE, workers), (f"{accel.card()['autocast']}+NHWC", accel, workers),
                         (f"{accel.card()['autocast']}+NHWC, 2 workers", accel, 2)):
        torch.manual_seed(0)
        parts, _ = spec.parts(pretrained=False)
        model = apply_method(Classifier(parts, Head("mlp3", spec.feature_dim, len(GENRES))), "finetune").to(device)
        if acc.channels_last:
            model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        draw = lambda: [b.tolist() for b in torch.randperm(len(ds)).split(args.batch_size)]  # noqa: E731
        dl = run_loader(ds, draw, -(-len(ds) // args.batch_size), device, w)
        for epoch in range(2):
            wait, step, n, t0 = epoch_timings(model, opt, dl, device, acc)
        common.note(f"{name}: {w} workers, measured epoch {t0:.1f} s, waiting {wait:.1f} s, steps {step:.1f} s")
        frac = wait / (wait + step)
        common.result(f"ResNet50 fine-tuning, {name}: images/s", f"{n / t0:.0f}")
        common.result(f"ResNet50 fine-tuning, {name}: fraction of a step waiting for data", f"{frac:.2f}",
                      f"<= {TARGET_WAIT}" if w == workers and acc is accel else "-",
                      frac <= TARGET_WAIT if w == workers and acc is accel else None)
        del dl
    return common.finish()


def epoch_timings(model, opt, dl, device, acc) -> tuple[float, float, int, float]:
    """(seconds blocked on the loader, seconds in synchronised steps, images, epoch seconds)."""
    criterion = nn.CrossEntropyLoss()
    model.train()
    wait = step = 0.0
    n = 0
    t_epoch = time.perf_counter()
    it = dl()
    while True:
        t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        x, y = acc.inputs(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        with acc.context(device):
            loss = criterion(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        wait, step, n = wait + t1 - t0, step + time.perf_counter() - t1, n + len(y)
    return wait, step, n, time.perf_counter() - t_epoch


if __name__ == "__main__":
    sys.exit(main())
