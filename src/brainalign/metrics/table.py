"""Scoring every fold of a model into one tidy long-format table, and summarising it."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainalign.data.prepared import prepared_subjects, read_prepared
from brainalign.errors import ConfigError, InputError
from brainalign.finetuning.checkpoints import fold_dir, read_predictions, seeds
from brainalign.metrics.kvsk import ANCHORS, draw_kvsk, kvsk_accuracy
from brainalign.metrics.variance import pearson_r, r2_score


def draw_seed(seed: int, subject: str, fold: int) -> list[int]:
    """The seed of one held-out run's draws: the same for every model, so comparisons are paired."""
    return [int(seed), int(fold), zlib.crc32(subject.encode("utf-8"))]


MEASURES = ("accuracy_target", "accuracy_prediction", "r2", "pearson_r")
KEYS = ["dataset", "model", "subject", "fold", "heldout_run", "seed", "voxel"]


def score_model(model: str, model_dir: str | os.PathLike, prepared_dir: str | os.PathLike, k: int = 20,
                n_draws: int = 1000, seed: int = 0, draws: str = "independent", dataset: str = "") -> pd.DataFrame:
    """Per-channel k vs k accuracy (both forms), R² and Pearson r of every participant and held-out run.

    Returns
    -------
    DataFrame in long format: columns ``dataset``, ``model``, ``subject``, ``fold``, ``heldout_run``,
    ``seed``, ``voxel`` (the channel: voxel, region or sensor x bin component), ``measure`` and ``value``;
    one row per participant, fold, seed, channel and measure. The measures (:data:`MEASURES`):
    ``accuracy_target`` and ``accuracy_prediction`` (the k vs k test anchored on the true responses, as
    the seed code, or on the predictions, as the paper's prose; :mod:`brainalign.metrics.kvsk`), ``r2``
    and ``pearson_r``. Participants without predictions are skipped.
    """
    frames = []
    subjects = prepared_subjects(prepared_dir)
    for subject in tqdm(subjects, desc=f"scoring {model} on {dataset or prepared_dir}"):
        data = read_prepared(prepared_dir, subject)
        for fold in data.folds:
            y_true = data.responses[fold.test]
            # The same draws for every seed and model: comparisons are paired.
            targets, distractors = draw_kvsk(len(fold.test), k, n_draws, np.random.default_rng(
                draw_seed(seed, subject, fold.index)), draws=draws)
            for model_seed in seeds(model_dir, subject, fold.index):
                y_pred = read_predictions(fold_dir(model_dir, subject, fold.index, model_seed), *y_true.shape)
                values = {"accuracy_target": kvsk_accuracy(y_true, y_pred, targets, distractors, anchor="target"),
                          "accuracy_prediction": kvsk_accuracy(y_true, y_pred, targets, distractors,
                                                               anchor="prediction"),
                          "r2": r2_score(y_true, y_pred), "pearson_r": pearson_r(y_true, y_pred)}
                n = y_true.shape[1]
                frames.append(pd.DataFrame({
                    "dataset": dataset, "model": model, "subject": subject, "fold": fold.index,
                    "heldout_run": fold.heldout_run, "seed": model_seed, "voxel": np.tile(np.arange(n), len(MEASURES)),
                    "measure": np.repeat(MEASURES, n), "value": np.concatenate([values[m] for m in MEASURES])}))
    if not frames:
        raise InputError(model_dir, "predictions", f"held-out predictions of {model} for {prepared_dir}", "none")
    return pd.concat(frames, ignore_index=True)


def wide_scores(table: pd.DataFrame, anchor: str = "target") -> pd.DataFrame:
    """The long table with one column per measure, plus ``accuracy``: the form ``anchor`` names."""
    if anchor not in ANCHORS:
        raise ConfigError(f"score anchor: expected one of {ANCHORS}, found {anchor!r}")
    missing = {"measure", "value", *KEYS} - set(table.columns)
    if missing:
        raise InputError("score table", "columns", f"{KEYS + ['measure', 'value']}", f"missing {sorted(missing)}")
    wide = table.pivot(index=KEYS, columns="measure", values="value").reset_index()
    wide.columns.name = None
    wide["accuracy"] = wide[f"accuracy_{anchor}"]
    return wide


def voxel_means(table: pd.DataFrame, anchor: str = "target") -> pd.DataFrame:
    """Scores averaged over held-out runs and seeds: one row per dataset, model, participant and channel.

    ``table`` is the long score table; the columns are the measures plus ``accuracy`` (the ``anchor`` form).
    """
    wide = wide_scores(table, anchor)
    measures = ["accuracy", *MEASURES]
    return wide.groupby(["dataset", "model", "subject", "voxel"], sort=False)[measures].mean().reset_index()


def summarise(table: pd.DataFrame, top: int = 1000, anchor: str = "target") -> dict:
    """Metrics per model, dataset and participant: mean accuracy over all channels and the ``top`` best.

    ``accuracy`` is the k vs k form ``anchor`` names; the best channels are chosen by their mean accuracy
    over held-out runs and seeds, as the paper reports them. Returns
    ``{model: {dataset: {subject or "mean": {metric: value}}}}``.
    """
    summary: dict = {}
    for (model, name, subject), group in voxel_means(table, anchor).groupby(["model", "dataset", "subject"],
                                                                             sort=False):
        best = np.sort(group["accuracy"].to_numpy())[::-1][:top]
        summary.setdefault(model, {}).setdefault(name, {})[str(subject)] = {
            "accuracy_mean": float(group["accuracy"].mean()),
            f"accuracy_top{top}": float(best.mean()),
            "accuracy_target_mean": float(group["accuracy_target"].mean()),
            "accuracy_prediction_mean": float(group["accuracy_prediction"].mean()),
            "r2_mean": float(group["r2"].mean()),
            "pearson_r_mean": float(group["pearson_r"].mean()),
        }
    for datasets in summary.values():
        for subjects in datasets.values():
            keys = list(next(iter(subjects.values())))
            subjects["mean"] = {key: float(np.mean([v[key] for v in subjects.values()])) for key in keys}
    return summary


def model_dirs(models_root: str | os.PathLike) -> dict[tuple[str, str], Path]:
    """The trained models under ``data/models/<model>/<dataset>``, by (model, dataset)."""
    root = Path(models_root)
    if not root.exists():
        return {}
    return {(m.name, d.name): d for m in sorted(root.iterdir()) if m.is_dir()
            for d in sorted(m.iterdir()) if d.is_dir() and d.name != "checkpoints"}
