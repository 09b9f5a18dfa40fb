"""Both models of a run on new paintings: the fine-tuned classifier's probabilities and the kNN baseline's vote,
with the neighbour paintings behind that vote.

A ``Predictor`` is built once per run (the app caches it across sessions) and is safe to share between threads:
prediction is a pure no_grad forward pass; explanations, which register hooks, take ``predictor.lock``.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import torch
from PIL import Image

from artlab.errors import ImageError
from artlab.images import DECODE_BUDGET, ImageSource, load_image
from artlab.model.classifier import shared_features
from artlab.model.knn import clear_majority, l2_normalise
from artlab.model.views import DEFAULT_VIEWS, ViewsTransform, cam_view, view_transform
from artlab.report.calibration import familiarity, set_classes, softmax, threshold_at
from artlab.runfolder import Run

NOT_CALIBRATED = "not calibrated"  # the CSV's finetuned_set for a run written before calibration


@dataclasses.dataclass
class Neighbour:
    id: str
    label: str
    similarity: float
    title: str = ""
    artist: str = ""


@dataclasses.dataclass
class Prediction:
    name: str
    classes: list[str]
    probs: np.ndarray  # fine-tuned model, softmax over classes
    knn_shares: np.ndarray  # kNN vote shares
    knn_scores: np.ndarray  # vote shares with the similarity tie-break (what the kNN ranks by)
    neighbours: list[Neighbour]
    calibrated: bool = False  # ``probs`` are temperature-scaled (the card's calibration); False: a raw softmax
    conformal: dict | None = None  # the card's conformal entry (None: a run written before prediction sets)
    familiarity: float | None = None  # mean cosine similarity to the nearest training paintings
    familiar_threshold: float | None = None  # below it: unfamiliar (the card's unfamiliar.threshold)

    def set_at(self, coverage: float | None = None) -> list[str] | None:
        """The conformal prediction set at ``coverage`` (default: the card's target), most probable class first;
        None when the run has no conformal calibration."""
        if not self.conformal:
            return None
        cov = float(coverage if coverage is not None else self.conformal["target_coverage"])
        return set_classes(self.probs, threshold_at(self.conformal, cov), self.classes)

    @property
    def prediction_set(self) -> list[str] | None:
        """The set at the card's coverage (what a sheet shows: artlab.report.sheet.SheetPrediction)."""
        return self.set_at()

    @property
    def set_coverage(self) -> float | None:
        return float(self.conformal["target_coverage"]) if self.conformal else None

    @property
    def unfamiliar(self) -> bool | None:
        """True when the painting is less similar to the training paintings than nearly all test paintings were;
        None when the run records no threshold."""
        if self.familiarity is None or self.familiar_threshold is None:
            return None
        return bool(self.familiarity < self.familiar_threshold)

    @property
    def finetuned(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    @property
    def knn(self) -> str:
        return self.classes[int(np.argmax(self.knn_scores))]

    @property
    def knn_majority(self) -> bool:
        """More than half of the neighbours' votes for the baseline's answer (``knn.clear_majority``); otherwise the
        neighbours are split and the closer ones decided."""
        return bool(clear_majority(self.knn_shares)[0])

    @property
    def agree(self) -> bool:
        """Both models give the same answer and the baseline's is a clear majority of its neighbours (a tie broken by
        distance in favour of the fine-tuned model's answer is not agreement)."""
        return self.finetuned == self.knn and self.knn_majority

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(self.classes[i], float(self.probs[i])) for i in order]

    def row(self, coverage: float | None = None) -> dict:
        """One flat row for a results table / CSV: the fine-tuned model's calibrated probabilities, its prediction
        set, whether the painting is unfamiliar, and the kNN's vote shares (shares of its k votes, not
        probabilities)."""
        out = {"file": self.name, "finetuned": self.finetuned, "finetuned_confidence": round(float(self.probs.max()), 4),
               "knn": self.knn, "knn_vote_share": round(float(self.knn_shares.max()), 4), "agree": self.agree,
               "knn_majority": self.knn_majority}
        pset = self.set_at(coverage)
        out["finetuned_set"] = "; ".join(pset) if pset is not None else NOT_CALIBRATED
        out["unfamiliar"] = self.unfamiliar if self.unfamiliar is not None else ""
        out["familiarity"] = round(self.familiarity, 4) if self.familiarity is not None else ""
        out.update({f"finetuned:{c}": round(float(p), 4) for c, p in zip(self.classes, self.probs)})
        out.update({f"knn:{c}": round(float(p), 4) for c, p in zip(self.classes, self.knn_shares)})
        out["nearest"] = "; ".join(n.id for n in self.neighbours)
        return out


class Predictor:
    def __init__(self, run: Run, weights_file: str | None = None, device: str = "cpu"):
        self.run = run
        self.budget = DECODE_BUDGET  # bytes one decode may take (the served app lowers it per upload)
        self.spec = run.spec
        self.classes = run.classes
        self.device = torch.device(device)
        self.classifier = run.classifier(weights_file).to(self.device).eval()
        self.embedder = run.embedder(weights_file).to(self.device).eval()
        self.knn = run.knn()
        self.method = run.card["method"]
        self.views = tuple(run.card.get("config", {}).get("views") or DEFAULT_VIEWS)  # runs before views: centre
        self.transform = ViewsTransform(self.spec, self.views)
        self.cam_view = cam_view(self.views)
        self.cam_transform = view_transform(self.spec, self.cam_view)
        self.lock = threading.Lock()  # held while hooks are registered (explanations)
        card = run.card
        self.temperature = float(((card.get("calibration") or {}).get("parameters") or {}).get("temperature") or 1.0)
        self.calibrated = bool(card.get("calibration"))
        self.conformal = card.get("conformal") or None
        self.familiar = card.get("unfamiliar") or None
        paintings = run.paintings()
        self.meta = paintings.set_index("id").to_dict("index") if len(paintings) else {}

    def load(self, source: ImageSource, name: str | None = None) -> Image.Image:
        """Decode as training did: JPEGs at reduced scale when far larger than the model's input (draft mode)."""
        return load_image(source, name=name, min_side=self.spec.resize_size, budget=self.budget)

    def tensor(self, images: list[Image.Image]) -> torch.Tensor:
        """Every view of every image, image by image: (images x views, 3, H, W)."""
        return torch.cat([self.transform(im) for im in images]).to(self.device)

    def cam_tensor(self, image: Image.Image) -> torch.Tensor:
        """The one view a CAM is computed on (views.cam_view: the whole painting when the run sees it)."""
        return self.cam_transform(image).unsqueeze(0).to(self.device)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, kNN features) of the images in ``x`` (``tensor``'s layout). For partial/transfer the frozen
        pretrained part is shared, so it runs once; several views (transfer only) average their features."""
        feats, knn_feats = shared_features(self.classifier, self.embedder, self.method, x)
        if len(self.views) > 1:  # transfer (TrainConfig checks it): the classifier's features are the kNN's
            feats = knn_feats = knn_feats.view(-1, len(self.views), knn_feats.shape[1]).mean(1)
        return self.classifier.head(feats), knn_feats

    def predict_images(self, images: list[Image.Image], names: list[str] | None = None,
                       batch_size: int = 16) -> list[Prediction]:
        names = names or [f"image {i + 1}" for i in range(len(images))]
        out = []
        for i in range(0, len(images), batch_size):
            logits, feats = self.forward(self.tensor(images[i:i + batch_size]))
            out += self.predictions_from(logits, feats.cpu().numpy(), names[i:i + batch_size])
        return out

    def predict_files(self, sources: list[ImageSource], names: list[str] | None = None
                      ) -> list[Prediction | ImageError]:
        """Per file: a Prediction, or the ImageError that explains why that file could not be read."""
        names = names or [str(s) for s in sources]
        loaded, errors = {}, {}
        for i, (src, name) in enumerate(zip(sources, names)):
            try:
                loaded[i] = self.load(src, name=name)
            except ImageError as exc:
                errors[i] = exc
        preds = dict(zip(loaded, self.predict_images(list(loaded.values()), [names[i] for i in loaded])))
        return [preds.get(i, errors.get(i)) for i in range(len(sources))]

    def predictions_from(self, logits: torch.Tensor, feats: np.ndarray, names: list[str]) -> list[Prediction]:
        """Predictions from a pass already made (the explanation pass reuses its logits and kNN features)."""
        probs = softmax(logits.double().cpu().numpy(), self.temperature)
        shares, scores, sims, idx = self.knn.vote(feats)
        fam = self.familiarity(feats)
        threshold = float(self.familiar["threshold"]) if self.familiar else None
        return [Prediction(name, self.classes, probs[j], shares[j], scores[j], self._neighbours(sims[j], idx[j]),
                           self.calibrated, self.conformal, float(fam[j]) if fam is not None else None, threshold)
                for j, name in enumerate(names)]

    def familiarity(self, feats: np.ndarray) -> np.ndarray | None:
        """Mean cosine similarity of each painting to its k nearest training paintings (k: the card's
        ``unfamiliar.k``); None for a run written before the key."""
        if not self.familiar:
            return None
        sims = l2_normalise(feats) @ self.knn.unit_.T
        k = int(self.familiar.get("k") or self.knn.k_)
        return familiarity(-np.sort(-sims, axis=1), k)

    def assess(self, image: Image.Image, coverage: float | None = None, name: str = "image") -> dict:
        """For one painting, what a curator may rely on: the fine-tuned model's calibrated probabilities per class,
        its prediction set at ``coverage`` (default the card's), and whether the painting is unfamiliar (None
        where the run records no calibration or threshold)."""
        pred = self.predict_images([image], [name])[0]
        conformal = self.conformal or {}
        return {"classes": list(self.classes),
                "probabilities": {c: float(p) for c, p in zip(self.classes, pred.probs)},
                "calibrated": pred.calibrated, "set": pred.set_at(coverage),
                "coverage": (coverage or conformal["target_coverage"]) if conformal else None,
                "small_calibration": bool(conformal.get("small")) if conformal else None,
                "unfamiliar": pred.unfamiliar, "familiarity": pred.familiarity}

    def _neighbours(self, sims, idx) -> list[Neighbour]:
        out = []
        for s, i in zip(sims, idx):
            pid = str(self.knn.ids_[i])
            meta = self.meta.get(pid, {})
            out.append(Neighbour(pid, self.classes[int(self.knn.y_[i])], float(s), meta.get("title", ""),
                                 meta.get("artist", "")))
        return out
