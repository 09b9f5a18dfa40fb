"""Embedding throughput from files on disk (decode -> transform -> Embedder) against the forward pass alone.

The judged figure is measured on the files a collection holds: the builders (`artlab data met|folder`) store JPEGs
shrunk to ``artlab.collection.contract.MAX_SIDE`` (1024 px) at quality 90, and training, the runner and ``artlab predict`` read
those. Copies of the demo paintings are written at that size, with a little grain so that they cost what a detailed
painting costs to decode; the same is then measured on ~2000 px copies (large scans kept whole), as information.
Four ways through the same files, interleaved round by round:
  memory     the Embedder on tensors already in memory (the ceiling);
  full       load_image at full size, transform, forward, one after the other;
  draft      load_image(min_side=resize size): JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale;
  runner     what the runner does (artlab.train.data.in_order): draft decoding in background threads while the model runs
             the batch before.

On a CPU the forward pass already keeps every core busy, so overlapping cannot hide decoding, only fill the gaps:
the best possible ratio is forward / (forward + decode) in core-seconds, printed as "ceiling". The judged figure is
the runner's ratio as a fraction of that ceiling (>= 0.95: what the machine allows, less 5%); the ratio to the model
alone is printed as information (on two CPUs EfficientNet-Lite0's ceiling is itself about 0.85).

Measured for the embedded default (EfficientNet-Lite0, a very cheap forward pass: the hardest case) and the genre
study's DenseNet121 (random weights offline; the timing does not depend on them).

    python benchmarks/bench_embed_throughput.py [RUN] [--backbones efficientnet_lite0,densenet121] [--images 48]
                                               [--sides 1024,2000] [--rounds 3]
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

from artlab.model.backbones import get_backbone  # noqa: E402
from artlab.collection.contract import MAX_SIDE  # noqa: E402
from artlab.train.data import ImageDataset, in_order  # noqa: E402
from artlab.images import load_image  # noqa: E402
from artlab.model.classifier import Embedder  # noqa: E402
from artlab.model.transforms import eval_transform  # noqa: E402

TARGET_OF_CEILING = 0.95  # the runner must reach this fraction of what the machine allows (the ceiling)
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
    def runner(self) -> torch.Tensor:
        ds = ImageDataset(self.paths[0].parent, [p.name for p in self.paths], self.transform,
                          min_side=self.spec.resize_size)
        return torch.cat([self.embedder(x) for x in in_order(ds, BATCH)])


def embedder_for(name: str) -> tuple[object, Embedder, str]:
    """(spec, eval-mode Embedder, where its weights came from). Backbones without offline weights get random ones:
    the timing does not depend on the values of the weights."""
    spec = get_backbone(name)
    pretrained = common.weights_at_hand(spec)
    parts, _ = spec.parts(pretrained=pretrained)
    return spec, Embedder(parts).eval(), "ImageNet weights" if pretrained else "random weights, timing only"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", default=None, help="a run folder (its backbone and embedder) instead of "
                   "--backbones")
    p.add_argument("--backbones", default="efficientnet_lite0,densenet121",
                   help="the embedded default and the genre study's backbone")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--sides", default=f"{MAX_SIDE},2000", help="long sides of the copies; the first is judged")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    if args.run:
        from artlab.runfolder import Run
        run = Run.open(args.run)
        models = [(run.spec, run.embedder().eval(), f"run {args.run}")]
    else:
        models = [embedder_for(name) for name in args.backbones.split(",")]
    threads = common.torch_threads()
    for spec, embedder, weights in models:
        for i, side in enumerate(int(s) for s in args.sides.split(",")):
            paths = large_copies(common.demo_collection(), args.images, side)
            mb = np.mean([p.stat().st_size for p in paths]) / 1e6
            with Image.open(paths[0]) as im0:
                size0 = im0.size
            what = "as collections store them" if side == MAX_SIDE else "large scans kept whole"
            common.header(f"embedding throughput: {spec.name} ({weights}), {len(paths)} JPEGs of ~{side} px, {what} "
                          f"(e.g. {size0[0]}x{size0[1]}, {mb:.2f} MB each), batch {BATCH}, {threads} torch threads, "
                          f"{common.cpu_count()} CPUs; files -> decode -> transform -> forward vs forward on tensors")
            pipes = Pipelines(embedder, spec, paths)
            if "random" not in weights:
                check_same_embeddings(pipes)
            variants = {"memory": pipes.memory, "full": lambda: pipes.sequential(None),
                        "draft": lambda: pipes.sequential(spec.resize_size), "runner": pipes.runner}
            times = common.interleaved(variants, rounds=args.rounds, warmup=1)
            report(times, len(paths), f"{spec.name}, {side} px", threads, judged=i == 0)
            if i == 0 and threads > 1:
                spare_core(pipes, len(paths), f"{spec.name}, {side} px", threads, args.rounds)
    return common.finish()


def spare_core(pipes: Pipelines, n: int, what: str, threads: int, rounds: int) -> None:
    """The same with torch on one thread fewer, so that a core is free for decoding: what overlapping achieves when
    the forward pass does not need every core (as when it runs on a GPU)."""
    torch.set_num_threads(threads - 1)
    try:
        times = common.interleaved({"memory": pipes.memory, "runner": pipes.runner}, rounds=rounds, warmup=1)
    finally:
        torch.set_num_threads(threads)
    ratio = common.median(times["memory"]) / common.median(times["runner"])
    common.note(f"torch on {threads - 1} thread(s), one CPU left for decoding: "
                + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    common.result(f"{what}: ratio runner / memory, a CPU left for decoding", f"{ratio:.2f}")


def check_same_embeddings(pipes: Pipelines) -> None:
    """Draft decoding changes pixels slightly (a smaller IDCT, then the same resize); it must not change features."""
    a, b = pipes.memory(), pipes.runner()
    cos = torch.nn.functional.cosine_similarity(a, b).min().item()
    common.note(f"embeddings from draft-decoded files vs full decoding: min cosine similarity {cos:.4f}")


def report(times: dict[str, list[float]], n: int, what: str, threads: int, judged: bool) -> None:
    rate = {name: n / common.median(t) for name, t in times.items()}
    ms = {name: common.median(t) / n * 1000 for name, t in times.items()}
    common.note("seconds per pass: " + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    common.result(f"{what}: ms/image, forward pass", f"{ms['memory']:.1f}")
    for name in ("full", "draft"):
        common.result(f"{what}: ms/image, {name} decode + transform", f"{ms[name] - ms['memory']:.1f}")
    common.result(f"{what}: images/s, forward on tensors in memory", f"{rate['memory']:.1f}")
    common.result(f"{what}: images/s, draft, sequential", f"{rate['draft']:.1f}")
    common.result(f"{what}: images/s, runner (draft + threads)", f"{rate['runner']:.1f}")
    # With every core busy, the pipeline can at best spend the forward's core-time plus decoding's (one core).
    forward_core, decode_core = ms["memory"] * min(threads, common.cpu_count()), ms["draft"] - ms["memory"]
    ceiling = forward_core / (forward_core + decode_core)
    common.result(f"{what}: ceiling with all {common.cpu_count()} CPUs busy", f"{ceiling:.2f}")
    ratio = rate["runner"] / rate["memory"]
    common.result(f"{what}: ratio runner / memory (model only)", f"{ratio:.2f}")
    name = f"{what}: runner / ceiling"
    if judged:
        common.result(name, f"{ratio / ceiling:.2f}", f">= {TARGET_OF_CEILING}", ratio / ceiling >= TARGET_OF_CEILING)
    else:
        common.result(name, f"{ratio / ceiling:.2f}")


if __name__ == "__main__":
    sys.exit(main())
