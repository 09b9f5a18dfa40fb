import numpy as np
from sklearn import metrics as skm

from artlab.report.metrics import classification_report


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    classes = ["landscape", "portrait", "sketch", "still life", "unused"]
    y = rng.integers(0, 4, 200)
    scores = rng.random((200, 5))
    scores[np.arange(200), y] += rng.random(200)  # informative but imperfect
    pred = scores.argmax(1)
    r = classification_report(y, pred, scores, classes)
    assert r["accuracy"] == skm.accuracy_score(y, pred)
    for avg in ("macro", "weighted"):
        p, rc, f, _ = skm.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert np.isclose(r[f"precision_{avg}"], p) and np.isclose(r[f"recall_{avg}"], rc)
        assert np.isclose(r[f"f1_{avg}"], f)
    assert np.isclose(r["top3_accuracy"], skm.top_k_accuracy_score(y, scores, k=3, labels=range(5)))
    assert r["confusion"] == skm.confusion_matrix(y, pred, labels=range(5)).tolist()
    assert r["per_class"]["unused"]["support"] == 0
