"""What an explanation costs, against the passes it cannot do without.

(a) one Grad-CAM of the fine-tuned classifier (``artlab.explain.finetuned_cam``: hooks, the CAM, the logits from the
    same pass) against one plain forward+backward of the same classifier on the same input tensor (the predicted
    class's logit backpropagated, parameters as trained). Target: at most 1.3x.
(b) one uploaded painting end to end (``explain_both``: transform, both predictions, both CAMs, the feature map)
    against the raw forward+backward of the two backbones involved: the classifier as in (a), and the frozen kNN
    embedder with the input requiring grad (the only way a plain backward pass reaches a frozen network).
    Target: at most 1.5x.

Two figures for context (INFO): pytorch-grad-cam used plainly on the same classifier, against the same
forward+backward (what ``explain.gradients_from`` saves by starting the backward pass at the CAM layer), and
``explain_both`` against a plain prediction of both models (what an explanation adds to a prediction in the app).

Variants are interleaved round by round after a warm-up; figures are ratios of medians. Run it with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000`` (the script restarts itself with them when unset):
otherwise glibc hands memory back after every pass and CPU timings swing 10x.

    python benchmarks/bench_explain.py [RUN] [--rounds 15]

Without RUN it builds the demo collection and trains a small run (1 epoch, 1 cached view) in a temporary folder.
"""

from __future__ import annotations

import argparse
import sys

import common

common.steady_process()

import torch  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from artlab.explain import cams as E  # noqa: E402
from artlab.explain.faithfulness import test_paintings  # noqa: E402
from artlab.images import load_image  # noqa: E402
from artlab.explain.predictor import Predictor  # noqa: E402
from artlab.runfolder import Run  # noqa: E402

TARGET_CAM, TARGET_BOTH = 1.3, 1.5


def forward_backward(model: torch.nn.Module, x: torch.Tensor, pick) -> None:
    """One plain training-style pass: forward, a scalar, backward (parameter gradients as the model has them)."""
    model.zero_grad(set_to_none=True)
    pick(model(x)).backward()


def variants(predictor: Predictor, image) -> dict:
    x = predictor.tensor([image])
    x_grad = x.clone().requires_grad_(True)
    with torch.no_grad():
        c = int(predictor.classifier(x).argmax())

    def gradcam():
        with predictor.lock:
            E.finetuned_cam(predictor, x, "gradcam")

    def classifier_fb():
        forward_backward(predictor.classifier, x, lambda out: out[0, c])

    def backbones_fb():
        classifier_fb()
        x_grad.grad = None
        forward_backward(predictor.embedder, x_grad, lambda out: out.norm())

    def plain_gradcam():  # pytorch-grad-cam as its README uses it: backward through the whole trainable part
        model = predictor.classifier
        with GradCAM(model=model, target_layers=[model.cam_layer]) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])

    return {"gradcam": gradcam, "classifier_fb": classifier_fb, "plain_gradcam": plain_gradcam,
            "explain_both": lambda: E.explain_both(predictor, image), "backbones_fb": backbones_fb,
            "predict": lambda: predictor.predict_images([image])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", default=None, help="a run folder; default: a small run trained now")
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    run = Run.open(args.run) if args.run else Run.open(common.small_run(epochs=1, cache_views=1))
    predictor = Predictor(run)
    image = load_image(test_paintings(run, limit=1)[0][1])  # a painting neither model was trained on
    common.header(f"explanation cost: run {run.name} ({run.spec.name} {run.card['method']}), one painting "
                  f"{image.size[0]}x{image.size[1]}, {common.torch_threads()} torch threads, {args.rounds} rounds")
    times = common.interleaved(variants(predictor, image), rounds=args.rounds, warmup=2)
    common.note("seconds per call: " + ", ".join(f"{k} {common.spread(v)}" for k, v in times.items()))
    med = {k: common.median(v) for k, v in times.items()}
    cam = med["gradcam"] / med["classifier_fb"]
    both = med["explain_both"] / med["backbones_fb"]
    common.result("Grad-CAM / forward+backward (fine-tuned)", f"{cam:.2f}x", f"<= {TARGET_CAM}x", cam <= TARGET_CAM)
    common.result("explain_both / fwd+bwd of both backbones", f"{both:.2f}x", f"<= {TARGET_BOTH}x",
                  both <= TARGET_BOTH)
    common.result("plain pytorch-grad-cam GradCAM / fwd+bwd", f"{med['plain_gradcam'] / med['classifier_fb']:.2f}x")
    common.result("explain_both / predict (no_grad, both models)", f"{med['explain_both'] / med['predict']:.2f}x")
    return common.finish()


if __name__ == "__main__":
    sys.exit(main())
