"""The classifier: a backbone's stem -> block -> pool, then a head; and what each training method freezes.

Methods: ``partial`` (stem frozen; last block + head trained: the GenRe recipe), ``finetune`` (all layers),
``transfer`` (backbone frozen, head trained), ``scratch`` (random init, all layers).
Heads: ``linear``, or ``mlp3`` (three fully connected layers with ReLU: the culture recipe).
"""

from __future__ import annotations

import torch
from torch import nn

from artlab.model.backbones import Parts
from artlab.errors import ConfigError

METHODS = ("partial", "finetune", "transfer", "scratch")
HEADS = ("linear", "mlp3")


class Head(nn.Module):
    """``linear``: one layer. ``mlp3``: d -> 512 -> 256 -> classes with ReLU (and dropout) between.

    ``forward(x, pre_logits=True)`` returns the penultimate features: the embedding the app maps and measures.
    """

    def __init__(self, kind: str, in_dim: int, num_classes: int, dropout: float = 0.2):
        super().__init__()
        if kind not in HEADS:
            raise ConfigError(f"unknown head {kind!r}; choose one of: {', '.join(HEADS)}")
        self.kind = kind
        if kind == "linear":
            self.body = nn.Dropout(dropout)
            self.fc = nn.Linear(in_dim, num_classes)
        else:
            self.body = nn.Sequential(nn.Linear(in_dim, 512), nn.ReLU(), nn.Dropout(dropout),
                                      nn.Linear(512, 256), nn.ReLU())
            self.fc = nn.Linear(256, num_classes)

    @property
    def embed_dim(self) -> int:
        return self.fc.in_features

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.body(x)
        return x if pre_logits else self.fc(x)


class Classifier(nn.Module):
    """image -> logits, in parts so that the frozen stem's output can be cached and Grad-CAM can find its layer."""

    def __init__(self, parts: Parts, head: Head):
        super().__init__()
        self.stem, self.block, self.pool, self.head = parts.stem, parts.block, parts.pool, head
        self.cam_layer_path = parts.cam_layer_path

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (before the head)."""
        return self.pool(self.block(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features of the whole classifier (the head's pre-logits)."""
        return self.head(self.features(x), pre_logits=True)

    def from_stem(self, s: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(self.pool(self.block(s)), pre_logits=pre_logits)

    @property
    def cam_layer(self) -> nn.Module:
        return self.get_submodule(self.cam_layer_path)


class Embedder(nn.Module):
    """The frozen pretrained backbone as a feature extractor: the kNN baseline's eyes."""

    def __init__(self, parts: Parts):
        super().__init__()
        self.stem, self.block, self.pool = parts.stem, parts.block, parts.pool
        self.cam_layer_path = parts.cam_layer_path
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.block(self.stem(x)))

    def from_stem(self, s: torch.Tensor) -> torch.Tensor:
        return self.pool(self.block(s))

    @property
    def cam_layer(self) -> nn.Module:
        return self.get_submodule(self.cam_layer_path)


def trainable_prefixes(method: str) -> tuple[str, ...]:
    """Which top-level parts a method trains (and so which a partial checkpoint must store)."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    return {"partial": ("block", "pool", "head"), "transfer": ("head",)}.get(method, ("stem", "block", "pool", "head"))


def frozen_prefix(method: str) -> str | None:
    """The part whose output can be computed once and cached: 'stem' for partial, 'features' for transfer."""
    return {"partial": "stem", "transfer": "features"}.get(method)


def shared_features(classifier: Classifier, embedder: Embedder, method: str,
                    x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the classifier's pooled features, the kNN baseline's features) of images ``x``. The part the two models share
    (the frozen stem for partial, everything but the head for transfer) runs once: the one place that decides it,
    for the runner's last pass over the paintings and for the Predictor."""
    shared = frozen_prefix(method)
    if shared == "stem":
        s = classifier.stem(x)
        return classifier.pool(classifier.block(s)), embedder.from_stem(s)
    if shared == "features":
        f = embedder(x)
        return f, f
    return classifier.features(x), embedder(x)


def apply_method(model: Classifier, method: str) -> Classifier:
    trained = trainable_prefixes(method)
    for name, module in model.named_children():
        module.requires_grad_(name in trained)
    return model


def train_mode(model: Classifier, method: str) -> None:
    """Training mode for the trained parts only: frozen parts keep their BatchNorm statistics (eval mode)."""
    model.train()
    trained = trainable_prefixes(method)
    for name, module in model.named_children():
        if name not in trained:
            module.eval()


def trained_state(model: Classifier, method: str) -> dict[str, torch.Tensor]:
    """The state dict of the trained parts only (what model.pt stores for partial/transfer)."""
    keep = tuple(p + "." for p in trainable_prefixes(method))
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k.startswith(keep)}
