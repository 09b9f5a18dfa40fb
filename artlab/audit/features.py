"""What the audit looks at: each painting's frozen pooled features (the kNN baseline's, through the frozen-feature
cache of artlab.train.selection, reused across calls) and the ImageNet classifier the pretrained backbone already
carries, applied to those features (1,000 classes, named by torchvision's offline ImageNet category list)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from artlab.model.backbones import get_backbone
from artlab.progress import Progress
from artlab.train.selection import extract


def imagenet_head(model: nn.Module) -> nn.Linear:
    """The last fully connected layer of a pretrained ImageNet network: what turns the pooled features (the cut's
    ``pool`` output) into the 1,000 class logits. EfficientNet-Lite ``_fc``, ResNet ``fc``, DenseNet ``classifier``,
    VGG / AlexNet the last layer of ``classifier`` (their ``pool`` holds the layers before it)."""
    for name in ("_fc", "fc", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Sequential):
            head = [m for m in head if isinstance(m, nn.Linear)][-1]
        if isinstance(head, nn.Linear) and head.out_features == 1000:
            return head
    raise ValueError(f"{type(model).__name__}: no ImageNet classifier found")


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names in the standard (synset-sorted) order, shipped with torchvision (offline:
    reading a weights enum's metadata downloads nothing)."""
    from torchvision.models import ResNet50_Weights
    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def collection_features(collection: Path, ids: list[str], paths: list[str], backbone: str, cache: Path,
                        progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features [n, d], ImageNet probabilities [n, 1000]) of the paintings, from the centre view (the
    backbone's eval transform: the one ImageNet was scored on). Features are cached in ``cache``."""
    feats = extract(Path(collection), list(ids), list(paths), backbone, ["centre"], Path(cache),
                    progress=progress)["centre"]
    model, _ = get_backbone(backbone).pretrained()
    head = imagenet_head(model).eval()
    with torch.no_grad():
        probs = torch.softmax(head(torch.from_numpy(feats)), dim=1).numpy()
    return feats, probs
