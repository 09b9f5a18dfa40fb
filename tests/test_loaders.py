"""The run's DataLoader (artlab.train.loaders) and the frozen-feature cache's storage (artlab.train.frozen), on the
CPU."""

import os

import numpy as np
import pandas as pd
import pytest
import torch

from artlab.model.backbones import get_backbone
from artlab.model.transforms import eval_transform, train_transform
from artlab.progress import Progress
from artlab.train.accel import NONE, for_device
from artlab.train.data import ImageDataset
from artlab.train.frozen import VIEW_DTYPE, fill
from artlab.train.loaders import loader_options, run_loader


@pytest.fixture(scope="module")
def paintings(demo_collection):
    df = pd.read_csv(demo_collection / "manifest.csv", dtype=str).head(12)
    spec = get_backbone("efficientnet_lite0")
    return ImageDataset(demo_collection, df["path"], train_transform(spec), min_side=spec.resize_size,
                        labels=list(range(len(df))))


def _epochs(dl, n: int, seed: int = 3) -> list[list[torch.Tensor]]:
    out = []
    for epoch in range(1, n + 1):
        torch.manual_seed(seed * 1000 + epoch)  # as artlab.train.loop.fit seeds each epoch
        out.append([x for x, _ in dl()])
    return out


def _draw(n, batch_size):
    return lambda: [b.tolist() for b in torch.randperm(n).split(batch_size)]


def test_one_loader_per_run_gives_the_same_augmented_batches_with_or_without_workers(paintings):
    """Augmentations depend on (epoch, painting) only: two persistent workers load what the main process loads, each
    epoch differs from the last, and a loader made afresh (a resumed run) replays the same epochs."""
    cpu = torch.device("cpu")
    plain = run_loader(paintings, _draw(len(paintings), 5), 3, cpu, workers=0)
    workers = run_loader(paintings, _draw(len(paintings), 5), 3, cpu, workers=2)
    a, b = _epochs(plain, 2), _epochs(workers, 2)
    for ea, eb in zip(a, b):
        assert [len(x) for x in ea] == [5, 5, 2]
        assert all(torch.equal(x, y) for x, y in zip(ea, eb))
    assert not torch.equal(a[0][0], a[1][0])
    again = _epochs(run_loader(paintings, _draw(len(paintings), 5), 3, cpu, workers=0), 2)
    assert all(torch.equal(x, y) for x, y in zip(a[1], again[1]))


class WhoLoads:
    """Items that say which process loaded them and with what seed: ``Seeded`` calls ``get(i, seed)``."""

    def __len__(self):
        return 8

    def get(self, i, seed):
        return torch.tensor([os.getpid(), i, seed % 1000])


def test_workers_persist_across_epochs_and_the_epoch_seed_is_shared():
    dl = run_loader(WhoLoads(), _draw(8, 4), 2, torch.device("cpu"), workers=2)
    pids = []
    for epoch in range(3):
        torch.manual_seed(epoch)
        items = torch.cat(list(dl()))
        pids.append(set(items[:, 0].tolist()))
        assert sorted(items[:, 1].tolist()) == list(range(8))
        assert len(set(items[:, 2].tolist())) == 1  # one augmentation seed per epoch
    assert pids[0] == pids[1] == pids[2] and os.getpid() not in pids[0] and len(pids[0]) == 2


def test_loader_options_pin_memory_only_on_cuda_and_keep_workers():
    assert loader_options(torch.device("cpu"), 0) == {"num_workers": 0, "pin_memory": False}
    gpu = loader_options(torch.device("cuda"), 4)
    assert gpu["pin_memory"] and gpu["persistent_workers"] and gpu["prefetch_factor"] >= 2
    assert for_device(torch.device("cpu")) is NONE and NONE.card() == {"autocast": None, "channels_last": False}


def test_fill_writes_in_place_what_concatenating_gives(demo_collection):
    df = pd.read_csv(demo_collection / "manifest.csv", dtype=str).head(10)
    spec = get_backbone("efficientnet_lite0")
    parts, _ = spec.parts(pretrained=False)
    ds = ImageDataset(demo_collection, df["path"], eval_transform(spec), min_side=spec.resize_size)
    batches = [torch.stack([ds[i] for i in range(j, min(j + 4, len(ds)))]) for j in range(0, len(ds), 4)]
    stem = parts.stem.eval()
    with torch.no_grad():
        expected = torch.cat([stem(x) for x in batches])
    got = fill(stem, batches, len(ds), "cpu", Progress(), "test")
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    views = torch.zeros((2, len(ds), *expected.shape[1:]), dtype=VIEW_DTYPE)
    fill(stem, batches, len(ds), "cpu", Progress(), "test", out=views[1])
    assert not views[0].any()
    assert torch.allclose(views[1].float(), expected, rtol=2**-8, atol=0)  # 8 bits of mantissa, at any scale
    with pytest.raises(RuntimeError, match="outputs for"):
        fill(stem, batches[:1], len(ds), "cpu", Progress(), "test")
    # a function of two outputs (the run's last pass: the trained and the pretrained features) fills two tensors
    pooled = lambda x: stem(x).mean((2, 3))  # noqa: E731
    first, second = fill(lambda x: (stem(x), pooled(x)), batches, len(ds), "cpu", Progress(), "test")
    assert torch.equal(first, expected) and torch.equal(second, expected.mean((2, 3)))


def test_the_card_times_each_stage_and_sizes_the_cache(genre_run):
    import json
    card = json.loads((genre_run / "card.json").read_text())
    tr = card["training"]
    for key in ("frozen_cache_seconds", "train_seconds", "evaluation_seconds", "writing_seconds"):
        assert 0 <= tr[key] <= tr["total_seconds"], key
    sizes, views = card["task"]["split_sizes"], card["config"]["cache_views"]
    n_all = sum(sizes.values())
    per_painting = tr["frozen_cache_bytes"] / (n_all * 4 + views * sizes["train"] * 2)  # float32 all, bfloat16 views
    assert per_painting == int(per_painting) and per_painting % 4 == 0
    emb = np.load(genre_run / "embeddings.npz")
    assert len(emb["ids"]) == n_all
    assert tr["autocast"] is None and tr["channels_last"] is False
