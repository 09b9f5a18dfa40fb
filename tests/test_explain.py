"""Explanations on real small runs (conftest's CC0 demo paintings): CAMs of both models, the feature map, overlays,
hooks, threads, the CLI and the faithfulness table."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from torch import nn

from artlab.explain import cams as E
from artlab.explain import faithfulness as FF
from artlab.cli import main
from artlab.errors import ConfigError
from artlab.images import load_image
from artlab.explain.predictor import Predictor
from artlab.model.knn import KNNBaseline
from artlab.runfolder import Run

# pytorch-grad-cam's ROAD calls np.float32() on a torch tensor (numpy 2 deprecation, harmless)
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")


@pytest.fixture(scope="module")
def predictor(genre_run):
    return Predictor(Run.open(genre_run))


@pytest.fixture(scope="module")
def test_images(genre_run):
    """Test-split paintings: not in the kNN's reference set, as an uploaded painting would be."""
    return [load_image(path) for _, path in FF.test_paintings(Run.open(genre_run), limit=8)]


def _state(predictor):
    return {name: [p.requires_grad for p in m.parameters()]
            for name, m in (("classifier", predictor.classifier), ("embedder", predictor.embedder))}


def _no_hooks(predictor):
    return E.predictor_hooks(predictor) == 0


def _is_map(cam, size):
    return cam.shape == (size, size) and cam.min() >= 0 and cam.max() <= 1 and cam.std() > 0.01


# --- the fine-tuned classifier ------------------------------------------------------------------------------------

def test_finetuned_gradcam_is_a_map_of_the_prediction(predictor, test_images):
    im = test_images[0]
    e = E.explain_finetuned(predictor, im)
    assert _is_map(e.cam, predictor.spec.input_size)
    assert e.model == "finetuned" and e.method == "gradcam" and e.crop == pytest.approx(224 / 256)
    plain = predictor.predict_images([im])[0]
    np.testing.assert_allclose(e.probs, plain.probs, atol=1e-5)  # logits from the CAM's own pass
    assert e.target == int(np.argmax(plain.probs))


def test_a_chosen_class_gives_another_map(predictor, test_images):
    a = E.explain_finetuned(predictor, test_images[0], target=0)
    b = E.explain_finetuned(predictor, test_images[0], target=1)
    assert (a.target, b.target) == (0, 1)
    assert not np.allclose(a.cam, b.cam, atol=0.05)
    with pytest.raises(ConfigError, match="out of range"):
        E.explain_finetuned(predictor, test_images[0], target=len(predictor.classes))


def test_cutting_the_graph_at_the_cam_layer_changes_nothing(predictor, test_images):
    """Our Grad-CAM (backward from the CAM layer only) equals pytorch-grad-cam's plain one on both models."""
    x = predictor.tensor([test_images[1]])
    model = predictor.classifier
    with GradCAM(model=model, target_layers=[model.cam_layer]) as cam:
        plain = cam(input_tensor=x, targets=[ClassifierOutputTarget(2)])[0]
    ours = E.explain_finetuned(predictor, test_images[1], target=2).cam
    np.testing.assert_allclose(ours, plain, atol=1e-4)

    k = E.explain_knn(predictor, test_images[1])
    emb = predictor.embedder
    with GradCAM(model=emb, target_layers=[emb.cam_layer]) as cam:
        cam.compute_input_gradient = True  # the frozen embedder needs a grad-requiring input the plain way
        plain = cam(input_tensor=x, targets=[E.NeighbourSimilarity(predictor.knn.X_[k.neighbours])])[0]
    np.testing.assert_allclose(k.cam, plain, atol=1e-4)
    assert _no_hooks(predictor)


@pytest.mark.parametrize("method", [m for m in E.METHODS if m != "scorecam"])
def test_every_method_on_both_models(predictor, test_images, method):
    before = _state(predictor)
    ft = E.explain_finetuned(predictor, test_images[2], method)
    kn = E.explain_knn(predictor, test_images[2], method)
    assert _is_map(ft.cam, 224) and _is_map(kn.cam, 224)
    assert _no_hooks(predictor) and _state(predictor) == before


def test_scorecam_runs_gradient_free_on_a_small_model():
    """ScoreCAM costs one forward pass per channel (1280 on EfficientNet-Lite0): checked on a toy network."""
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 8, 3, padding=1)
    model = nn.Sequential(layer, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    result = E.compute_cam(model, layer, torch.randn(1, 3, 32, 32), [ClassifierOutputTarget(1)], "scorecam")
    assert result.maps.shape == (1, 32, 32) and result.outputs.shape == (1, 3)
    assert E.count_hooks(model) == 0


# --- the kNN baseline ---------------------------------------------------------------------------------------------

def test_knn_explanation_follows_its_neighbours(predictor, test_images, monkeypatch):
    im = test_images[3]
    kn = E.explain_knn(predictor, im)
    ft = E.explain_finetuned(predictor, im)
    assert _is_map(kn.cam, 224) and kn.model == "knn" and kn.method == "similarity"
    assert not np.allclose(kn.cam, ft.cam, atol=0.05)
    pred = predictor.predict_images([im])[0]
    assert predictor.classes[kn.target] == pred.knn
    assert (predictor.knn.y_[kn.neighbours] == kn.target).all() and 0 < kn.similarity < E.SAME_PAINTING

    knn = predictor.knn  # another reference set: the odd half of the training paintings, labels shuffled
    rng = np.random.default_rng(1)
    other = KNNBaseline(k=knn.k_, n_classes=knn.n_classes_).fit(knn.X_[1::2], rng.permutation(knn.y_[1::2]),
                                                               knn.ids_[1::2])
    monkeypatch.setattr(predictor, "knn", other)
    moved = E.explain_knn(predictor, im)
    assert not np.allclose(moved.cam, kn.cam, atol=0.05)


def test_a_training_painting_is_not_compared_with_itself(predictor, demo_collection):
    knn = predictor.knn
    path = demo_collection / "images" / f"{str(knn.ids_[0]).removeprefix('met-')}.jpg"
    e = E.explain_knn(predictor, load_image(path))
    assert 0 not in e.neighbours and e.similarity < E.SAME_PAINTING
    assert _is_map(e.cam, 224)


# --- feature map, overlay -----------------------------------------------------------------------------------------

def test_feature_map_and_explain_both_agree(predictor, test_images):
    im = test_images[4]
    fmap = E.feature_map(predictor, im)
    assert fmap.shape == (224, 224) and fmap.min() == 0 and fmap.max() == pytest.approx(1)
    both = E.explain_both(predictor, im, name="x.jpg")
    np.testing.assert_allclose(both["feature_map"], fmap, atol=1e-5)
    plain = predictor.predict_images([im], ["x.jpg"])[0]
    got = both["prediction"]  # both predictions come from the CAM passes themselves
    assert (got.finetuned, got.knn, got.name) == (plain.finetuned, plain.knn, "x.jpg")
    np.testing.assert_allclose(got.probs, plain.probs, atol=1e-5)
    np.testing.assert_allclose(got.knn_scores, plain.knn_scores, atol=1e-5)
    assert [n.id for n in got.neighbours] == [n.id for n in plain.neighbours]
    assert both["knn"].target == predictor.classes.index(plain.knn)
    knn_map = E.feature_map(predictor, im, model="knn")
    assert knn_map.shape == (224, 224) and not np.allclose(knn_map, fmap)
    assert _no_hooks(predictor)


def test_overlay_keeps_the_painting_shape(test_images):
    cam = np.tile(np.linspace(0, 1, 224, dtype=np.float32), (224, 1))
    tall = test_images[0].resize((300, 900))
    out = E.overlay(tall, cam, crop=0.875)
    assert out.size == (256, 768) and out.mode == "RGB"  # capped at max_side, aspect ratio kept
    assert E.overlay(tall, cam, max_side=2000).size == (300, 900)  # never upscaled
    wide = E.overlay(Image.new("RGB", (2000, 1000), (200, 100, 50)), cam, max_side=500, crop=0.875)
    assert wide.size == (500, 250)
    px = np.asarray(wide, dtype=float)
    assert np.allclose(px[125, 5], np.array([200, 100, 50]) * 0.45, atol=1)  # the margin the model never saw
    assert not np.allclose(px[125, 250], [200, 100, 50], atol=5)  # the heat map inside the crop
    with pytest.raises(ConfigError, match="colormap"):
        E.overlay(tall, cam, colormap="no-such-map")


# --- hooks, errors, threads ---------------------------------------------------------------------------------------

class Boom:
    def __init__(self, error):
        self.error = error

    def __call__(self, output):
        raise self.error("target failed")


@pytest.mark.parametrize("error", [ValueError, IndexError])
def test_no_hook_survives_an_error(predictor, test_images, error):
    before = _state(predictor)
    x = predictor.tensor([test_images[0]])
    model = predictor.embedder
    with pytest.raises((ValueError, RuntimeError), match="target failed"):  # IndexError is not swallowed
        E.compute_cam(model, model.cam_layer, x, [Boom(error)], "gradcam")
    assert _no_hooks(predictor) and _state(predictor) == before


def test_a_failing_explanation_releases_hooks_and_lock(predictor, test_images, monkeypatch):
    monkeypatch.setattr(E, "ClassifierOutputTarget", lambda c: Boom(RuntimeError))
    with pytest.raises(RuntimeError):
        E.explain_finetuned(predictor, test_images[0], target=1)
    assert not predictor.lock.locked() and _no_hooks(predictor)
    with pytest.raises(RuntimeError):
        E.explain_both(predictor, test_images[0], target=1)
    assert not predictor.lock.locked() and _no_hooks(predictor)
    with pytest.raises(ConfigError):
        E.feature_map(predictor, test_images[0], model="nonsense")
    with pytest.raises(ConfigError, match="unknown CAM method"):
        E.explain_finetuned(predictor, test_images[0], method="nonsense")


def test_threads_sharing_one_predictor_get_single_threaded_results(predictor, test_images):
    """Six sessions explaining at once, while two others keep predicting (unlocked) through the same models."""
    images = test_images[:6]
    expected = [E.explain_both(predictor, im) for im in images]
    plain = predictor.predict_images(images[:2])
    results, errors, done = [None] * len(images), [], threading.Event()

    def explain(i):
        try:
            results[i] = E.explain_both(predictor, images[i])
        except Exception as exc:  # reported below
            errors.append(exc)

    def predict(i):
        while not done.wait(0.02):  # a pause between predictions, so the explainers get the CPU too
            got = predictor.predict_images([images[i]])[0]
            if not np.allclose(got.probs, plain[i].probs, atol=1e-5):
                errors.append(AssertionError(f"prediction {i} changed while explaining"))

    predictors = [threading.Thread(target=predict, args=(i,)) for i in range(2)]
    explainers = [threading.Thread(target=explain, args=(i,)) for i in range(len(images))]
    for t in predictors + explainers:
        t.start()
    for t in explainers:
        t.join()
    done.set()
    for t in predictors:
        t.join()
    assert not errors
    for got, want in zip(results, expected):
        for key in ("finetuned", "knn"):
            assert np.allclose(got[key].cam, want[key].cam, atol=1e-5) and got[key].target == want[key].target
        np.testing.assert_allclose(got["prediction"].probs, want["prediction"].probs, atol=1e-6)
    assert _no_hooks(predictor)


# --- faithfulness ---------------------------------------------------------------------------------------------------

def test_road_perturbations_match_pytorch_grad_cam(predictor, test_images):
    """Our batched ROAD equals pytorch-grad-cam's ROADMostRelevantFirst on the same map and noise."""
    x = predictor.tensor([test_images[0]])
    cam = FF.random_map((7, 7), 224, np.random.default_rng(0))
    target = ClassifierOutputSoftmaxTarget(1)
    torch.manual_seed(5)
    theirs = ROADMostRelevantFirst(75)(x, cam[None], [target], predictor.classifier)[0]
    torch.manual_seed(5)
    perturbed = FF.perturbations(x[0], cam, [75], keep=0.25)[:1]
    base = FF.confidences(predictor.classifier, target, x)[0]
    ours = FF.confidences(predictor.classifier, target, perturbed)[0] - base
    assert ours == pytest.approx(theirs, abs=1e-5)


def test_random_map_is_seeded_and_smooth():
    a = FF.random_map((7, 7), 224, np.random.default_rng(3))
    assert np.array_equal(a, FF.random_map((7, 7), 224, np.random.default_rng(3)))
    assert a.shape == (224, 224) and a.min() == 0 and a.max() == pytest.approx(1, abs=1e-3)
    assert np.abs(np.diff(a, axis=1)).max() < 0.1  # as smooth as an upsampled CAM, not pixel noise


def test_faithfulness_table(predictor):
    table = FF.faithfulness(predictor, ["gradcam", "eigencam"], limit=1, percentiles=(75,))
    assert [tuple(r) for r in table[["model", "method"]].to_numpy()] == [
        (model, method) for model in ("finetuned", "knn") for method in ("gradcam", "eigencam", "random")]
    assert (table["paintings"] == 1).all() and table[list(FF.SCORES)].notna().all().all()
    text = FF.format_table(table)
    assert "fine-tuned" in text and "kNN similarity" in text and "random" in text


# --- the command ----------------------------------------------------------------------------------------------------

def test_cli_writes_overlays_and_predictions(genre_run, demo_images, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in demo_images[1:3]:
        shutil.copy(p, folder / p.name)
    (folder / "notes.jpg").write_text("not a painting")
    out = tmp_path / "out"
    assert main(["explain", str(genre_run), str(demo_images[0]), str(folder), "--out", str(out),
                 "--method", "gradcam++", "--target", "portrait"]) == 0
    stems = [p.stem for p in demo_images[:3]]
    for stem in stems:
        for kind in ("finetuned", "knn", "featuremap"):
            im = Image.open(out / f"{stem}_{kind}.png")
            assert im.size == load_image(demo_images[stems.index(stem)]).size  # under 768 px: the painting's size
    import pandas as pd
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 3 and set(table["finetuned_explained"]) == {"portrait"}
    assert "skipped: not an image file" in capsys.readouterr().err
    assert [p.name for p in out.glob(".*")] == [".artlab.json"]  # artlab's mark only: no temporary files left


def test_cli_user_errors_are_one_line(genre_run, demo_images, tmp_path, capsys):
    for argv, message in ((["--method", "nonsense"], "unknown CAM method"),
                          (["--knn-method", "nonsense"], "unknown --knn-method"),
                          (["--target", "cubism"], "unknown class")):
        assert main(["explain", str(genre_run), str(demo_images[0]), "--out", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["explain", str(genre_run), str(demo_images[0])]) == 2  # no --out
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    assert main(["explain", str(genre_run), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "none of the 1 file(s)" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_faithfulness_table(genre_run, capsys):
    assert main(["explain", str(genre_run), "--faithfulness", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 test painting(s)" in out
    for word in ("gradcam", "random", "fine-tuned", "kNN similarity", "road_morf", "road_lerf", "road_combined"):
        assert word in out


@pytest.mark.slow
def test_culture_run_transfer_model(culture_run, demo_images):
    """The culture recipe (transfer, mlp3 head): both CAMs and the kNN's feature map."""
    p = Predictor(Run.open(culture_run))
    both = E.explain_both(p, load_image(demo_images[0]), method="layercam", knn_method="eigencam")
    assert _is_map(both["finetuned"].cam, 224) and _is_map(both["knn"].cam, 224)
    assert E.feature_map(p, load_image(demo_images[0]), model="knn").shape == (224, 224)
    assert _no_hooks(p)


def test_explain_help_names_every_cam_method(capsys):
    """The CLI lists the methods in its help without importing pytorch-grad-cam; this keeps the list honest."""
    from artlab.cli import main
    from artlab.explain.cams import METHODS
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in METHODS)
