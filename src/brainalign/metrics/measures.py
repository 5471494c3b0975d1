"""Measures: how ``score.measures`` in params.yaml names what the score table holds for each channel.

A measure is a function ``(y_true, y_pred, draws) -> ndarray of shape (n_channels,)`` on one held-out
run, registered with ``@MEASURES.register(name)``: ``y_true`` and ``y_pred`` are that run's responses and
predictions (examples x channels); ``draws`` are its k vs k targets and distractors
(:func:`brainalign.metrics.kvsk.draw_kvsk`), the same for every model so that comparisons are paired.
Adding a measure is one more decorated function here; one that needs more code goes in a module of its
own, imported here so that the registry is complete whenever it is read.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from brainalign.metrics.kvsk import kvsk_accuracy
from brainalign.metrics.variance import pearson_r, r2_score
from brainalign.registry import Registry

Draws = tuple[np.ndarray, np.ndarray]
Measure = Callable[[np.ndarray, np.ndarray, Draws], np.ndarray]
MEASURES: Registry[Measure] = Registry("measure", "score.measures")


@MEASURES.register("accuracy_target")
def accuracy_target(y_true: np.ndarray, y_pred: np.ndarray, draws: Draws) -> np.ndarray:
    """k vs k accuracy anchored on the true responses (the seed code's form)."""
    return kvsk_accuracy(y_true, y_pred, *draws, anchor="target")


@MEASURES.register("accuracy_prediction")
def accuracy_prediction(y_true: np.ndarray, y_pred: np.ndarray, draws: Draws) -> np.ndarray:
    """k vs k accuracy anchored on the predictions (the paper's prose)."""
    return kvsk_accuracy(y_true, y_pred, *draws, anchor="prediction")


@MEASURES.register("r2")
def r2(y_true: np.ndarray, y_pred: np.ndarray, draws: Draws) -> np.ndarray:
    """Variance explained about the held-out mean."""
    return r2_score(y_true, y_pred)


@MEASURES.register("pearson_r")
def pearson(y_true: np.ndarray, y_pred: np.ndarray, draws: Draws) -> np.ndarray:
    """Pearson correlation of prediction and response."""
    return pearson_r(y_true, y_pred)
