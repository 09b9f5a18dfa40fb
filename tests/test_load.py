"""Many sessions at once on ONE shared Predictor, as the app shares it (``st.cache_resource`` in artlab.appstate).

Eight threads stand for eight browser sessions. They share a single ``artlab.inference.Predictor`` built once from
the real small genre run (the fixture), not AppTest instances: AppTest runs a script per instance and is not made for
threads, and what the sessions share in the app is exactly this object. Each thread makes 25 requests (200 in all),
each what the Classify page does for an upload with heat maps shown: ``predict_files`` on the file's bytes (unlocked)
and ``explain.explain_both`` on the decoded image (under the predictor's lock), on real paintings of the demo
collection, varied from request to request and from thread to thread.

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

import numpy as np
import psutil
import pytest
import torch

from artlab import explain
from artlab.images import load_image
from artlab.inference import Predictor
from artlab.runs import Run

pytestmark = pytest.mark.slow

THREADS, PER_THREAD = 8, 25
FIRST = [13 if t < 4 else 12 for t in range(THREADS)]  # the first 100 requests; each thread does 25 in all
RSS_SLACK_MB = 60
TENSOR_SLACK = 8
TIMEOUT = 600


def request(predictor: Predictor, name: str, data: bytes) -> dict[str, np.ndarray]:
    """What the Classify page computes for one upload with heat maps on (appstate._predict and appstate._explain)."""
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


def test_many_sessions_share_one_predictor(genre_run, demo_images):
    predictor = Predictor(Run.open(genre_run))
    paintings = [(p.name, p.read_bytes()) for p in demo_images]
    assert len(paintings) >= 4
    assert explain.predictor_hooks(predictor) == 0

    # One session alone: the reference answers (and the warm-up: weights, twins, allocator).
    reference = [request(predictor, name, data) for name, data in paintings]
    for (name, data), want in zip(paintings, reference):
        assert not mismatches(request(predictor, name, data), want), name  # one session is deterministic

    problems: list[str] = []
    counts = [0] * THREADS
    halfway = threading.Barrier(THREADS + 1, timeout=TIMEOUT)
    resume = threading.Barrier(THREADS + 1, timeout=TIMEOUT)

    def session(t: int) -> None:
        try:
            for i in range(PER_THREAD):
                if i == FIRST[t]:
                    halfway.wait()
                    resume.wait()
                k = (3 * t + 5 * i) % len(paintings)  # threads start on different paintings and move differently
                name, data = paintings[k]
                bad = mismatches(request(predictor, name, data), reference[k])
                counts[t] += 1
                if bad:
                    problems.append(f"thread {t}, request {i}, {name}: {bad} differ from one session's answer")
        except threading.BrokenBarrierError:
            problems.append(f"thread {t}: the other threads broke off")
        except Exception as exc:  # noqa: BLE001 - reported below, with the rest
            problems.append(f"thread {t}: {type(exc).__name__}: {exc}")
            halfway.abort()
            resume.abort()

    tensors0, t0 = live_tensors(), time.perf_counter()
    workers = [threading.Thread(target=session, args=(t,), name=f"session-{t}") for t in range(THREADS)]
    for w in workers:
        w.start()
    try:
        halfway.wait()  # every thread has made its first requests: 100 in all
        rss1, tensors1 = rss_mb(), live_tensors()
        resume.wait()
    except threading.BrokenBarrierError:
        rss1 = tensors1 = None
    for w in workers:
        w.join(TIMEOUT)
    rss2, tensors2 = rss_mb(), live_tensors()
    elapsed = time.perf_counter() - t0

    assert not any(w.is_alive() for w in workers), "a session hung"
    assert not problems, problems[:10]
    assert sum(counts) == THREADS * PER_THREAD == 200
    assert explain.predictor_hooks(predictor) == 0, "hooks left on the shared models"
    assert all(p.grad is None for m in (predictor.classifier, predictor.embedder) for p in m.parameters())
    print(f"\n200 requests in {elapsed:.1f}s; RSS {rss1:.0f} -> {rss2:.0f} MB; live tensors {tensors0} -> "
          f"{tensors1} -> {tensors2}")
    assert rss2 - rss1 < RSS_SLACK_MB, f"RSS grew by {rss2 - rss1:.0f} MB over the second 100 requests"
    assert tensors2 - tensors1 <= TENSOR_SLACK, f"live tensors {tensors1} -> {tensors2}"
    assert tensors2 - tensors0 <= TENSOR_SLACK, f"live tensors {tensors0} -> {tensors2}"
