import pytest
import torch

from artlab.model.backbones import backbone_names, get_backbone, register, sha256_file
from artlab.errors import ConfigError
from artlab.model.classifier import Classifier, Head, apply_method, trained_state


@pytest.mark.parametrize("name", backbone_names())
def test_every_entry_builds_cuts_and_resolves_its_layers(name):
    spec = get_backbone(name)
    parts, prov = spec.parts(pretrained=False)
    model = Classifier(parts, Head("mlp3", spec.feature_dim, 4)).eval()
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        assert model(x).shape == (2, 4)
        assert model.features(x).shape == (2, spec.feature_dim)
        assert model.embed(x).shape == (2, 256)
    cam = model.cam_layer
    seen = []
    handle = cam.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert len(seen[0]) == 4 and seen[0][-1] >= 6, "the CAM layer must be a spatial feature map"


def test_methods_freeze_the_right_parts():
    spec = get_backbone("efficientnet_lite0")
    parts, _ = spec.parts(pretrained=False)
    model = apply_method(Classifier(parts, Head("linear", spec.feature_dim, 3)), "partial")
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for p in model.block.parameters())
    assert all(k.startswith(("block.", "pool.", "head.")) for k in trained_state(model, "partial"))
    apply_method(model, "transfer")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.fc.weight", "head.fc.bias"]


def test_unknown_and_duplicate_names():
    with pytest.raises(ConfigError, match="unknown backbone"):
        get_backbone("vit_huge")
    with pytest.raises(ValueError, match="twice"):
        register(get_backbone("resnet50"))


def test_wheel_weights_are_checked_and_load_strictly():
    spec = get_backbone("efficientnet_lite0")
    _, prov = spec.pretrained()
    assert prov["sha256"] == spec.weights.sha256 == sha256_file(spec.weights.path())


def test_torchvision_weights_through_the_real_cache_path(tmp_path, monkeypatch):
    """The path a user with internet takes: torchvision's weights API reads $TORCH_HOME/hub/checkpoints/<file>.
    Offline, a file placed under that exact name stands in for the download (old-style DenseNet keys included)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    spec = get_backbone("densenet121")
    reference = spec.build().state_dict()
    old_style = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in reference.items()}
    target = spec.weights.cache_path()
    assert str(target).startswith(str(tmp_path)) and target.name.startswith("densenet121-")
    target.parent.mkdir(parents=True)
    torch.save(old_style, target)
    model, prov = spec.pretrained()
    assert torch.equal(model.features.denseblock1.denselayer1.norm1.weight,
                       reference["features.denseblock1.denselayer1.norm1.weight"])
    assert prov["sha256"] == sha256_file(target) and "DenseNet121_Weights" in prov["source"]


def test_missing_torchvision_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("torch.hub.load_state_dict_from_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("network unreachable")))
    with pytest.raises(ConfigError, match="--weights FILE"):
        get_backbone("resnet50").pretrained()
