"""Scoring every fold of a model into one tidy table, and summarising it."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainalign.checkpoints import fold_dir, read_predictions, seeds
from brainalign.errors import InputError
from brainalign.prepared import prepared_subjects, read_prepared
from brainalign.scoring.kvsk import draw_kvsk, kvsk_accuracy
from brainalign.scoring.variance import pearson_r, r2_score


def draw_seed(seed: int, subject: str, fold: int) -> list[int]:
    """The seed of one held-out run's draws: the same for every model, so comparisons are paired."""
    return [int(seed), int(fold), zlib.crc32(subject.encode("utf-8"))]


def score_model(model: str, model_dir: str | os.PathLike, prepared_dir: str | os.PathLike, k: int = 20,
                n_draws: int = 1000, seed: int = 0, anchor: str = "target",
                draws: str = "independent", dataset: str = "") -> pd.DataFrame:
    """Per-channel k vs k accuracy, R² and Pearson r of every participant and held-out run of a dataset.

    Returns
    -------
    DataFrame with columns ``dataset``, ``model``, ``subject``, ``fold``, ``heldout_run``, ``seed``,
    ``voxel`` (the channel: voxel, region or sensor x bin component), ``accuracy``, ``r2``, ``pearson_r``
    (one row per participant, fold, seed and channel). Participants without predictions are skipped.
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
                frames.append(pd.DataFrame({
                    "dataset": dataset, "model": model, "subject": subject, "fold": fold.index,
                    "heldout_run": fold.heldout_run, "seed": model_seed, "voxel": np.arange(y_true.shape[1]),
                    "accuracy": kvsk_accuracy(y_true, y_pred, targets, distractors, anchor=anchor),
                    "r2": r2_score(y_true, y_pred), "pearson_r": pearson_r(y_true, y_pred)}))
    if not frames:
        raise InputError(model_dir, "predictions", f"held-out predictions of {model} for {prepared_dir}", "none")
    return pd.concat(frames, ignore_index=True)


def voxel_means(table: pd.DataFrame) -> pd.DataFrame:
    """Scores averaged over held-out runs and seeds: one row per dataset, model, participant and channel."""
    return (table.groupby(["dataset", "model", "subject", "voxel"], sort=False)[["accuracy", "r2", "pearson_r"]]
            .mean().reset_index())


def summarise(table: pd.DataFrame, top: int = 1000) -> dict:
    """Metrics per model, dataset and participant: mean accuracy over all channels and the ``top`` best.

    The best channels are chosen by their mean accuracy over held-out runs, as the paper reports them.
    Returns ``{model: {dataset: {subject or "mean": {metric: value}}}}``.
    """
    summary: dict = {}
    for (model, name, subject), group in voxel_means(table).groupby(["model", "dataset", "subject"], sort=False):
        best = np.sort(group["accuracy"].to_numpy())[::-1][:top]
        summary.setdefault(model, {}).setdefault(name, {})[str(subject)] = {
            "accuracy_mean": float(group["accuracy"].mean()),
            f"accuracy_top{top}": float(best.mean()),
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
