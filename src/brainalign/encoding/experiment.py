"""An encoding experiment on one participant: every layer of a feature model, fitted, held out and scored.

Per layer: the design matrix (:mod:`brainalign.encoding.design`), leave-one-run-out ridge
(:mod:`brainalign.ridge`), and per held-out run the score table's measures
(:mod:`brainalign.metrics.measures`: Pearson r, R², 20 vs 20 accuracy on the same draws as the brain
models, so the two sit in one table and compare paired). Each channel is also tested against a
circular-shift null of its held-out Pearson r (pooled over runs, as
:func:`brainalign.metrics.comparisons.predictable_voxels` does), for maps that show only what beats chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainalign.data.prepared import PreparedSubject
from brainalign.encoding.design import design_matrix
from brainalign.ridge import ALPHAS, cv_predictions
from brainalign.errors import ConfigError
from brainalign.metrics.comparisons import predictable_voxels
from brainalign.metrics.kvsk import draw_kvsk
from brainalign.metrics.measures import MEASURES
from brainalign.metrics.table import draw_seed
from brainalign.metrics.variance import pearson_r

#: The measures an encoding model is scored with, as the score table names them.
ENCODING_MEASURES = ("pearson_r", "r2", "accuracy_target")
MIN_SHIFT = 10  # TRs: beyond the haemodynamic response's reach (20 s at a TR of 2 s)


@dataclass
class EncodingSettings:
    """How features become predictions and scores (params.yaml's ``encoding`` and ``score`` sections)."""

    delays: tuple[int, ...] = (1, 2, 3, 4)
    downsample: str = "sum"
    alphas: np.ndarray = field(default_factory=lambda: ALPHAS.copy())
    measures: tuple[str, ...] = ENCODING_MEASURES
    k: int = 20
    n_draws: int = 1000
    score_seed: int = 0
    draws: str = "independent"
    n_shifts: int = 10
    q: float = 0.05
    tr: float | None = None
    banded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.measures:
            MEASURES.get(name)
        if self.n_shifts < 2:
            raise ConfigError(f"params.yaml: encoding.n_shifts: expected at least 2, found {self.n_shifts}")


def shift_null_r(y_true: np.ndarray, y_pred: np.ndarray, n_shifts: int, min_shift: int = MIN_SHIFT) -> np.ndarray:
    """Held-out Pearson r per channel with the predictions circularly shifted in time: (n_shifts, n_channels).

    A shift keeps both series' autocorrelation and breaks their alignment (as
    :func:`brainalign.metrics.kvsk.kvsk_shift_null` does for the k vs k accuracy); ``n_shifts`` shifts evenly
    spaced over ``[min_shift, n - min_shift]``.
    """
    n = y_true.shape[0]
    low = min(min_shift, max(1, n // 4))
    shifts = np.unique(np.linspace(low, n - low, n_shifts).round().astype(int))
    return np.stack([pearson_r(y_true, np.roll(y_pred, int(s), axis=0)) for s in shifts])


def layer_scores(subject: PreparedSubject, predictions: np.ndarray, settings: EncodingSettings
                 ) -> tuple[dict[str, list[np.ndarray]], pd.DataFrame]:
    """Per held-out run, each measure of each channel; and each channel's shift-null test (z, p, significant)."""
    values: dict[str, list[np.ndarray]] = {name: [] for name in settings.measures}
    observed, nulls = [], []
    for fold in subject.folds:
        y_true, y_pred = subject.responses[fold.test], predictions[fold.test]
        draws = draw_kvsk(len(fold.test), settings.k, settings.n_draws,
                          np.random.default_rng(draw_seed(settings.score_seed, subject.subject, fold.index)),
                          draws=settings.draws)
        for name in settings.measures:
            values[name].append(np.asarray(MEASURES.get(name)(y_true, y_pred, draws), dtype=np.float64))
        observed.append(np.nan_to_num(pearson_r(y_true, y_pred)))
        nulls.append(np.nan_to_num(shift_null_r(y_true, y_pred, settings.n_shifts)))
    test = predictable_voxels(np.stack(observed), nulls, q=settings.q).rename(columns={"predictable": "significant"})
    return values, test


def encode_layers(subject: PreparedSubject, features: np.ndarray, model: str, settings: EncodingSettings,
                  dataset: str = "", feature_space: str = "contextual", seed: int = 0,
                  progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit, hold out and score every layer of one feature model on one participant.

    Parameters
    ----------
    subject : PreparedSubject
        With its ``words`` (and ``trs``, fMRI): :func:`brainalign.data.prepared.read_prepared`.
    features : ndarray of shape (n_layers, n_words, width)
        :func:`brainalign.features.layers.extract_features`, or one layer of a low-level space.
    model : str
        The score table's ``model``.
    feature_space : str
        The score table's ``feature_space`` (``contextual``, ``random``, ``low_level``).
    seed : int
        The score table's ``seed`` (the feature model's initialisation).

    Returns
    -------
    scores : DataFrame
        The long score table's rows: ``dataset, model, subject, fold, heldout_run, seed, voxel, measure,
        value, layer, feature_space``.
    significance : DataFrame
        Per layer and channel: ``layer, voxel, z, p, significant`` (BH at ``settings.q`` within the layer).
    """
    runs = subject.examples["run"].to_numpy()
    n_channels = subject.responses.shape[1]
    frames, tests = [], []
    for layer in tqdm(range(features.shape[0]), desc=f"encoding {model} (participant {subject.subject})",
                      disable=not progress):
        x = design_matrix(np.asarray(features[layer]), subject, settings.tr, settings.delays, settings.downsample,
                          source=model)
        fitted = cv_predictions(x, subject.responses, runs, settings.alphas)
        values, test = layer_scores(subject, fitted.predictions, settings)
        for name, per_fold in values.items():
            for fold, value in zip(subject.folds, per_fold):
                frames.append(pd.DataFrame({
                    "dataset": dataset, "model": model, "subject": subject.subject, "fold": fold.index,
                    "heldout_run": fold.heldout_run, "seed": seed, "voxel": np.arange(n_channels),
                    "measure": name, "value": value, "layer": layer, "feature_space": feature_space}))
        tests.append(test.assign(layer=layer))
    scores = pd.concat(frames, ignore_index=True)
    if settings.banded and feature_space == "contextual":
        scores = pd.concat([scores, banded_scores(subject, features, model, scores, settings, dataset, seed)],
                           ignore_index=True)
    return scores, pd.concat(tests, ignore_index=True)


def banded_scores(subject: PreparedSubject, features: np.ndarray, model: str, scores: pd.DataFrame,
                  settings: EncodingSettings, dataset: str = "", seed: int = 0) -> pd.DataFrame:
    """Banded ridge over the low-level spaces ``settings.banded`` and the model's best layer (by mean held-out
    r): per held-out run, each space's split R² (himalaya's ``r2_score_split``, measure ``r2_split``) and the
    joint model's Pearson r; the rows' model is ``<model>+<space>+...``, their feature space each space's name.
    """
    from himalaya.scoring import r2_score_split

    from brainalign.ridge import banded_predictions

    r = scores[scores["measure"] == "pearson_r"].groupby("layer")["value"].mean().fillna(-np.inf)
    best = int(r.idxmax())
    low = low_level_spaces(subject, list(settings.banded))
    names = [*settings.banded, model]
    spaces = [design_matrix(low[n][0], subject, settings.tr, settings.delays, settings.downsample, source=n)
              for n in settings.banded]
    spaces.append(design_matrix(np.asarray(features[best]), subject, settings.tr, settings.delays,
                                settings.downsample, source=model))
    fitted = banded_predictions(spaces, subject.responses, subject.examples["run"].to_numpy(), settings.alphas)
    joint, rows = "+".join(names), []
    n = subject.responses.shape[1]
    for fold in subject.folds:
        y = subject.responses[fold.test] - subject.responses[fold.test].mean(0)
        split = np.asarray(r2_score_split(y, fitted.split[:, fold.test]))
        parts = [(name, "r2_split", split[i], best if name == model else 0) for i, name in enumerate(names)]
        parts.append(("banded", "pearson_r", pearson_r(subject.responses[fold.test], fitted.predictions[fold.test]),
                      best))
        for space, measure, value, layer in parts:
            rows.append(pd.DataFrame({"dataset": dataset, "model": joint, "subject": subject.subject, "fold": fold.index,
                                      "heldout_run": fold.heldout_run, "seed": seed, "voxel": np.arange(n),
                                      "measure": measure, "value": value, "layer": layer, "feature_space": space}))
    return pd.concat(rows, ignore_index=True)


def usable_low_level(modality: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """The low-level spaces that vary across a modality's rows: MEG rows are single words, so their word
    rate is the constant 1 and says nothing."""
    return [n for n in names if not (modality == "meg" and n == "word_rate")]


def low_level_spaces(subject: PreparedSubject, names: list[str] | tuple[str, ...]) -> Mapping[str, np.ndarray]:
    """The requested low-level spaces of the participant's story, each as one layer (1, n_words, width)."""
    from brainalign.encoding.timing import low_level_features

    available = low_level_features(subject.words["word"].astype(str).tolist())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"params.yaml: encoding.low_level: expected names among {sorted(available)}, "
                          f"found {unknown}")
    return {name: available[name][None] for name in names}
