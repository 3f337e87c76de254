"""Classification metrics (``ferbatch.train.metrics``) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from ferbatch.train.metrics import classification_report, confusion_matrix


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed: int) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    k = 6
    y = rng.integers(0, k, 400)
    pred = np.where(rng.random(400) < 0.6, y, rng.integers(0, k, 400))
    cm = confusion_matrix(y, pred, k)
    assert np.array_equal(cm, sk.confusion_matrix(y, pred, labels=list(range(k))))
    labels = [f"c{i}" for i in range(k)]
    report = classification_report(cm, labels)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert report["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(sk.f1_score(y, pred, average="weighted"))
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=list(range(k)),
                                                    zero_division=0)
    for i, name in enumerate(labels):
        m = report["per_class"][name]
        assert (m["precision"], m["recall"], m["f1"], m["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i]))
    assert report["n"] == 400 and report["confusion_matrix"] == cm.tolist()
