"""What a model is shown of a painting at prediction time: its centre square, the whole painting letterboxed, and
their mirror images. A run's prediction averages the pooled features of its views (``TrainConfig.views``).

The study's eval view is the centre crop (``model.transforms.EvalTransform``): a portrait-format painting loses its top
and bottom. ``whole`` shrinks the painting until its long side fits the input square and pads the rest with the
backbone's mean colour (zero after normalisation), so nothing is cut off; ``letterbox_box`` says where the painting
lies in that square, which puts a CAM of the view back on the painting (``explain.cams.overlay``).
"""

from __future__ import annotations

import torch
from PIL import Image

from artlab.errors import ConfigError
from artlab.model.backbones import BackboneSpec
from artlab.model.transforms import EvalTransform, _Transform

VIEWS = ("centre", "centre-flip", "whole", "whole-flip")
DEFAULT_VIEWS = ("centre",)


def check_views(views: tuple[str, ...]) -> tuple[str, ...]:
    views = tuple(views)
    unknown = [v for v in views if v not in VIEWS]
    if not views or unknown or len(set(views)) != len(views):
        raise ConfigError(f"views must be distinct names from: {', '.join(VIEWS)} (got {', '.join(views) or 'none'})")
    return views


def letterbox_box(w: int, h: int, side: int) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a w x h painting shrunk to fit a ``side`` x ``side`` square, centred."""
    scale = side / max(w, h)
    nw, nh = max(1, min(side, round(w * scale))), max(1, min(side, round(h * scale)))
    return (side - nw) // 2, (side - nh) // 2, nw, nh


class LetterboxTransform(_Transform):
    """The whole painting in the input square: resized to fit (aspect ratio kept), mean-colour padding."""

    def __call__(self, im: Image.Image) -> torch.Tensor:
        left, top, nw, nh = letterbox_box(*im.size, self.crop)
        x = self._to_tensor(im.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None))
        out = torch.zeros(3, self.crop, self.crop)  # zero is the mean colour after normalisation
        out[:, top:top + nh, left:left + nw] = x
        return out


class _Flipped:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self, im: Image.Image) -> torch.Tensor:
        return self.inner(im).flip(-1)

    def __repr__(self) -> str:
        return f"Flipped({self.inner!r})"


def view_transform(spec: BackboneSpec, view: str):
    """The transform of one named view (PIL image -> normalised tensor at the backbone's input size)."""
    check_views((view,))
    base = LetterboxTransform(spec) if view.startswith("whole") else EvalTransform(spec)
    return _Flipped(base) if view.endswith("-flip") else base


def cam_view(views: tuple[str, ...]) -> str:
    """The view a CAM is drawn on: the whole painting when the run sees it, else the centre square."""
    return "whole" if any(v.startswith("whole") for v in views) else "centre"


class ViewsTransform:
    """PIL image -> (V, 3, H, W): every view of a run, in its order."""

    def __init__(self, spec: BackboneSpec, views: tuple[str, ...] = DEFAULT_VIEWS):
        self.views = check_views(views)
        self.transforms = [view_transform(spec, v) for v in self.views]

    def __call__(self, im: Image.Image) -> torch.Tensor:
        return torch.stack([t(im) for t in self.transforms])
