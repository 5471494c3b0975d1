"""Scoring a model's layers on a benchmark, and committing one layer without looking at the test data.

Brain-Score reports a model's best layer, chosen on the very data it is scored on: an optimistic pick.
Here each benchmark's groups (passages, sentences, stories) are split once, by a seeded draw, into a
*selection* part and a *test* part. Every layer is scored on both parts separately (the metric's own
cross-validation runs inside each part); the committed layer is the one that scores best on the selection
part, and the model's benchmark score is that layer's score on the test part, which neither the layer
choice nor any fitted map has seen. Every layer's test score is reported too (its maximum is the
optimistic "best layer" figure Brain-Score publishes, labelled as such).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainalign.benchmarks.metrics import METRICS
from brainalign.errors import ConfigError, InputError

PARTS = ("selection", "test")


def selection_mask(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which presentations belong to the selection part: whole groups, ``fraction`` of them, seeded.

    Parameters
    ----------
    groups : ndarray of shape (n_presentations,)
        Group label of each presentation (passage, sentence, story).
    fraction : float
        Share of the groups used to choose the layer, in (0, 1); both parts keep at least 2 groups.
    seed : int
        Seed of the draw (``numpy.random.default_rng``).

    Returns
    -------
    ndarray of bool, shape (n_presentations,)
    """
    if not 0 < float(fraction) < 1:
        raise ConfigError(f"params.yaml: benchmarks.selection_fraction: expected a number between 0 and 1, "
                          f"found {fraction!r}")
    labels = np.unique(np.asarray(groups))
    if labels.size < 4:
        raise InputError("groups", "groups", "at least 4 groups (2 to choose the layer, 2 to score it)",
                         f"{labels.size}")
    n_selection = int(np.clip(round(fraction * labels.size), 2, labels.size - 2))
    chosen = np.random.default_rng(seed).permutation(labels)[:n_selection]
    return np.isin(np.asarray(groups), chosen)


def benchmark_metric(name: str) -> Callable:
    """The metric ``name``, with group cross-validation at most one fold per group of the data it is given
    (Brain-Score's 10 folds need 10 groups; a part of Blank 2014 has 3 to 5 stories)."""
    metric = METRICS.get(name)
    if name != "ridge_pearsonr":
        return metric

    def adapted(features, responses, *, stimulus_ids=None, groups=None, **options):
        folds = min(10, int(np.unique(np.asarray(groups)).size))
        return metric(features, responses, stimulus_ids=stimulus_ids, groups=groups, n_splits=folds, **options)
    return adapted


@dataclass
class LayerScores:
    """Every layer of one model on one benchmark.

    Attributes
    ----------
    table : DataFrame
        One row per layer and part: ``layer``, ``part`` (selection | test), ``score`` (the metric's score:
        median over neuroids, mean over splits).
    per_neuroid : ndarray of shape (n_layers, n_neuroids)
        The test part's per-neuroid scores (mean over splits), for maps and per-participant summaries.
    committed_layer : int
        The layer with the best selection score (the lowest such layer on a tie).
    """

    table: pd.DataFrame
    per_neuroid: np.ndarray
    committed_layer: int

    def score(self, layer: int | None = None, part: str = "test") -> float:
        """A layer's score on a part (the committed layer by default)."""
        layer = self.committed_layer if layer is None else layer
        rows = self.table[(self.table["layer"] == layer) & (self.table["part"] == part)]
        return float(rows["score"].iloc[0])

    @property
    def best_test_layer(self) -> int:
        """The layer with the best test score: Brain-Score's (optimistic) best layer."""
        test = self.table[self.table["part"] == "test"]
        return int(test.loc[test["score"].idxmax(), "layer"]) if test["score"].notna().any() else -1


def score_layers(activations: np.ndarray, responses: np.ndarray, stimulus_ids: np.ndarray, groups: np.ndarray,
                 metric: Callable, selection: np.ndarray, progress: bool = True, label: str = "") -> LayerScores:
    """Score every layer on the selection and test parts and commit the best selection layer.

    Parameters
    ----------
    activations : ndarray of shape (n_layers, n_presentations, width)
        The model's representation of each presentation at each layer.
    responses : ndarray of shape (n_presentations, n_neuroids)
        The recording.
    stimulus_ids, groups : ndarray of shape (n_presentations,)
        What the metric splits by (:mod:`brainalign.benchmarks.metrics`).
    metric : callable
        ``metric(features, responses, stimulus_ids=..., groups=...)`` returning an object with ``score``
        (float) and ``per_neuroid`` (ndarray), as :data:`brainalign.benchmarks.metrics.METRICS` entries do.
    selection : ndarray of bool, shape (n_presentations,)
        From :func:`selection_mask`.
    """
    activations = np.asarray(activations)
    if activations.ndim != 3 or activations.shape[1] != responses.shape[0]:
        raise InputError("activations", "shape", f"(layers, {responses.shape[0]} presentations, width)",
                         f"{activations.shape}")
    selection = np.asarray(selection, dtype=bool)
    rows, per_neuroid = [], np.full((activations.shape[0], responses.shape[1]), np.nan, dtype=np.float64)
    for layer in tqdm(range(activations.shape[0]), desc=f"layers {label}".strip(), disable=not progress):
        for part, mask in zip(PARTS, (selection, ~selection)):
            result = metric(np.asarray(activations[layer][mask], dtype=np.float64), responses[mask],
                            stimulus_ids=np.asarray(stimulus_ids)[mask], groups=np.asarray(groups)[mask])
            rows.append({"layer": layer, "part": part, "score": float(result.score)})
            if part == "test":
                per_neuroid[layer] = result.per_neuroid
    table = pd.DataFrame(rows)
    chosen = table[table["part"] == "selection"].sort_values(["score", "layer"], ascending=[False, True],
                                                              na_position="last")
    return LayerScores(table=table, per_neuroid=per_neuroid, committed_layer=int(chosen["layer"].iloc[0]))
