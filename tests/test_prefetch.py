import threading
import time

import pytest
import torch

from artlab.model.backbones import get_backbone
from artlab.train.data import ImageDataset
from artlab.train.prefetch import prefetch_batches
from artlab.model.transforms import eval_transform


class Slow(torch.utils.data.Dataset):
    """Items that take a varying time to load, so that threads finish out of order."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.n, self.fail_at, self.started = n, fail_at, set()
        self.lock = threading.Lock()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self.lock:
            self.started.add(i)
        time.sleep(0.002 * ((i * 7) % 5))
        if i == self.fail_at:
            raise ValueError(f"item {i} is broken")
        return torch.full((2,), float(i)), i


def test_batches_come_in_order_and_collated():
    batches = list(prefetch_batches(Slow(11), batch_size=4, threads=3))
    assert [len(y) for _, y in batches] == [4, 4, 3]
    x = torch.cat([b[0] for b in batches])
    assert x[:, 0].tolist() == list(range(11))
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(11))


def test_an_item_error_surfaces_at_its_batch():
    it = prefetch_batches(Slow(12, fail_at=5), batch_size=4)
    next(it)
    with pytest.raises(ValueError, match="item 5 is broken"):
        next(it)


def test_stopping_early_cancels_what_has_not_started():
    ds = Slow(400)
    it = prefetch_batches(ds, batch_size=4, threads=2, depth=2)
    next(it)
    it.close()
    assert len(ds.started) <= 4 * 3, "items kept loading after the consumer stopped"
    assert not [t for t in threading.enumerate() if t.name.startswith("artlab-prefetch")]


def test_empty_dataset_and_bad_arguments():
    assert list(prefetch_batches(Slow(0), batch_size=4)) == []
    with pytest.raises(ValueError):
        list(prefetch_batches(Slow(3), batch_size=0))


def test_real_paintings_match_sequential_loading(demo_images):
    spec = get_backbone("efficientnet_lite0")
    ds = ImageDataset(demo_images[0].parent, [p.name for p in demo_images], eval_transform(spec),
                      min_side=spec.resize_size)
    expected = torch.stack([ds[i] for i in range(len(ds))])
    got = torch.cat(list(prefetch_batches(ds, batch_size=4, threads=2)))
    assert got.shape == (len(demo_images), 3, spec.input_size, spec.input_size)
    assert torch.equal(got, expected)
