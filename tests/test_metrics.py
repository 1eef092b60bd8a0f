"""common.metrics against values worked out by hand."""
import math

import numpy as np
import pytest

from common.errors import UserError
from common.metrics import (accuracy, compute_metrics, f1, main_metric, mcc, one_class_metric,
                            pearson, spearman)

LABELS = [1, 1, 1, 0, 0, 0]
PREDS = [1, 1, 0, 1, 0, 0]  # tp 2, fn 1, fp 1, tn 2


def test_basic_metrics():
    assert accuracy(PREDS, LABELS) == pytest.approx(4 / 6)
    assert f1(PREDS, LABELS) == pytest.approx(2 / 3)  # precision 2/3, recall 2/3
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (4 - 1) / 9
    assert mcc(PREDS, LABELS) == pytest.approx(1 / 3)


def test_correlations():
    labels = [1.0, 2.0, 3.0, 4.0]
    assert pearson([2.0, 4.0, 6.0, 8.0], labels) == pytest.approx(1.0)
    # ranks 1,2,4,3 against 1,2,3,4: 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/60
    assert spearman([1.0, 2.0, 9.0, 3.0], labels) == pytest.approx(0.8)
    # deviations from the means: sum(dx*dy) = 6.5, sum(dx^2) = 8.75, sum(dy^2) = 5
    assert pearson([1.0, 2.0, 3.0, 5.0], labels) == pytest.approx(6.5 / math.sqrt(8.75 * 5))


def test_degenerate_inputs_score_zero():
    assert mcc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0
    assert f1([0, 0, 0], [0, 0, 1]) == 0.0
    assert pearson([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == 0.0
    assert spearman([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == 0.0


def test_compute_metrics_per_task():
    assert compute_metrics("cola", PREDS, LABELS) == pytest.approx(
        {"mcc": 1 / 3, "glue_score": 1 / 3})
    assert compute_metrics("sst-2", np.array(PREDS), np.array(LABELS)) == pytest.approx(
        {"acc": 4 / 6, "glue_score": 4 / 6})
    expected = {"acc": 4 / 6, "f1": 2 / 3, "acc_and_f1": 2 / 3, "glue_score": 2 / 3}
    assert compute_metrics("mrpc", PREDS, LABELS) == pytest.approx(expected)
    assert compute_metrics("qqp", PREDS, LABELS) == pytest.approx(expected)
    stsb = compute_metrics("sts-b", [1.0, 2.0, 9.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    r = np.corrcoef([1.0, 2.0, 9.0, 3.0], [1.0, 2.0, 3.0, 4.0])[0, 1]
    assert stsb == pytest.approx({"pearson": r, "spearman": 0.8, "corr": (r + 0.8) / 2,
                                  "glue_score": (r + 0.8) / 2})
    assert compute_metrics("mnli", [0, 1, 2, 2], [0, 1, 2, 1])["acc"] == pytest.approx(0.75)


def test_one_class_metric_is_the_best_constant_answer():
    labels = [1, 1, 0, 1, 0]
    # MRPC's F1 answering "paraphrase" (1) everywhere: precision 3/5, recall 1 -> 3/4; class 0: 0.
    assert one_class_metric("mrpc", labels) == pytest.approx(0.75)
    assert one_class_metric("sst-2", labels) == pytest.approx(0.6)  # the majority's share
    assert one_class_metric("cola", labels) == 0.0  # MCC of a constant answer
    assert one_class_metric("mnli", [2, 2, 0]) == pytest.approx(2 / 3)
    assert one_class_metric("sts-b", [1.0, 2.5]) is None


def test_main_metric():
    names = ("cola", "sst-2", "mrpc", "qqp", "sts-b", "rte", "mnli-mm")
    assert [main_metric(name) for name in names] == [
        "mcc", "acc", "f1", "f1", "spearman", "acc", "acc"]
    for name in ("cola", "mrpc", "sts-b", "qnli"):
        assert main_metric(name) in compute_metrics(name, [1, 0, 1], [1, 0, 0])


def test_bad_inputs():
    with pytest.raises(UserError, match="one prediction per labeled example"):
        compute_metrics("sst-2", [1, 0], [1, 0, 1])
    with pytest.raises(UserError, match="no examples"):
        compute_metrics("sst-2", [], [])
