"""Encoding results per model and layer: layer curves over chosen channels, best layers, ceiling-normalised scores.

As Brain-Score does: per participant and layer, the held-out Pearson r of each channel (mean over held-out
runs), the median over the benchmark's channels, then the mean over participants; a model's score is its
best layer's; normalised = raw / ceiling (the median ceiling over the same channels), clipped to [0, 1],
the raw value kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainalign.metrics.ceiling import normalise


def channel_r(scores: pd.DataFrame) -> pd.DataFrame:
    """Held-out Pearson r per model, layer, participant and channel, averaged over held-out runs."""
    r = scores[scores["measure"] == "pearson_r"]
    return r.groupby(["model", "feature_space", "layer", "subject", "voxel"], sort=False)["value"].mean().reset_index()


def layer_curves(scores: pd.DataFrame, channels: np.ndarray, n_layers: dict[str, int]) -> pd.DataFrame:
    """Per model and layer: ``median_r`` (mean over participants of the median over ``channels``), its
    standard error over participants, and the layer's relative depth (0 = embeddings, 1 = last layer).

    Parameters
    ----------
    scores : DataFrame
        Encoding rows of the long score table.
    channels : ndarray of int
        The channels the benchmark scores (e.g. the language network's voxels).
    n_layers : dict
        Layers (embeddings included) of each model.
    """
    per_channel = channel_r(scores)
    chosen = per_channel[per_channel["voxel"].isin(set(int(c) for c in channels))]
    medians = chosen.groupby(["model", "feature_space", "layer", "subject"], sort=False)["value"].median().reset_index()
    curves = medians.groupby(["model", "feature_space", "layer"], sort=False)["value"].agg(
        median_r="mean", se=lambda v: float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
        participants="count").reset_index()
    curves["relative_depth"] = [layer / max(n_layers.get(model, 1) - 1, 1)
                                for model, layer in zip(curves["model"], curves["layer"])]
    return curves


def best_layers(curves: pd.DataFrame, ceiling: float | None) -> pd.DataFrame:
    """Per model, its best layer's raw score, the ceiling and the normalised score (NaN without a ceiling)."""
    rows = []
    for (model, space), group in curves.groupby(["model", "feature_space"], sort=False):
        best = group.loc[group["median_r"].idxmax()]
        rows.append({"model": model, "feature_space": space, "best_layer": int(best["layer"]),
                     "relative_depth": float(best["relative_depth"]), "raw": float(best["median_r"]),
                     "ceiling": np.nan if ceiling is None else float(ceiling),
                     "normalised": np.nan if ceiling is None else float(normalise(best["median_r"], ceiling))})
    return pd.DataFrame(rows)
