"""Why a model said what it said: class activation maps of both models of a run, and the culture study's feature map.

- The fine-tuned classifier: Grad-CAM and the other pytorch-grad-cam methods on the backbone's CAM layer, for the
  predicted class or any other.
- The kNN baseline has no head to differentiate. What decides its vote is how similar the painting's embedding is to
  its nearest training paintings, so the target explained is the mean cosine similarity to the neighbours of the
  predicted class (``NeighbourSimilarity``); EigenCAM is the gradient-free alternative.
- The culture study's view: the CAM layer's output summed over channels.

A ``Predictor`` is shared by the app's sessions; everything here that registers hooks holds ``predictor.lock``,
registers them on the models' explanation twins (``twin``: same weights, own hooks, so unlocked predictions in other
threads never run through them) and removes them on the way out, error or not (``predictor_hooks`` lets tests check).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import weakref
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from artlab.model.backbones import BackboneSpec
from artlab.errors import ConfigError
from artlab.runfolder import MODELS
from artlab.images import fit_within
from artlab.report.calibration import softmax
from artlab.explain.predictor import Prediction, Predictor
from artlab.model.knn import l2_normalise
from artlab.model.views import letterbox_box

METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "hirescam": HiResCAM, "scorecam": ScoreCAM,
           "eigencam": EigenCAM, "layercam": LayerCAM}
#: The kNN baseline's methods: "similarity" is Grad-CAM of the similarity target; the others take the same target.
KNN_METHODS = ("similarity", *METHODS)
GRADIENT_FREE = ("scorecam", "eigencam")
SCORECAM_BATCH = 64  # ScoreCAM runs one masked copy of the image per channel; its default batch is 16
SAME_PAINTING = 0.9999  # cosine similarity above which a reference is the painting itself


@dataclasses.dataclass
class Explanation:
    """One CAM. ``cam`` is H x W in [0, 1] at the model's input size: it covers the centre crop the model saw, a
    fraction ``crop`` of the painting's shorter side (pass it on to ``overlay``)."""

    cam: np.ndarray
    target: int  # the class index explained
    scores: np.ndarray  # fine-tuned: softmax probabilities; kNN: vote shares with the similarity tie-break
    method: str
    model: str  # "finetuned" or "knn"
    crop: float = 1.0
    view: str = "centre"  # "whole": the CAM covers the letterboxed whole painting (views.LetterboxTransform)
    neighbours: np.ndarray | None = None  # kNN: indices into knn.X_ of the neighbours the target compares with
    similarity: float | None = None  # kNN: the target's value, mean cosine similarity to those neighbours

    @property
    def probs(self) -> np.ndarray:
        return self.scores


# --- targets: what a CAM explains (small callables, like pytorch_grad_cam.utils.model_targets) ---------------------

class NeighbourSimilarity:
    """Mean cosine similarity between a model output (an embedding) and fixed reference embeddings."""

    def __init__(self, references: np.ndarray):
        self.references = F.normalize(torch.as_tensor(np.asarray(references, dtype=np.float32)), dim=-1)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        embedding = F.normalize(model_output, dim=-1)
        return (embedding @ self.references.to(embedding).T).mean(dim=-1)


class KNNDecision:
    """The kNN baseline's own decision as a target.

    The first embedding it scores (the painting's, in the CAM's forward pass) is run through the kNN: the neighbours
    of the predicted class are kept, and from then on every output is scored by ``NeighbourSimilarity`` to them. So
    one pass gives the decision, the target and the CAM, and perturbed copies are measured against the same neighbours.
    """

    def __init__(self, knn):
        self.knn = knn
        self.target: NeighbourSimilarity | None = None
        self.scores = self.label = self.neighbours = self.similarity = None

    def decide(self, embedding: torch.Tensor) -> None:
        if self.target is not None:
            return
        feats = embedding.detach().float().cpu().numpy().reshape(1, -1)
        _, scores, sims, idx = self.knn.vote(feats)
        self.scores = scores[0]
        self.label = int(np.argmax(self.scores))
        self.neighbours = self._neighbours(feats, sims, idx)
        self.target = NeighbourSimilarity(self.knn.unit_[self.neighbours])
        self.similarity = float(self.target(embedding.detach().float().reshape(-1)))

    def _neighbours(self, feats: np.ndarray, sims: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The k nearest references of the predicted class, leaving out the painting itself if it is one of them.

        A training painting is its own nearest neighbour, and cosine similarity to itself is at its maximum, where its
        gradient is zero: a CAM of that would be noise. If no other neighbour of the class is among the k, the
        nearest other reference of the class stands in.
        """
        of_class = self.knn.y_[idx[0]] == self.label
        keep = idx[0][of_class & (sims[0] < SAME_PAINTING)]
        if len(keep):
            return keep
        sims = (l2_normalise(feats) @ self.knn.unit_.T)[0]
        others = np.flatnonzero((self.knn.y_ == self.label) & (sims < SAME_PAINTING))
        return others[[np.argmax(sims[others])]] if len(others) else idx[0][of_class]

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        self.decide(model_output)
        return self.target(model_output)


# --- hooks and gradients ------------------------------------------------------------------------------------------

_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def count_hooks(module: nn.Module) -> int:
    """Hooks left on a module, its submodules and its parameters (module hooks and tensor hooks)."""
    n = 0
    for m in module.modules():
        n += sum(len(getattr(m, name)) for name in _MODULE_HOOKS)
    for p in module.parameters():
        n += len(p._backward_hooks or {}) + len(getattr(p, "_post_accumulate_grad_hooks", None) or {})
    return n


_TWINS: "weakref.WeakKeyDictionary[nn.Module, nn.Module]" = weakref.WeakKeyDictionary()


def twin(model: nn.Module) -> nn.Module:
    """The module explanations hook into: ``model``'s structure over the very same weights, frozen.

    Hooks belong to a module object and fire for every thread that runs it. Registered on the shared model, they
    would also catch the forward passes of predictions running unlocked in other sessions, and a CAM could take
    another painting's activations. The twin has its own module objects (so its own hooks) over the same parameter
    storage and buffers: no weights are copied, and weights loaded in place into ``model`` show through. Made once
    per model, under the predictor's lock.
    """
    copy_ = _TWINS.get(model)
    if copy_ is None:
        memo = {id(p): nn.Parameter(p.detach(), requires_grad=False) for p in model.parameters()}
        memo.update({id(b): b for b in model.buffers()})
        copy_ = _TWINS[model] = copy.deepcopy(model, memo).eval()
    return copy_


def predictor_hooks(predictor: Predictor) -> int:
    """Hooks left on both models of a predictor and on their explanation twins."""
    models = [predictor.classifier, predictor.embedder]
    return sum(count_hooks(m) for m in models + [_TWINS[m] for m in models if m in _TWINS])


def _leaf(module, inputs, output: torch.Tensor) -> torch.Tensor:
    return output.detach().requires_grad_(True)


@contextlib.contextmanager
def gradients_from(model: nn.Module, layer: nn.Module) -> Iterator[None]:
    """Let gradients start at ``layer``: the model's parameters frozen for the pass, the layer's output a leaf.

    A CAM needs d(target)/d(activations of one layer), nothing more. Cutting the graph at that layer means the
    backward pass covers only the few modules after it (pooling, head) instead of the whole backbone, no parameter
    gradient is computed or left on the shared model, and the frozen kNN embedder (no parameter requires grad) gets
    gradients without making the input require grad. The hook is prepended so the CAM's own hooks see the leaf.
    """
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    handle = layer.register_forward_hook(_leaf, prepend=True)
    try:
        with torch.enable_grad():
            yield
    finally:
        handle.remove()
        for p, flag in saved:
            p.requires_grad_(flag)


@dataclasses.dataclass
class CamPass:
    """What one CAM pass yields: the maps (N x H x W), the model outputs and the CAM layer's activations."""

    maps: np.ndarray
    outputs: torch.Tensor
    activations: torch.Tensor


def compute_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: Sequence[Callable] | None,
                method: str = "gradcam") -> CamPass:
    """One CAM with pytorch-grad-cam, hooks released on exit. The caller holds the model's lock."""
    cam_class = _method_class(method)
    context = torch.no_grad() if method in GRADIENT_FREE else gradients_from(model, layer)
    with context, cam_class(model=model, target_layers=[layer]) as cam:
        if method == "scorecam":
            cam.batch_size = SCORECAM_BATCH
        try:
            maps = cam(input_tensor=x, targets=list(targets) if targets is not None else None)
        except IndexError as exc:  # BaseCAM.__exit__ swallows IndexError (it only prints it): keep it an error
            raise RuntimeError(f"{method} failed: {exc}") from exc
        activations = cam.activations_and_grads.activations[0]
        return CamPass(maps, cam.outputs.detach(), activations)


def check_methods(methods: Sequence[str], allowed: Sequence[str] = tuple(METHODS), what: str = "CAM method",
                  also: Sequence[str] = ()) -> list[str]:
    """The one CAM-method validator: the methods named, each once, in order; else a ConfigError naming the unknown
    ones and the choices (``also``: further words the caller accepts, such as 'all')."""
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in allowed]
    if unknown or not methods:
        named = ", ".join(repr(m) for m in unknown) or "(none)"
        raise ConfigError(f"unknown {what} {named}; choose one of: {', '.join([*allowed, *also])}")
    return methods


def _method_class(method: str):
    check_methods([method])
    return METHODS[method]


def _knn_method(method: str) -> str:
    check_methods([method], KNN_METHODS, "kNN explanation")
    return "gradcam" if method == "similarity" else method


def crop_fraction(spec: BackboneSpec) -> float:
    """The share of a painting's shorter side that the eval transform keeps (its centre crop)."""
    return spec.input_size / spec.resize_size


# --- the explanations ---------------------------------------------------------------------------------------------

def _check_target(target: int | None, classes: list[str]) -> None:
    if target is not None and not 0 <= int(target) < len(classes):
        raise ConfigError(f"class index {target} is out of range: this run has {len(classes)} classes")


def finetuned_cam(predictor: Predictor, x: torch.Tensor, method: str = "gradcam", target: int | None = None
                  ) -> tuple[Explanation, CamPass]:
    """``explain_finetuned`` on an input batch of one; the caller holds ``predictor.lock``."""
    _check_target(target, predictor.classes)
    model = twin(predictor.classifier)
    targets = None if target is None else [ClassifierOutputTarget(int(target))]
    result = compute_cam(model, model.cam_layer, x, targets, method)
    probs = softmax(result.outputs.float().detach().cpu().numpy(), getattr(predictor, "temperature", 1.0))[0]
    chosen = int(np.argmax(probs)) if target is None else int(target)
    return Explanation(result.maps[0], chosen, probs, method, "finetuned", crop_fraction(predictor.spec),
                       predictor.cam_view), result


def knn_cam(predictor: Predictor, x: torch.Tensor, method: str = "similarity") -> tuple[Explanation, CamPass]:
    """``explain_knn`` on an input batch of one; the caller holds ``predictor.lock``."""
    cam_method = _knn_method(method)
    model, decision = twin(predictor.embedder), KNNDecision(predictor.knn)
    if cam_method == "scorecam":  # it scores only masked copies: decide on the painting itself first
        with torch.no_grad():
            decision.decide(model(x)[0])
    result = compute_cam(model, model.cam_layer, x, [decision], cam_method)
    decision.decide(result.outputs[0])  # gradient-free methods never call the target
    return Explanation(result.maps[0], decision.label, decision.scores, method, "knn", crop_fraction(predictor.spec),
                       predictor.cam_view, decision.neighbours, decision.similarity), result


def explain_finetuned(predictor: Predictor, image: Image.Image, method: str = "gradcam",
                      target: int | None = None) -> Explanation:
    """The fine-tuned classifier's CAM for its predicted class, or for class index ``target``."""
    x = predictor.cam_tensor(image)
    with predictor.lock:
        return finetuned_cam(predictor, x, method, target)[0]


def explain_knn(predictor: Predictor, image: Image.Image, method: str = "similarity") -> Explanation:
    """The kNN baseline's decision: what makes the painting similar to its neighbours of the predicted class."""
    x = predictor.cam_tensor(image)
    with predictor.lock:
        return knn_cam(predictor, x, method)[0]


def _channel_sum(activations: torch.Tensor, size: int) -> np.ndarray:
    """Sum over channels, min-max normalised, bilinearly upsampled to ``size`` x ``size``."""
    fmap = activations.detach().float()[:1].sum(dim=1, keepdim=True)
    fmap = F.interpolate(fmap, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    lo, hi = fmap.min(), fmap.max()
    return ((fmap - lo) / (hi - lo) if hi > lo else torch.zeros_like(fmap)).cpu().numpy()


def feature_map(predictor: Predictor, image: Image.Image, model: str = "finetuned") -> np.ndarray:
    """The culture study's view: the CAM layer's output summed over channels, in [0, 1] at the input size."""
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose one of: {', '.join(MODELS)}")
    x, seen = predictor.cam_tensor(image), []
    with predictor.lock:
        net = twin(predictor.classifier if model == "finetuned" else predictor.embedder)
        handle = net.cam_layer.register_forward_hook(lambda m, i, out: seen.append(out.detach()))
        try:
            with torch.no_grad():
                net(x)
        finally:
            handle.remove()
    return _channel_sum(seen[0], predictor.spec.input_size)


def explain_both(predictor: Predictor, image: Image.Image, method: str = "gradcam", knn_method: str = "similarity",
                 target: int | None = None, name: str = "image") -> dict:
    """Everything the app and CLI show for one painting, from two CAM passes (one per model) and nothing else.

    Returns ``prediction`` (an inference.Prediction built from those passes' outputs), ``finetuned`` and ``knn``
    (Explanations) and ``feature_map`` (the fine-tuned CAM layer's channel sum, from the same activations).
    """
    _method_class(method), _knn_method(knn_method), _check_target(target, predictor.classes)
    x = predictor.cam_tensor(image)
    several = len(predictor.views) > 1  # the prediction averages views; the CAMs explain its class on one view
    if several:
        prediction: Prediction = predictor.predict_images([image], [name])[0]
        target = int(np.argmax(prediction.probs)) if target is None else target
    with predictor.lock:
        ft, ft_pass = finetuned_cam(predictor, x, method, target)
        kn, kn_pass = knn_cam(predictor, x, knn_method)
    if not several:
        prediction = predictor.predictions_from(ft_pass.outputs, kn_pass.outputs.cpu().numpy(), [name])[0]
    return {"prediction": prediction, "finetuned": ft, "knn": kn,
            "feature_map": _channel_sum(ft_pass.activations, predictor.spec.input_size)}


# --- drawing ------------------------------------------------------------------------------------------------------

def _colormap(name: str) -> np.ndarray:
    import matplotlib
    try:
        return (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    except KeyError:
        raise ConfigError(f"unknown colormap {name!r} (any matplotlib colormap name)") from None


def overlay(image: Image.Image, cam: np.ndarray, alpha: float = 0.5, max_side: int = 768, colormap: str = "jet",
            crop: float = 1.0, view: str = "centre") -> Image.Image:
    """The CAM as a heat map over the painting, at the painting's own aspect ratio, no side longer than ``max_side``.

    The models predict from a centre crop (a square, ``crop`` of the shorter side; see ``Explanation.crop``), so the
    CAM is put back on that square of the painting rather than stretched over all of it, or computed on a squashed
    whole painting: it then shows exactly the pixels the prediction came from. The margins the model never saw are
    dimmed. A CAM of the whole-painting view (``view="whole"``) is cut to where the letterbox put the painting and
    laid over all of it: the model saw every part.
    """
    base = fit_within(image.convert("RGB"), max_side)
    w, h = base.size
    if view == "whole":
        left, top, nw, nh = letterbox_box(*image.size, cam.shape[0])
        heat = Image.fromarray(np.clip(cam, 0, 1).astype(np.float32)[top:top + nh, left:left + nw])
        heat = heat.resize((w, h), Image.BILINEAR)
        colours = _colormap(colormap)[np.round(np.asarray(heat) * 255).astype(np.uint8)]
        out = (1 - alpha) * np.asarray(base, dtype=np.float32) + alpha * colours
        return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    side = max(1, round(min(w, h) * crop))
    left, top = round((w - side) / 2), round((h - side) / 2)
    heat = Image.fromarray(np.clip(cam, 0, 1).astype(np.float32)).resize((side, side), Image.BILINEAR)
    colours = _colormap(colormap)[np.round(np.asarray(heat) * 255).astype(np.uint8)]
    out = np.asarray(base, dtype=np.float32) * (0.45 if crop < 1 else 1.0)
    region = np.asarray(base.crop((left, top, left + side, top + side)), dtype=np.float32)
    out[top:top + side, left:left + side] = (1 - alpha) * region + alpha * colours
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
