"""Task metrics via scikit-learn and scipy: accuracy, F1, MCC, Pearson, Spearman.

Classification predictions are class ids (argmax of the logits), regression predictions floats.
Degenerate inputs score 0 instead of nan: MCC of constant predictions, F1 with no predicted or true
positives, and Pearson/Spearman when either side is constant (the correlation is undefined there).
"""
import warnings

import numpy as np
from scipy import stats
from sklearn import metrics as sk

from common.errors import UserError
from common.tasks import get_task


def accuracy(predictions, labels):
    return float(sk.accuracy_score(labels, predictions))


def f1(predictions, labels):
    """Binary F1 with class 1 as the positive class."""
    return float(sk.f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0))


def macro_f1(predictions, labels):
    """F1 averaged over the classes, each class weighing the same."""
    return float(sk.f1_score(labels, predictions, average="macro", zero_division=0))


def mcc(predictions, labels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite(sk.matthews_corrcoef(labels, predictions))


def pearson(predictions, labels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite(stats.pearsonr(predictions, labels)[0])


def spearman(predictions, labels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _finite(stats.spearmanr(predictions, labels)[0])


def _finite(value):
    value = float(value)
    return value if np.isfinite(value) else 0.0


COLLAPSE_CAUSES = ("the usual causes: too few epochs or steps, too high a learning rate, or a "
                   "sentence-embedding backbone's [CLS] vector (such a backbone, e.g. MiniLM, "
                   "needs mean pooling)")


def collapse(task, predictions):
    """{"prediction": "class X" or "the same score S", "examples": n, "task": name} when every
    example gets the same class (regression: the same score, within 1e-6), else None. A
    checkpoint's sidecar records it as `training.collapsed` (see common.validation)."""
    task = get_task(task)
    predictions = np.asarray(predictions)
    if len(predictions) < 2:
        return None
    if task.is_regression:
        if np.ptp(predictions.astype(np.float64)) > 1e-6:
            return None
        prediction = f"the same score {float(predictions[0]):.4g}"
    else:
        if (predictions != predictions[0]).any():
            return None
        prediction = f"class {task.labels[int(predictions[0])]}"
    return {"prediction": prediction, "examples": int(len(predictions)), "task": task.glue_name}


def collapse_warning(collapsed, what="the classifier"):
    """The one warning line for a `collapse` record."""
    return (f"warning: {what} predicts {collapsed['prediction']} for all {collapsed['examples']} "
            f"{collapsed['task']} examples; it reads nothing from the input ({COLLAPSE_CAUSES})")


def one_class_metric(task, labels):
    """The task's metric of the best constant answer (every example given the same class, the
    best of the classes), the level at which a classifier reads nothing from its input; None for
    a regression task."""
    task = get_task(task)
    if task.is_regression:
        return None
    labels = np.asarray(labels)
    return max(compute_metrics(task, np.full_like(labels, label), labels)[task.metric]
               for label in range(len(task.labels)))


def main_metric(task):
    """Key of the metric used for model selection ('mcc', 'acc', 'f1' or 'spearman')."""
    return get_task(task).metric


def compute_metrics(task, predictions, labels):
    """The task's metrics plus 'glue_score' (the GLUE leaderboard's combined score for the task)."""
    task = get_task(task)
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise UserError(f"{task.glue_name}: {predictions.shape} predictions for {labels.shape} "
                        "labels; pass one prediction per labeled example")
    if not len(labels):
        raise UserError(f"{task.glue_name}: no examples to score; check the evaluation data")
    if task.is_regression:
        result = {"pearson": pearson(predictions, labels),
                  "spearman": spearman(predictions, labels)}
        result["corr"] = result["glue_score"] = (result["pearson"] + result["spearman"]) / 2
    elif task.metric == "mcc":
        result = {"mcc": mcc(predictions, labels)}
        result["glue_score"] = result["mcc"]
    elif task.metric == "f1":
        result = {"acc": accuracy(predictions, labels), "f1": f1(predictions, labels)}
        result["acc_and_f1"] = result["glue_score"] = (result["acc"] + result["f1"]) / 2
    elif task.metric == "macro_f1":
        result = {"acc": accuracy(predictions, labels), "macro_f1": macro_f1(predictions, labels)}
        result["glue_score"] = result["macro_f1"]
    else:
        result = {"acc": accuracy(predictions, labels)}
        result["glue_score"] = result["acc"]
    for name in task.reported:
        result.setdefault(name, BY_NAME[name](predictions, labels))
    return result


BY_NAME = {"acc": accuracy, "f1": f1, "macro_f1": macro_f1, "mcc": mcc, "pearson": pearson,
           "spearman": spearman}
