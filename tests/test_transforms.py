"""artlab's preprocessing against torchvision's Compose, the study's pipeline, on real paintings and odd shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from artlab.model.backbones import get_backbone
from artlab.images import load_image
from artlab.model.classifier import Embedder
from artlab.model.transforms import eval_transform, train_transform

SPEC = get_backbone("efficientnet_lite0")
GREY_LEVEL = 1 / 255 / min(SPEC.std)  # one step of 8-bit colour, after normalisation


def reference(train: bool) -> T.Compose:
    crop = T.RandomCrop(SPEC.input_size) if train else T.CenterCrop(SPEC.input_size)
    flip = [T.RandomHorizontalFlip()] if train else []
    return T.Compose([T.Resize(SPEC.resize_size), crop, *flip, T.ToTensor(), T.Normalize(SPEC.mean, SPEC.std)])


def odd_shapes():
    rng = np.random.default_rng(0)
    for w, h in [(300, 600), (600, 300), (256, 256), (257, 1000), (1000, 257), (224, 300), (100, 50), (40, 3000),
                 (1026, 2000), (331, 331)]:
        yield Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def assert_close_pixels(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape == (3, SPEC.input_size, SPEC.input_size)
    assert (a - b).abs().max().item() <= GREY_LEVEL * 1.001
    assert (a != b).float().mean().item() < 0.3


def test_eval_transform_matches_torchvision(demo_images):
    ref = reference(train=False)
    images = [load_image(p) for p in demo_images] + list(odd_shapes())
    for im in images:
        assert_close_pixels(eval_transform(SPEC)(im), ref(im))


def test_train_transform_draws_the_same_crops_and_flips(demo_images):
    """Same seed -> same window and flip as torchvision's RandomCrop + RandomHorizontalFlip (a wrong window or a
    missed flip would differ by far more than a grey level)."""
    ref = reference(train=True)
    flips = 0
    for i, im in enumerate([load_image(p) for p in demo_images] + list(odd_shapes())):
        for seed in range(4):
            torch.manual_seed(100 * i + seed)
            ours = train_transform(SPEC)(im)
            torch.manual_seed(100 * i + seed)
            theirs = ref(im)
            assert_close_pixels(ours, theirs)
            torch.manual_seed(100 * i + seed)
            torch.randint(0, 2, (1,)), torch.randint(0, 2, (1,))
            flips += bool(torch.rand(1) < 0.5)
    assert 0 < flips < 4 * 16  # both branches ran


@torch.no_grad()
def test_embeddings_do_not_move(demo_images):
    """What matters downstream: the frozen features of real paintings are the same through either pipeline."""
    embedder = Embedder(SPEC.parts(pretrained=True)[0]).eval()
    ims = [load_image(p) for p in demo_images]
    ours = embedder(torch.stack([eval_transform(SPEC)(im) for im in ims]))
    theirs = embedder(torch.stack([reference(False)(im) for im in ims]))
    assert torch.nn.functional.cosine_similarity(ours, theirs).min().item() > 0.999


def test_images_smaller_than_the_crop_are_upscaled_not_refused():
    im = Image.new("RGB", (30, 20), (200, 10, 10))
    x = eval_transform(SPEC)(im)
    assert x.shape == (3, SPEC.input_size, SPEC.input_size)
    expected = (torch.tensor([200, 10, 10]) / 255 - torch.tensor(SPEC.mean)) / torch.tensor(SPEC.std)
    assert torch.allclose(x[:, 100, 100], expected, atol=1e-5)


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_non_rgb_input_is_an_error_not_garbage(mode):
    """load_image always returns RGB; a caller that skips it gets a clear failure rather than a wrong tensor."""
    with pytest.raises(ValueError, match="RGB"):
        eval_transform(SPEC)(Image.new(mode, (300, 300)))


def test_seeded_views_do_not_depend_on_loading_order(demo_collection):
    """The frozen-feature cache computes augmented views in background threads; each painting's view must be the
    one its (seed, index) gives, whichever thread loads it and when."""
    from artlab.train.data import ImageDataset, in_order
    paths = sorted(p.name for p in (demo_collection / "images").glob("*.jpg"))[:10]
    ds = ImageDataset(demo_collection / "images", paths, train_transform(SPEC), min_side=SPEC.resize_size, seed=7)
    threaded = torch.cat(list(in_order(ds, batch_size=3)))
    backwards = torch.stack([ds[i] for i in reversed(range(len(ds)))]).flip(0)
    assert torch.equal(threaded, backwards)
    other = ImageDataset(demo_collection / "images", paths, train_transform(SPEC), min_side=SPEC.resize_size, seed=8)
    assert not torch.equal(threaded, torch.stack([other[i] for i in range(len(other))]))
