"""Embedding throughput from files on disk (decode -> transform -> Embedder) against the forward pass alone.

Met originals are large scans, so the demo paintings are written out as ~2000 px JPEGs (upscaled, with a little
grain so that they cost what a detailed scan costs to decode). Four ways through the same files, interleaved
round by round:
  memory     the Embedder on tensors already in memory (the ceiling);
  full       load_image at full size, transform, forward, one after the other;
  draft      load_image(min_side=resize size): JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale;
  prefetch   draft decoding in background threads (artlab.prefetch) while the model runs the batch before.

    python benchmarks/bench_embed_throughput.py [RUN] [--images 48] [--side 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import common

common.steady_process()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from artlab.backbones import get_backbone  # noqa: E402
from artlab.data import ImageDataset  # noqa: E402
from artlab.images import load_image  # noqa: E402
from artlab.models import Embedder  # noqa: E402
from artlab.prefetch import prefetch_batches  # noqa: E402
from artlab.transforms import eval_transform  # noqa: E402

TARGET_RATIO = 0.85
BATCH = 16


def large_copies(collection: Path, n: int, side: int) -> list[Path]:
    """``n`` demo paintings as JPEGs with a ``side`` px long side (quality 90, a little grain), in a temp folder."""
    out = common.workdir() / f"large{side}"
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for src in sorted((collection / "images").glob("*.jpg"))[:n]:
        im = load_image(src)
        scale = side / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
        grain = rng.normal(0, 4, (im.height, im.width, 1))
        im = Image.fromarray(np.clip(np.asarray(im, dtype=np.float32) + grain, 0, 255).astype(np.uint8))
        path = out / src.name
        im.save(path, quality=90)
        paths.append(path)
    return paths


class Pipelines:
    """The four ways to embed the same files; each call embeds all of them and returns the embeddings."""

    def __init__(self, embedder: Embedder, spec, paths: list[Path]):
        self.embedder, self.spec, self.paths = embedder, spec, paths
        self.transform = eval_transform(spec)
        self.tensors = [torch.stack([self.transform(load_image(p)) for p in paths[i:i + BATCH]])
                        for i in range(0, len(paths), BATCH)]

    @torch.inference_mode()
    def memory(self) -> torch.Tensor:
        return torch.cat([self.embedder(x) for x in self.tensors])

    @torch.inference_mode()
    def sequential(self, min_side: int | None) -> torch.Tensor:
        out = []
        for i in range(0, len(self.paths), BATCH):
            x = torch.stack([self.transform(load_image(p, min_side=min_side)) for p in self.paths[i:i + BATCH]])
            out.append(self.embedder(x))
        return torch.cat(out)

    @torch.inference_mode()
    def prefetch(self, threads: int = 2) -> torch.Tensor:
        ds = ImageDataset(self.paths[0].parent, [p.name for p in self.paths], self.transform,
                          min_side=self.spec.resize_size)
        return torch.cat([self.embedder(x) for x in prefetch_batches(ds, BATCH, threads=threads)])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", default=None, help="a run folder (its backbone and embedder); default "
                   "efficientnet_lite0 with its ImageNet weights")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--side", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    if args.run:
        from artlab.runs import Run
        run = Run.open(args.run)
        spec, embedder = run.spec, run.embedder()
    else:
        spec = get_backbone("efficientnet_lite0")
        embedder = Embedder(spec.parts(pretrained=True)[0])
    embedder.eval()
    paths = large_copies(common.demo_collection(), args.images, args.side)
    mb = np.mean([p.stat().st_size for p in paths]) / 1e6
    with Image.open(paths[0]) as im0:
        size0 = im0.size
    common.header(f"embedding throughput: {spec.name}, {len(paths)} JPEGs of ~{args.side} px (e.g. {size0[0]}x"
                  f"{size0[1]}, {mb:.2f} MB each), batch {BATCH}, {common.torch_threads()} torch threads; "
                  f"files -> decode -> transform -> forward vs forward on tensors in memory")
    pipes = Pipelines(embedder, spec, paths)
    check_same_embeddings(pipes)
    variants = {"memory": pipes.memory, "full": lambda: pipes.sequential(None),
                "draft": lambda: pipes.sequential(spec.resize_size), "prefetch": pipes.prefetch}
    times = common.interleaved(variants, rounds=args.rounds, warmup=1)
    report(times, len(paths))
    return common.finish()


def check_same_embeddings(pipes: Pipelines) -> None:
    """Draft decoding changes pixels slightly (a smaller IDCT, then the same resize); it must not change features."""
    a, b = pipes.memory(), pipes.prefetch()
    cos = torch.nn.functional.cosine_similarity(a, b).min().item()
    common.note(f"embeddings from draft-decoded files vs full decoding: min cosine similarity {cos:.4f}")


def report(times: dict[str, list[float]], n: int) -> None:
    rate = {name: n / common.median(t) for name, t in times.items()}
    common.note("seconds per pass: " + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    common.result("images/s, forward on tensors in memory", f"{rate['memory']:.1f}")
    for name, what in (("full", "full decode, sequential"), ("draft", "draft decode, sequential")):
        common.result(f"images/s, {what}", f"{rate[name]:.1f}")
        common.result(f"ratio {name} / memory", f"{rate[name] / rate['memory']:.2f}")
    for name in ("full", "draft"):
        cost = (common.median(times[name]) - common.median(times["memory"])) / n * 1000
        common.result(f"ms/image of {name} decode + transform", f"{cost:.1f}")
    common.result("ms/image of the forward pass", f"{common.median(times['memory']) / n * 1000:.1f}")
    common.result("images/s, draft decode + prefetch threads", f"{rate['prefetch']:.1f}")
    ratio = rate["prefetch"] / rate["memory"]
    common.result("ratio prefetch / memory", f"{ratio:.2f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO)


if __name__ == "__main__":
    sys.exit(main())
