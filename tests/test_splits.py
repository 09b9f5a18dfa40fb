import pandas as pd
import pytest

from artlab.errors import ConfigError
from artlab.train.splits import stratified_split


def _labels(counts):
    return pd.Series([c for c, n in counts.items() for _ in range(n)])


def test_ratios_per_class_and_seeded():
    labels = _labels({"portrait": 100, "landscape": 60, "sketch": 20})
    split = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    table = pd.crosstab(labels, split)
    assert table.loc["portrait", "train"] == 70 and table.loc["portrait", "test"] == 15
    assert table.loc["sketch", "val"] == 3
    assert split.equals(stratified_split(labels, (0.7, 0.15, 0.15), seed=3))
    assert not split.equals(stratified_split(labels, (0.7, 0.15, 0.15), seed=4))


def test_small_class_still_reaches_val_and_test():
    split = stratified_split(_labels({"a": 3, "b": 10}), (0.8, 0.1, 0.1), seed=0)
    assert set(split[:3]) == {"train", "val", "test"}


def test_artist_disjoint():
    labels = _labels({"portrait": 40, "landscape": 40})
    artists = pd.Series([f"artist{i % 13}" for i in range(80)])
    split = stratified_split(labels, (0.7, 0.15, 0.15), seed=0, groups=artists)
    per_artist = pd.crosstab(artists, split).gt(0).sum(axis=1)
    assert (per_artist == 1).all(), "an artist appears in two splits"
    assert set(split) == {"train", "val", "test"}


def test_bad_ratios():
    with pytest.raises(ConfigError):
        stratified_split(_labels({"a": 10}), (0.5, 0.5, 0.5))
