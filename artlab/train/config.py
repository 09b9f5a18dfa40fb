"""Training configuration: one frozen dataclass shared by the CLI, experiment configs and the app."""

from __future__ import annotations

import dataclasses
from typing import Any

from artlab.errors import ConfigError

OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("none", "step", "plateau")
KNN_METRICS = ("cosine", "euclidean")
EMBEDDING_LAYERS = ("backbone", "head")
#: Where the temperature and the conformal threshold are fitted (artlab.train.calibrate).
CALIBRATION_SOURCES = ("validation", "cv")
#: Augmented views cached on a CPU when ``cache_views`` is left unset (a GPU draws a fresh augmentation every epoch).
CPU_CACHE_VIEWS = 4
EMBED_CHUNK = 2000  # paintings per chunk file of `artlab embed` (one chunk of features in memory at a time)
#: The most neighbours the kNN baseline may be asked to consider (its k is chosen on validation among knn_ks).
MAX_KNN_K = 1000
#: Seeds go to Python, NumPy and PyTorch: NumPy's must fit in 32 bits.
MAX_SEED = 2 ** 32 - 1
#: (field, lowest, highest, what the range means): each number a run is configured with, refused outside its range
#: (NaN included) when the configuration is made, before any work. ``None`` is open-ended.
RANGES = (
    ("lr", 0.0, 10.0, "a learning rate above 0 and at most 10"),
    ("momentum", 0.0, 1.0, "between 0 and 1"),
    ("weight_decay", 0.0, 1.0, "between 0 and 1"),
    ("gamma", 0.0, 1.0, "a factor above 0 and at most 1"),
    ("step_size", 1, None, "1 or more"),
    ("plateau_patience", 0, None, "0 or more"),
    ("seed", 0, MAX_SEED, f"a whole number from 0 to {MAX_SEED}"),
    ("min_per_class", 1, None, "1 or more"),
    ("max_per_class", 1, None, "1 or more"),
    ("workers", 0, 256, "from 0 to 256"),
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    collection: str
    label: str = "genre"
    backbone: str = "efficientnet_lite0"
    method: str = "partial"
    head: str = "linear"
    optimizer: str = "adam"
    lr: float | None = None  # None: 1e-3 for Adam, 1e-2 for SGD
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 7
    gamma: float = 0.1
    plateau_patience: int = 2
    epochs: int = 20
    patience: int = 5  # early stopping: epochs without a better validation loss
    batch_size: int = 32
    seed: int = 0
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    group_by_artist: bool = False
    group_duplicates: bool = False  # keep each near-copy group (artlab.collection.duplicates) in one split
    min_per_class: int = 5
    max_per_class: int | None = None
    classes: tuple[str, ...] | None = None
    class_weights: bool = False  # weight the loss by inverse class frequency (the culture study's imbalance)
    # Augmented views of each training image whose frozen output is cached, for partial/transfer (0: no cache, a
    # fresh augmentation every epoch as the studies do). None: 0 on CUDA, CPU_CACHE_VIEWS on a CPU (a shortcut).
    cache_views: int | None = None
    dropout: float = 0.0  # in the head; neither study mentions dropout
    knn_metric: str = "cosine"  # the kNN baseline's distance (artlab/model/knn.py argues for cosine)
    embedding_layer: str = "backbone"  # the culture geometry's features: pooled backbone (the study's) or the head's
    knn_ks: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 15, 21)
    knn_vote: str = "uniform"  # knn.VOTES: uniform, distance, balanced (1 / class share), distance-balanced
    views: tuple[str, ...] = ("centre",)  # test-time views whose features are averaged (views.VIEWS; transfer only)
    restore_best: bool = True  # keep the weights of the lowest validation loss; False: the last epoch's (as the CV)
    calibrate_on: str = "validation"  # CALIBRATION_SOURCES: the validation split, or out-of-fold predictions
    selected_by: str | None = None  # how the recipe was chosen (e.g. cross-validated figures), copied to the card
    weights_file: str | None = None
    device: str = "auto"
    workers: int = 0

    def __post_init__(self):
        from artlab.model.backbones import get_backbone
        from artlab.model.classifier import HEADS, METHODS
        from artlab.train.splits import check_ratios
        get_backbone(self.backbone)
        for value, allowed, what in ((self.method, METHODS, "method"), (self.head, HEADS, "head"),
                                     (self.optimizer, OPTIMIZERS, "optimizer"),
                                     (self.scheduler, SCHEDULERS, "scheduler"),
                                     (self.knn_metric, KNN_METRICS, "kNN metric"),
                                     (self.embedding_layer, EMBEDDING_LAYERS, "embedding layer"),
                                     (self.calibrate_on, CALIBRATION_SOURCES, "calibration source")):
            if value not in allowed:
                raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
        check_ratios(tuple(self.split))
        from artlab.model.knn import VOTES
        from artlab.model.views import DEFAULT_VIEWS, check_views
        if self.knn_vote not in VOTES:
            raise ConfigError(f"unknown kNN vote {self.knn_vote!r}; choose one of: {', '.join(VOTES)}")
        if check_views(self.views) != DEFAULT_VIEWS and self.method != "transfer":
            raise ConfigError(f"views {', '.join(self.views)} need method 'transfer' (a frozen backbone whose "
                              f"features can be averaged); {self.method!r} sees the centre crop only")
        if self.calibrate_on == "cv" and self.method != "transfer":
            raise ConfigError("calibrate_on 'cv' needs method 'transfer' (its folds train heads on frozen features)")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ConfigError("epochs, batch size and patience must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be at least 0 and below 1, got {self.dropout}")
        if self.cache_views is not None and self.cache_views < 0:
            raise ConfigError(f"cache_views must be 0 or more, got {self.cache_views}")
        self._check_ranges()

    def _check_ranges(self) -> None:
        import math
        for name, low, high, words in RANGES:
            value = getattr(self, name)
            if value is None:
                continue
            exclusive = name in ("lr", "gamma")  # a learning rate or factor of 0 trains nothing
            bad = (isinstance(value, float) and not math.isfinite(value)) or value < low or (exclusive and value == low)
            if bad or (high is not None and value > high):
                raise ConfigError(f"{name} must be {words}, got {value}")
        ks = tuple(self.knn_ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_KNN_K for k in ks):
            raise ConfigError(f"knn_ks must be whole numbers from 1 to {MAX_KNN_K}, got "
                              f"{', '.join(map(str, ks))[:80] or 'none'}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.optimizer == "adam" else 1e-2)

    def views_on(self, device_type: str) -> int:
        """The cached augmented views this run uses on a device of this type ("cuda", "cpu", ...)."""
        if self.cache_views is not None:
            return self.cache_views
        return 0 if device_type == "cuda" else CPU_CACHE_VIEWS

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
