"""How faithful are the explanations? ROAD and a keep-the-top confidence drop over a run's test paintings.

For each test painting, CAM method and model (the fine-tuned classifier; the kNN baseline with its similarity
target), the CAM ranks the pixels; the scores say how the model's confidence moves when pixels are taken away in that
order, or when only the top ones are kept. A seeded random map at the CAM layer's resolution (as smooth as a real
CAM) is the baseline a method has to beat.

- ROAD (Rong et al. 2022, https://arxiv.org/abs/2202.00449; pytorch-grad-cam's implementation): removed pixels are
  filled by noisy linear imputation from their neighbours, so the model reacts to lost information, not to a hole.
  MoRF removes the most relevant first (lower = more faithful), LeRF the least relevant first (higher = more
  faithful), combined = (LeRF - MoRF) / 2 (higher = more faithful); each averaged over ``PERCENTILES``.
- drop: the confidence lost when only the top ``KEEP`` share of pixels is kept and the rest set to the mean colour
  (lower = more faithful).

"Confidence" is the softmax probability of the explained (predicted) class for the fine-tuned model, and the
similarity target's value (mean cosine similarity to the neighbours of the predicted class) for the kNN baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam.metrics.cam_mult_image import multiply_tensor_with_cam
from pytorch_grad_cam.metrics.perturbation_confidence import RemoveLeastRelevantFirst, RemoveMostRelevantFirst
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn

from artlab.collection.contract import read_manifest
from artlab.errors import ArtlabError, ImageError, RunError
from artlab.explain.cams import METHODS, check_methods, NeighbourSimilarity, finetuned_cam, knn_cam
from artlab.images import load_image
from artlab.explain.predictor import Predictor
from artlab.progress import Progress
from artlab.runfolder import Run
from artlab.safety import contained

log = logging.getLogger(__name__)

DEFAULT_METHODS = tuple(m for m in METHODS if m != "scorecam")  # ScoreCAM: one forward pass per channel per painting
PERCENTILES = (25, 50, 75)  # ROAD removes 75%, 50% and 25% of the pixels
KEEP = 0.25
RANDOM = "random"
SCORES = ("confidence", "road_morf", "road_lerf", "road_combined", "drop")
BATCH = 16


def test_paintings(run: Run, limit: int | None = None) -> list[tuple[str, Path]]:
    """(id, image path) of the run's test paintings, in predictions.csv order, at most ``limit``."""
    ids = run.predictions()["id"].astype(str).tolist()[:limit]
    root = run.collection
    if root is None:
        raise RunError(f"the faithfulness scores need the run's paintings, but its collection "
                       f"{run.card['task'].get('collection', '')} is not here")
    paths = dict(zip(*read_manifest(root)[["id", "path"]].to_numpy().T))
    missing = [i for i in ids if i not in paths]
    if missing:
        raise RunError(f"{len(missing)} test painting(s) of run {run.name} are not in {root}, e.g. {missing[0]}")
    return [(i, contained(root, paths[i], what=f"a path in {root}/manifest.csv")) for i in ids]


def random_map(shape: tuple[int, int], size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise at the CAM layer's resolution, upsampled like a CAM: the baseline every method should beat."""
    return scale_cam_image(scale_cam_image(rng.random((1, *shape), dtype=np.float32), (size, size)))[0]


def perturbations(x: torch.Tensor, cam: np.ndarray, percentiles: Sequence[int], keep: float) -> torch.Tensor:
    """Copies of one input (3 x H x W): ROAD most-relevant-first per percentile, least-relevant-first per percentile,
    then only the top ``keep`` share of pixels kept (the others at 0: the mean colour after normalisation)."""
    mask, imputer = torch.from_numpy(cam), NoisyLinearImputer()
    out = [RemoveMostRelevantFirst(p, imputer)(x, mask) for p in percentiles]
    out += [RemoveLeastRelevantFirst(p, imputer)(x, mask) for p in percentiles]
    top = torch.from_numpy((cam >= np.quantile(cam, 1 - keep)).astype(np.float32))
    out.append(multiply_tensor_with_cam(x, top))
    return torch.stack(out)


@torch.no_grad()
def confidences(model: nn.Module, target: Callable, batch: torch.Tensor) -> np.ndarray:
    outputs = torch.cat([model(batch[i:i + BATCH]) for i in range(0, len(batch), BATCH)])
    return np.array([float(target(o)) for o in outputs])


def _scores(after: np.ndarray, base: float, n_percentiles: int) -> dict[str, float]:
    change = after - base
    morf, lerf = change[:n_percentiles].mean(), change[n_percentiles:2 * n_percentiles].mean()
    return {"confidence": base, "road_morf": morf, "road_lerf": lerf, "road_combined": (lerf - morf) / 2,
            "drop": base - after[-1]}


def painting_scores(predictor: Predictor, image, methods: Sequence[str], percentiles: Sequence[int] = PERCENTILES,
                    keep: float = KEEP, rng: np.random.Generator | None = None) -> list[dict]:
    """One row per (model, method) for one painting, the random baseline included."""
    x = predictor.cam_tensor(image)  # the view the CAMs are drawn on
    with predictor.lock:
        ft = {m: finetuned_cam(predictor, x, m) for m in methods}
        kn = {m: knn_cam(predictor, x, m) for m in methods}
    first_ft, first_pass = ft[methods[0]][0], ft[methods[0]][1]
    first_kn = kn[methods[0]][0]
    models = {  # model name -> (network, target, base confidence, maps)
        "finetuned": (predictor.classifier, ClassifierOutputSoftmaxTarget(first_ft.target),
                      float(first_ft.probs[first_ft.target]), {m: e.cam for m, (e, _) in ft.items()}),
        "knn": (predictor.embedder, NeighbourSimilarity(predictor.knn.unit_[first_kn.neighbours]), first_kn.similarity,
                {m: e.cam for m, (e, _) in kn.items()}),
    }
    noise = random_map(tuple(first_pass.activations.shape[-2:]), x.shape[-1], rng or np.random.default_rng(0))
    shared = perturbations(x[0], noise, percentiles, keep)  # the same random map for both models
    rows = []
    for name, (net, target, base, maps) in models.items():
        batches = [perturbations(x[0], cam, percentiles, keep) for cam in maps.values()] + [shared]
        after = confidences(net, target, torch.cat(batches)).reshape(len(batches), -1)
        for method, a in zip([*maps, RANDOM], after):
            rows.append({"model": name, "method": method, **_scores(a, base, len(percentiles))})
    return rows


def faithfulness(predictor: Predictor, methods: Sequence[str] = DEFAULT_METHODS, limit: int | None = None,
                 percentiles: Sequence[int] = PERCENTILES, keep: float = KEEP, seed: int = 0,
                 progress: Progress | None = None) -> pd.DataFrame:
    """Mean scores over the run's test paintings: one row per model and method, then the random baseline.

    ``seed`` fixes the random maps and the imputer's noise, so the table is the same on every run.
    """
    methods = _check(methods)
    progress = progress or Progress()
    paintings = test_paintings(predictor.run, limit)
    progress.stage("faithfulness", len(paintings))
    rows = []
    for i, (pid, path) in enumerate(paintings):
        try:
            image = load_image(path, min_side=predictor.spec.resize_size)
        except ImageError as exc:
            log.warning("skipped: %s", exc)
            continue
        with torch.random.fork_rng(devices=[]):  # the imputer draws from torch's global generator
            torch.manual_seed(seed * 100_003 + i)
            rows += [{"painting": pid, **r} for r in painting_scores(
                predictor, image, methods, percentiles, keep, np.random.default_rng([seed, i]))]
        progress.advance()
    progress.done()
    if not rows:
        raise ArtlabError("no test painting could be read: nothing to score")
    return _summary(pd.DataFrame(rows))


def _check(methods: Sequence[str]) -> list[str]:
    return check_methods(methods)


def _summary(rows: pd.DataFrame) -> pd.DataFrame:
    table = rows.groupby(["model", "method"], sort=False)[list(SCORES)].mean()
    table.insert(0, "paintings", rows.groupby(["model", "method"], sort=False)["painting"].nunique())
    return table.reset_index()


LEGEND = ("ROAD morf: confidence change removing the most relevant pixels first (lower = more faithful); "
          "lerf: least relevant first (higher = more faithful); combined = (lerf - morf) / 2 (higher = more faithful); "
          "drop: confidence lost keeping only the top {keep:.0%} of pixels (lower = more faithful). "
          "Confidence: fine-tuned = probability of the predicted class, kNN = mean cosine similarity to the "
          "neighbours of the predicted class. 'random' is a seeded random map at the CAM's resolution.")


def format_table(table: pd.DataFrame, keep: float = KEEP) -> str:
    names = {"finetuned": "fine-tuned", "knn": "kNN similarity"}
    shown = table.assign(model=table["model"].map(names).fillna(table["model"]))
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n\n" + LEGEND.format(keep=keep)
