"""Many sessions at once: eight real sessions on one `streamlit run` server, and eight threads on one shared Predictor.

1. ``test_eight_sessions_on_a_real_server``: ``streamlit run app.py`` on the small genre run, and eight sessions that
   talk to it as eight browser tabs do (artlab/testing/server.py: the app's websocket, uploads over HTTP). Each session
   makes 25 requests (200 in all), each what a curator does on the Classify page: upload a painting, then switch on
   "Show where each model looked" (both models' predictions, the neighbours, both Grad-CAMs and their overlays). Every
   upload is a painting of the demo collection with a unique marker (an APP15 segment) in its bytes: the pixels are the
   painting's, but the app's caches, keyed by the file's bytes, never hold the answer, so every request runs both
   models and both CAMs on the shared Predictor while other sessions do the same. Checked: every page equals what one
   session alone got for that painting (its texts, and its pictures: the same /media address, which names the bytes,
   or the same pixels within JPEG noise), no page shows an exception, and the server's memory over the second 100
   requests grows by less than the app's bounded caches can hold (see SERVER_SLACK_MB).
2. ``test_many_sessions_share_one_predictor``: the object the sessions share (``st.cache_resource`` in
   artlab.app), driven directly from eight threads, where hooks and live tensors can be counted: no hook is left,
   the number of live tensors is constant and RSS is flat.

The second test, in detail: eight threads share a single ``artlab.explain.predictor.Predictor`` built once from the real
small genre run (the fixture). Each thread makes 25 requests (200 in all), each what the Classify page does for an
upload with heat maps shown: ``predict_files`` on the file's bytes (unlocked) and ``explain.explain_both`` on the
decoded image (under the predictor's lock), on real paintings of the demo collection, varied from request to request
and from thread to thread.

Checked: every answer equals the answer one session alone gets for the same painting (probabilities, kNN vote shares
and both CAMs, np.allclose); no hook is left on the models or their explanation twins; memory is flat, that is RSS
(psutil) and the number of live torch tensors after the second 100 requests against after the first 100 (the same
threads throughout, so glibc's per-thread arenas are already grown; a warm-up comes first; gc.collect() before each
measurement).
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import psutil
import pytest
import torch

from artlab.explain import cams as explain
from artlab.images import load_image
from artlab.explain.predictor import Predictor
from artlab.runfolder import Run

from artlab.testing.server import Session, serve
from streamlit.proto.WidgetStates_pb2 import WidgetState

pytestmark = pytest.mark.slow

THREADS, PER_THREAD = 8, 25
FIRST = [13 if t < 4 else 12 for t in range(THREADS)]  # the first 100 requests; each thread does 25 in all
RSS_SLACK_MB = 60
TENSOR_SLACK = 8
TIMEOUT = 600
# What the app's caches may add over 100 requests that each bring new bytes (artlab.app): two CAMs of 224 x 224
# float32 (0.4 MB; the CAM cache holds 128), two overlays and a preview (JPEGs of 640 px, ~0.2 MB): about 60 MB, and
# 40 MB for the allocator. A request that left its autograd graph or activations behind would leak tens of MB each.
SERVER_SLACK_MB = 100


def request(predictor: Predictor, name: str, data: bytes) -> dict[str, np.ndarray]:
    """What the Classify page computes for one upload with heat maps on (artlab.app.predict and artlab.app.explanations)."""
    pred = predictor.predict_files([data], [name])[0]
    both = explain.explain_both(predictor, load_image(data, name=name), name=name)
    return {"probs": pred.probs, "knn_shares": pred.knn_shares, "cam_probs": both["prediction"].probs,
            "cam_knn_shares": both["prediction"].knn_shares, "finetuned": both["finetuned"].cam,
            "knn": both["knn"].cam}


def mismatches(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> list[str]:
    return [k for k in want if got[k].shape != want[k].shape or not np.allclose(got[k], want[k], atol=1e-4)]


def live_tensors() -> int:
    gc.collect()
    # type(), not isinstance(): the latter reads __class__, and some of torch's deprecated module attributes warn
    return sum(issubclass(type(obj), torch.Tensor) for obj in gc.get_objects())


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2 ** 20


@dataclass
class Load:
    problems: list[str]
    requests: int
    at_halfway: Any  # measure() once every session had made its first requests (100 in all); None if they broke off
    at_end: Any  # measure() after the last request
    seconds: float
    hung: bool


def eight_sessions(one_request: Callable[[Any, int, int], list[str]], measure: Callable[[], Any],
                   open_session: Callable[[int], Any] = lambda t: None,
                   close_session: Callable[[Any], None] = lambda s: None) -> Load:
    """THREADS sessions in threads, PER_THREAD requests each; ``one_request(session, t, i)`` makes request ``i`` of
    session ``t`` and says what differs from one session's answer. Every session pauses after its first requests,
    100 in all, while ``measure()`` runs; it runs again after the last."""
    problems: list[str] = []
    counts = [0] * THREADS
    halfway = threading.Barrier(THREADS + 1, timeout=TIMEOUT)
    resume = threading.Barrier(THREADS + 1, timeout=TIMEOUT)

    def session(t: int) -> None:
        handle = None
        try:
            handle = open_session(t)
            for i in range(PER_THREAD):
                if i == FIRST[t]:
                    halfway.wait()
                    resume.wait()
                bad = one_request(handle, t, i)
                counts[t] += 1
                problems.extend(f"session {t}, request {i}, {b}" for b in bad)
        except threading.BrokenBarrierError:
            problems.append(f"session {t}: the other sessions broke off")
        except Exception as exc:  # noqa: BLE001 - reported with the rest
            problems.append(f"session {t}: {type(exc).__name__}: {exc}")
            halfway.abort()
            resume.abort()
        finally:
            if handle is not None:
                close_session(handle)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=session, args=(t,), name=f"session-{t}") for t in range(THREADS)]
    for w in threads:
        w.start()
    at_halfway = None
    try:
        halfway.wait()
        at_halfway = measure()
        resume.wait()
    except threading.BrokenBarrierError:
        pass
    for w in threads:
        w.join(TIMEOUT)
    return Load(problems, sum(counts), at_halfway, measure(), time.perf_counter() - t0,
                any(w.is_alive() for w in threads))


def test_many_sessions_share_one_predictor(genre_run, demo_images):
    predictor = Predictor(Run.open(genre_run))
    paintings = [(p.name, p.read_bytes()) for p in demo_images]
    assert len(paintings) >= 4
    assert explain.predictor_hooks(predictor) == 0

    # One session alone: the reference answers (and the warm-up: weights, twins, allocator).
    reference = [request(predictor, name, data) for name, data in paintings]
    for (name, data), want in zip(paintings, reference):
        assert not mismatches(request(predictor, name, data), want), name  # one session is deterministic

    def one_request(_, t: int, i: int) -> list[str]:
        k = (3 * t + 5 * i) % len(paintings)  # threads start on different paintings and move differently
        name, data = paintings[k]
        bad = mismatches(request(predictor, name, data), reference[k])
        return [f"{name}: {bad} differ from one session's answer"] if bad else []

    tensors0 = live_tensors()
    load = eight_sessions(one_request, lambda: (rss_mb(), live_tensors()))
    (rss1, tensors1), (rss2, tensors2) = load.at_halfway or (None, None), load.at_end

    assert not load.hung, "a session hung"
    assert not load.problems, load.problems[:10]
    assert load.requests == THREADS * PER_THREAD == 200
    assert explain.predictor_hooks(predictor) == 0, "hooks left on the shared models"
    assert all(p.grad is None for m in (predictor.classifier, predictor.embedder) for p in m.parameters())
    print(f"\n200 requests in {load.seconds:.1f}s; RSS {rss1:.0f} -> {rss2:.0f} MB; live tensors {tensors0} -> "
          f"{tensors1} -> {tensors2}")
    assert rss2 - rss1 < RSS_SLACK_MB, f"RSS grew by {rss2 - rss1:.0f} MB over the second 100 requests"
    assert tensors2 - tensors1 <= TENSOR_SLACK, f"live tensors {tensors1} -> {tensors2}"
    assert tensors2 - tensors0 <= TENSOR_SLACK, f"live tensors {tensors0} -> {tensors2}"


# --- eight sessions on a real server ----------------------------------------------------------------------------

def marked(data: bytes, marker: str) -> bytes:
    """The same JPEG with an APP15 segment after its start marker: other bytes (so no cache holds the answer), the
    same pixels (decoders skip APP15, and the app's previews and overlays don't copy it)."""
    assert data[:2] == b"\xff\xd8", "a JPEG"
    payload = f"artlab load test: {marker}".encode()
    return data[:2] + b"\xff\xef" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]


def ask(session: Session, uploader: str, name: str, data: bytes) -> tuple[list[str], list[str]]:
    """Upload a painting and switch its heat maps on, as a curator does; the texts and pictures of the final page."""
    value = session.upload(name, data)
    value.id = uploader
    page = session.run([value])
    problems = page.exceptions + [a for a in page.alerts if "Something went wrong" in a]
    if not problems:
        cams = WidgetState(id=page.widget("cams_"), bool_value=True)
        page = session.run([value, cams])
        problems = page.exceptions + [a for a in page.alerts if "Something went wrong" in a]
    if problems or page.status != "FINISHED_SUCCESSFULLY":
        raise AssertionError(f"{name}: {page.status} {problems}")
    if not any("Warm colours" in t for t in page.texts):
        raise AssertionError(f"{name}: no heat maps on the page")
    return page.texts, page.images


def same_pixels(a: bytes, b: bytes) -> bool:
    x = np.asarray(load_image(a, name="a.jpg"), dtype=np.int16)
    y = np.asarray(load_image(b, name="b.jpg"), dtype=np.int16)
    return x.shape == y.shape and np.abs(x - y).max() <= 8


def test_eight_sessions_on_a_real_server(genre_run, demo_images, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "genre").symlink_to(genre_run, target_is_directory=True)
    server = serve(runs, tmp_path / "streamlit.log")
    try:
        process = psutil.Process(server.proc.pid)
        paintings = [(p.name, p.read_bytes()) for p in demo_images]

        # One session alone: the reference pages (and the warm-up: models, CAM machinery, allocator).
        alone = Session(server.url)
        uploader = alone.run().widget("uploads")
        reference = []
        for name, data in paintings:
            texts, images = ask(alone, uploader, name, marked(data, "alone"))
            reference.append((texts, images, {address: alone.media(address) for address in images}))
        alone.close()

        def one_request(tab: tuple[Session, str], t: int, i: int) -> list[str]:
            session, uploader = tab
            k = (3 * t + 5 * i) % len(paintings)  # sessions start on different paintings and move differently
            name, data = paintings[k]
            texts, images = ask(session, uploader, name, marked(data, f"session {t}, request {i}"))
            want_texts, want_images, want_bytes = reference[k]
            bad = [] if texts == want_texts else [f"texts: {sorted(set(texts) ^ set(want_texts))[:4]}"]
            if len(images) != len(want_images):
                bad.append(f"{len(images)} pictures, not {len(want_images)}")
            else:
                bad += [f"picture {j}" for j, (a, b) in enumerate(zip(images, want_images))
                        if a != b and not same_pixels(session.media(a), want_bytes[b])]
            return [f"{name}: {bad} differ from one session's page"] if bad else []

        def open_tab(t: int) -> tuple[Session, str]:
            session = Session(server.url)
            return session, session.run().widget("uploads")

        load = eight_sessions(one_request, lambda: process.memory_info().rss / 2 ** 20, open_tab,
                              lambda tab: tab[0].close())
        rss1, rss2 = load.at_halfway, load.at_end

        assert not load.hung, "a session hung"
        assert not load.problems, load.problems[:10]
        assert load.requests == THREADS * PER_THREAD == 200
        assert server.proc.poll() is None, "the server died"
        print(f"\n200 requests from 8 sessions in {load.seconds:.1f}s; server RSS {rss1:.0f} -> {rss2:.0f} MB")
        assert rss2 - rss1 < SERVER_SLACK_MB, f"server RSS grew by {rss2 - rss1:.0f} MB over the second 100 requests"
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()
