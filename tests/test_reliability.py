"""Reliability on real data, offline: hostile uploads, hostile or mismatched checkpoints, interrupted work.

Uploads: every odd file a curator (or an attacker) can hand the app either loads as the upright RGB painting it
is, or fails with one plain ImageError line naming it, and never takes the rest of a batch down with it.
Checkpoints: a model.pt that asks to run code is refused without running it; a card that does not match its
weights says so. Interruptions: a killed training run resumes where it stopped; a killed collection build leaves
nothing that looks finished and rebuilds cleanly.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from _progress import Counted
from artlab.errors import ImageError, RunError
from artlab.images import load_image
from artlab.progress import Progress
from artlab.runfolder import Run, is_run

# --- building hostile and odd files ---------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side: int = 20000) -> bytes:
    """A valid 1-bit PNG of side x side white pixels, written row block by row block: ~50 KB, never 400 MB."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grayscale, no interlace
    row = b"\x00" + b"\xff" * ((side + 7) // 8)  # filter byte + packed pixels
    z, block = zlib.compressobj(9), row * 1000
    data = b"".join(z.compress(block) for _ in range(side // 1000)) + z.compress(row * (side % 1000)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
            + _png_chunk(b"IEND", b""))


def jpeg_claiming(data: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is edited to claim ``width`` x ``height``: a bomb by its header."""
    at = data.index(b"\xff\xc0")
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _even(im: Image.Image) -> Image.Image:
    """Cropped to multiples of 16, so that a rotated JPEG has the same 8x8 block grid as the upright one."""
    return im.crop((0, 0, im.width // 16 * 16, im.height // 16 * 16))


def exif_rotated(upright: Image.Image, orientation: int) -> bytes:
    """``upright`` stored sideways, with the EXIF Orientation tag that tells a viewer how to turn it back."""
    stored = upright.transpose({6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())


@pytest.fixture(scope="module")
def painting(demo_images) -> Image.Image:
    """A real CC0 painting, decoded, cropped to whole JPEG blocks."""
    return _even(load_image(demo_images[1]))


@pytest.fixture(scope="module")
def uploads(demo_images, painting, tmp_path_factory) -> dict[str, Path]:
    """Every odd or hostile file, on disk under an honest-looking name."""
    folder = tmp_path_factory.mktemp("uploads")
    real = demo_images[0].read_bytes()
    frames = [painting.quantize(64)] + [Image.new("P", painting.size, c) for c in (10, 200)]
    palette = painting.quantize(255)
    palette.putpalette(palette.getpalette()[:255 * 3] + [0, 0, 0])  # index 255: black, saved as transparent
    palette.paste(255, (0, 0, 40, 40))  # a see-through corner
    arr16 = (np.asarray(painting.convert("L"), dtype=np.uint16) * 257)
    files = {
        "empty.jpg": b"",
        "notes.jpg": b"These are my notes on the painting, not the painting.\n",
        "letter.jpg": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n",
        "truncated.jpg": real[: len(real) // 2],
        "bomb.png": png_bomb(20000),
        "bomb.jpg": jpeg_claiming(real, 20000, 20000),
        "sliver.png": encode(Image.new("1", (100000, 1)), "PNG"),  # 100 bytes; resized for a model: 20 GB
        "cmyk.jpg": encode(painting.convert("CMYK"), "JPEG", quality=95),
        "gray16.png": encode(Image.fromarray(arr16), "PNG"),
        "palette.png": encode(palette, "PNG", transparency=255),
        "animated.gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "upright.jpg": encode(painting, "JPEG", quality=100, subsampling=0),
        "exif6.jpg": exif_rotated(painting, 6),
        "exif8.jpg": exif_rotated(painting, 8),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


BROKEN = {  # file -> what the one-line message says
    "empty.jpg": "not an image file|empty",
    "notes.jpg": "not an image file",
    "letter.jpg": "not an image file",
    "truncated.jpg": "unreadable image",
    "bomb.png": "too large",
    "bomb.jpg": "too large",
    "sliver.png": "too elongated",
}
ODD = ("cmyk.jpg", "gray16.png", "palette.png", "animated.gif", "upright.jpg", "exif6.jpg", "exif8.jpg")


def _mean_abs(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


# --- uploads through load_image -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BROKEN))
@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_broken_files_give_one_plain_line(uploads, name, as_bytes):
    source = uploads[name].read_bytes() if as_bytes else uploads[name]
    with pytest.raises(ImageError, match=BROKEN[name]) as err:
        load_image(source, name=name)
    message = str(err.value)
    assert name in message and "\n" not in message and len(message) < 300
    assert "Traceback" not in message


def test_bombs_are_refused_before_they_are_decoded(uploads, monkeypatch):
    from PIL import ImageFile
    decoded, real_load = [], ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    for name in ("bomb.png", "bomb.jpg", "sliver.png"):
        with pytest.raises(ImageError):
            load_image(uploads[name])
    assert decoded == [], "pixels were decoded before the size was checked"
    load_image(uploads["upright.jpg"])
    assert decoded, "the spy sees decoding"


def test_odd_but_valid_files_load_as_the_painting(uploads, painting):
    for name in ODD:
        im = load_image(uploads[name])
        assert im.mode == "RGB", name
    assert _mean_abs(load_image(uploads["cmyk.jpg"]), painting) < 6  # colours survive CMYK (JPEG noise only)
    gray = np.asarray(load_image(uploads["gray16.png"]), dtype=np.float32)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    luminance = np.asarray(painting.convert("L"), dtype=np.float32)
    assert np.corrcoef(gray[..., 0].ravel(), luminance.ravel())[0, 1] > 0.999  # rescaled 16-bit, same picture
    pal = load_image(uploads["palette.png"])
    assert pal.getpixel((5, 5)) == (255, 255, 255)  # the transparent corner is paper-white, not black
    assert _mean_abs(pal.crop((60, 60, pal.width, pal.height)), painting.crop((60, 60, *painting.size))) < 12
    gif = load_image(uploads["animated.gif"])
    assert gif.size == painting.size and _mean_abs(gif, painting) < 15  # the first frame, not a solid one


@pytest.mark.parametrize("name", ["exif6.jpg", "exif8.jpg"])
def test_exif_rotation_is_undone(uploads, painting, name):
    with Image.open(uploads[name]) as raw:
        assert raw.size == (painting.height, painting.width)  # stored sideways
    im = load_image(uploads[name])
    assert im.size == painting.size
    assert _mean_abs(im, load_image(uploads["upright.jpg"])) < 1.0
    small = load_image(uploads[name], min_side=64)  # draft decoding, then the turn
    assert small.width / small.height == pytest.approx(painting.width / painting.height, rel=0.05)


# --- uploads through the predictor ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def predictor(genre_run):
    from artlab.explain.predictor import Predictor
    return Predictor(Run.open(genre_run))


def test_a_batch_with_hostile_files_still_predicts_the_others(predictor, uploads, demo_images):
    names = [*BROKEN, *ODD]
    sources = [uploads[n] for n in names] + list(demo_images[:2])
    names += [p.name for p in demo_images[:2]]
    results = predictor.predict_files(sources, names)
    assert len(results) == len(sources)
    for name, r in zip(names, results):
        if name in BROKEN:
            assert isinstance(r, ImageError) and name in str(r), name
        else:
            assert not isinstance(r, Exception), f"{name}: {r}"
            assert np.isfinite(r.probs).all() and r.probs.sum() == pytest.approx(1, abs=1e-5)
            assert r.knn_shares.sum() == pytest.approx(1) and len(r.neighbours) > 0
    alone = predictor.predict_files(list(demo_images[:2]))
    for a, b in zip(alone, results[-2:]):
        assert np.allclose(a.probs, b.probs, atol=1e-5), "other files in the batch changed a prediction"


def test_bytes_uploads_behave_like_files(predictor, uploads):
    names = ["empty.jpg", "bomb.png", "exif6.jpg"]
    results = predictor.predict_files([uploads[n].read_bytes() for n in names], names)
    assert isinstance(results[0], ImageError) and "empty.jpg" in str(results[0])
    assert isinstance(results[1], ImageError) and "too large" in str(results[1])
    assert results[2].name == "exif6.jpg"


def test_exif_rotated_painting_is_classified_upright(predictor, uploads):
    upright, six, eight = predictor.predict_files([uploads[n] for n in ("upright.jpg", "exif6.jpg", "exif8.jpg")])
    assert np.allclose(six.probs, upright.probs, atol=0.01), (six.probs, upright.probs)
    assert np.allclose(eight.probs, upright.probs, atol=0.01), (eight.probs, upright.probs)
    assert six.finetuned == upright.finetuned and six.knn == upright.knn
    # The same pixels without the turn: the check above would not notice a predictor that ignored EXIF
    # only if the model did not care which way up a painting is. It does.
    with Image.open(uploads["exif6.jpg"]) as raw:
        sideways = predictor.predict_images([raw.convert("RGB")])[0]
    gap = np.abs(sideways.probs - upright.probs).max()
    assert gap > 10 * np.abs(six.probs - upright.probs).max()


# --- checkpoints -----------------------------------------------------------------------------------------------

class _RunsCode:
    """Unpickling this calls os.system: what a booby-trapped checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture
def run_copy(genre_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(genre_run, out)
    return out


def _edit_card(run: Path, edit) -> None:
    card = json.loads((run / "card.json").read_text())
    edit(card)
    (run / "card.json").write_text(json.dumps(card))


def test_payload_really_runs_when_loaded_unsafely(tmp_path):
    """The trap is real: an unsafe load runs it (so the refusals below prove something)."""
    marker = tmp_path / "pwned"
    torch.save({"head.fc.weight": _RunsCode(marker)}, tmp_path / "trap.pt")
    torch.load(tmp_path / "trap.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("fmt", ["torch.save", "raw pickle"])
def test_checkpoint_that_runs_code_is_refused(run_copy, tmp_path, fmt):
    marker = tmp_path / "pwned"
    state = dict(torch.load(run_copy / "model.pt", weights_only=True))
    state["head.fc.weight"] = _RunsCode(marker)
    if fmt == "torch.save":
        torch.save(state, run_copy / "model.pt")
    else:
        (run_copy / "model.pt").write_bytes(pickle.dumps(state, protocol=2))
    with pytest.raises(RunError, match="refusing model.pt"):
        Run.open(run_copy).classifier()
    from artlab.explain.predictor import Predictor
    with pytest.raises(RunError):
        Predictor(Run.open(run_copy))
    assert not marker.exists(), "the checkpoint's code ran"


def test_truncated_checkpoint_is_a_run_error(run_copy):
    data = (run_copy / "model.pt").read_bytes()
    (run_copy / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="model.pt"):
        Run.open(run_copy).classifier()


@pytest.mark.parametrize("change", [1, -1], ids=["one more class", "one fewer class"])
def test_card_with_other_class_count_is_refused(run_copy, change):
    def edit(card):
        classes = card["task"]["classes"]
        card["task"]["classes"] = classes + ["zzz extra"] if change > 0 else classes[:-1]
    _edit_card(run_copy, edit)
    # refused when the card is opened (its metrics no longer match its classes: artlab.runcheck), one line
    with pytest.raises(RunError, match=r"card.json: field 'metrics\.finetuned\.(per_class|confusion)") as err:
        Run.open(run_copy).classifier()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("keep_sha", [True, False], ids=["weights checked", "no weights digest"])
def test_card_with_other_backbone_is_refused(run_copy, keep_sha):
    def edit(card):
        card["backbone"]["name"] = "efficientnet_lite2"
        if not keep_sha:
            card["backbone"]["weights"].pop("sha256")
    _edit_card(run_copy, edit)
    with pytest.raises(RunError, match="efficientnet_lite2|pretrained weights") as err:
        Run.open(run_copy).classifier()
    assert "\n" not in str(err.value)


# --- interrupted training ------------------------------------------------------------------------------------

class Recorder(Progress):
    """Keeps every message; raises KeyboardInterrupt (a Ctrl-C, a stopped app) once epoch ``stop_after`` is done."""

    def __init__(self, stop_after: int | None = None):
        self.stop_after, self.messages = stop_after, []

    def message(self, text: str) -> None:
        self.messages.append(text)
        if self.stop_after is not None and text.startswith(f"epoch {self.stop_after}:"):
            raise KeyboardInterrupt


def _tiny_config(collection: Path, **changes):
    from artlab.train.config import TrainConfig
    return TrainConfig(collection=str(collection), label="genre", classes=("landscape", "portrait"),
                       max_per_class=5, epochs=3, patience=3, cache_views=1, batch_size=4, device="cpu",
                       **changes)


def _interrupt(cfg, out: Path) -> Recorder:
    from artlab.train.runner import train_run
    progress = Recorder(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, out, progress, umap=False)
    assert not is_run(out) and not out.exists()
    assert (out.parent / f".{out.name}.partial" / "resume.pt").is_file()
    return progress


@pytest.mark.train
def test_killed_training_resumes_where_it_stopped(demo_collection, tmp_path):
    from artlab.train.runner import train_run
    cfg, out = _tiny_config(demo_collection), tmp_path / "run"
    before = _interrupt(cfg, out)
    progress = Recorder()
    train_run(cfg, out, progress, umap=False)
    assert "resuming after epoch 2" in progress.messages
    assert [m.split(":")[0] for m in progress.messages if m.startswith("epoch ")] == ["epoch 3"]
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    for m, row in zip(before.messages, history.itertuples()):  # epochs 1-2 are the ones run before the kill
        assert m.startswith(f"epoch {row.epoch}: train loss {row.train_loss:.3f}")
    assert Run.open(out).card["training"]["epochs_run"] == 3
    assert not (tmp_path / ".run.partial").exists() and not list(tmp_path.rglob("*.part"))


@pytest.mark.train
def test_killed_training_with_another_config_restarts(demo_collection, tmp_path):
    from artlab.train.runner import train_run
    out = tmp_path / "run"
    _interrupt(_tiny_config(demo_collection), out)
    progress = Recorder()
    train_run(_tiny_config(demo_collection, lr=5e-4), out, progress, umap=False)
    assert not any(m.startswith("resuming") for m in progress.messages)
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == [1, 2, 3]
    assert Run.open(out).card["config"]["lr"] == 5e-4
    assert not (tmp_path / ".run.partial").exists()


# --- interrupted collection build ----------------------------------------------------------------------------

def _check_complete(out: Path, source: Path) -> None:
    df = pd.read_csv(out / "manifest.csv", dtype=str)
    assert df["id"].is_unique and df["path"].is_unique
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "images").iterdir())
    assert on_disk == sorted(df["path"])
    for rel in df["path"]:
        assert load_image(out / rel).mode == "RGB"
        assert (out / rel).read_bytes() == (source / Path(rel).name).read_bytes()
    assert not list(out.rglob("*.part"))


def test_killed_demo_build_leaves_nothing_finished_and_rebuilds(tmp_path):
    from artlab.collection.demo import build_demo, demo_data_dir

    out = tmp_path / "demo"
    with pytest.raises(KeyboardInterrupt):
        build_demo(out, progress=Counted(stop_at=60))
    assert not (out / "manifest.csv").exists() and not (out / "report.json").exists()
    assert not list(out.rglob("*.part"))
    report = build_demo(out)
    assert report.kept == len(pd.read_csv(out / "manifest.csv"))
    _check_complete(out, demo_data_dir())


def test_demo_build_killed_mid_copy_leaves_no_partial_file(tmp_path, monkeypatch):
    from artlab.collection import demo

    calls = {"n": 0}
    real_copy = shutil.copyfile

    def dying_copy(src, dst):
        calls["n"] += 1
        if calls["n"] == 20:  # half a file written, then the power goes
            Path(dst).write_bytes(Path(src).read_bytes()[:1000])
            raise KeyboardInterrupt
        return real_copy(src, dst)

    out = tmp_path / "demo"
    monkeypatch.setattr(demo.shutil, "copyfile", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        demo.build_demo(out)
    monkeypatch.undo()
    assert not list(out.rglob("*.part")) and not (out / "manifest.csv").exists()
    assert len(list((out / "images").iterdir())) == 19
    demo.build_demo(out)
    _check_complete(out, demo.demo_data_dir())
