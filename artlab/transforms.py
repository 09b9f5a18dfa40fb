"""Preprocessing from a backbone's own data config: nothing else in artlab restates sizes or mean/std."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms as T

from .backbones import BackboneSpec


def eval_transform(spec: BackboneSpec) -> T.Compose:
    """Resize the short side, centre crop, normalise: what the study did at test time."""
    return T.Compose([T.Resize(spec.resize_size), T.CenterCrop(spec.input_size), T.ToTensor(),
                      T.Normalize(spec.mean, spec.std)])


def train_transform(spec: BackboneSpec) -> T.Compose:
    """The study's augmentation: a random crop (after resizing) and a horizontal flip."""
    return T.Compose([T.Resize(spec.resize_size), T.RandomCrop(spec.input_size), T.RandomHorizontalFlip(),
                      T.ToTensor(), T.Normalize(spec.mean, spec.std)])


def denormalise(x: torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def to_input(im: Image.Image, spec: BackboneSpec) -> torch.Tensor:
    """One PIL image -> a (1, 3, H, W) normalised batch."""
    return eval_transform(spec)(im).unsqueeze(0)
