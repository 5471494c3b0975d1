"""Each GLUE task's dev-set metrics, computed with scikit-learn and scipy (no metric scripts from a hub).

Values are on the paper's scale, percentages (x 100), as Table 1 prints them.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from brainalign.nlu.glue import GlueTask

METRIC_NAMES = {"matthews": "Matthews corr.", "accuracy": "accuracy", "f1": "F1", "pearson": "Pearson r",
                "spearman": "Spearman rho"}


def task_metrics(task: GlueTask, labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """The task's metrics of ``predictions`` (class indices, or scores for STS-B) against ``labels``.

    F1 is of the positive class (1: paraphrase, duplicate), as GLUE reports it. A constant prediction
    has an undefined correlation; it is scored 0 (scikit-learn's convention for Matthews), not NaN.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"{task.name}: {labels.shape[0]} labels but {predictions.shape[0]} predictions")
    scores = {}
    for metric in task.metrics:
        if metric == "matthews":
            value = matthews_corrcoef(labels, predictions)
        elif metric == "accuracy":
            value = accuracy_score(labels, predictions)
        elif metric == "f1":
            value = f1_score(labels, predictions, pos_label=1, zero_division=0.0)
        elif metric in ("pearson", "spearman"):
            if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
                value = 0.0
            else:
                value = (pearsonr if metric == "pearson" else spearmanr)(labels, predictions)[0]
        else:
            raise ValueError(f"{task.name}: unknown metric {metric!r}")
        scores[metric] = 100.0 * float(value)
    return scores


def majority_predictions(task: GlueTask, train_labels: np.ndarray, n: int) -> np.ndarray:
    """The baseline that ignores the text: the training set's most frequent class (its mean score, STS-B)."""
    train_labels = np.asarray(train_labels)
    if task.regression:
        return np.full(n, float(train_labels.mean()))
    return np.full(n, int(np.bincount(train_labels, minlength=len(task.labels)).argmax()))
