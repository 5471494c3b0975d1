"""Scoring every fold of a model into one tidy long-format table, and summarising it."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainalign.config.params import section
from brainalign.data.prepared import prepared_subjects, read_prepared
from brainalign.errors import ConfigError, InputError
from brainalign.finetuning.checkpoints import fold_dir, read_predictions, seeds
from brainalign.metrics.kvsk import ANCHORS, DRAWS, draw_kvsk
from brainalign.metrics.measures import MEASURES


def draw_seed(seed: int, subject: str, fold: int) -> list[int]:
    """The seed of one held-out run's draws: the same for every model, so comparisons are paired."""
    return [int(seed), int(fold), zlib.crc32(subject.encode("utf-8"))]


DEFAULT_MEASURES = ("accuracy_target", "accuracy_prediction", "r2", "pearson_r")
KEYS = ["dataset", "model", "subject", "fold", "heldout_run", "seed", "voxel"]
# Encoding models add which layer and feature space a row scores; the brain models read the last layer's
# [CLS] (layer -1, feature space "cls"), so both kinds sit in one table.
LAYER_KEYS = ["layer", "feature_space"]
HEAD_LAYER, HEAD_SPACE = -1, "cls"


def with_layer_keys(table: pd.DataFrame) -> pd.DataFrame:
    """Brain-model rows with the layer keys of the one score table (the last layer's [CLS])."""
    return table.assign(layer=HEAD_LAYER, feature_space=HEAD_SPACE)


def read_brain_model_rows(path: str | os.PathLike) -> pd.DataFrame:
    """The brain models' rows of the score table file, read without the encoding models' (many more) rows."""
    import pyarrow.parquet as pq

    if "feature_space" not in pq.read_schema(path).names:
        return pd.read_parquet(path)
    return pd.read_parquet(path, filters=[("feature_space", "==", HEAD_SPACE)])


def brain_model_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the brain models (the seed paper's heads on [CLS]), without the encoding models'."""
    if "feature_space" not in table.columns:
        return table
    return table[table["feature_space"] == HEAD_SPACE].reset_index(drop=True)
SETTINGS = ("k", "n_draws", "seed", "anchor", "draws", "top_voxels", "measures")


def score_settings(params: dict) -> dict:
    """params.yaml's ``score`` section, checked: the k vs k form and draws, and the measures (each a name in
    :data:`~brainalign.metrics.measures.MEASURES`, the ``anchor``'s form among them)."""
    settings = section(params, "score", list(SETTINGS))
    if settings["anchor"] not in ANCHORS:
        raise ConfigError(f"params.yaml: score.anchor: expected one of {ANCHORS}, found {settings['anchor']!r}")
    if settings["draws"] not in DRAWS:
        raise ConfigError(f"params.yaml: score.draws: expected one of {DRAWS}, found {settings['draws']!r}")
    measures = settings["measures"]
    if not isinstance(measures, list) or not measures or len(set(map(str, measures))) != len(measures):
        raise ConfigError(f"params.yaml: score.measures: expected a list of distinct measures among "
                          f"{', '.join(MEASURES.names())}, found {measures!r}")
    for name in measures:
        MEASURES.get(name)
    if f"accuracy_{settings['anchor']}" not in measures:
        raise ConfigError(f"params.yaml: score.measures: expected accuracy_{settings['anchor']} among them "
                          f"(score.anchor is {settings['anchor']!r}), found {measures!r}")
    return settings


def score_model(model: str, model_dir: str | os.PathLike, prepared_dir: str | os.PathLike, k: int = 20,
                n_draws: int = 1000, seed: int = 0, draws: str = "independent", dataset: str = "",
                measures: tuple[str, ...] | list[str] = DEFAULT_MEASURES) -> pd.DataFrame:
    """Per-channel ``measures`` (by default k vs k accuracy in both forms, R² and Pearson r) of every
    participant and held-out run.

    Returns
    -------
    DataFrame in long format: columns ``dataset``, ``model``, ``subject``, ``fold``, ``heldout_run``,
    ``seed``, ``voxel`` (the channel: voxel, region or sensor x bin component), ``measure`` and ``value``;
    one row per participant, fold, seed, channel and measure, in the order of ``measures``
    (:mod:`brainalign.metrics.measures`): ``accuracy_target`` and ``accuracy_prediction`` (the k vs k test
    anchored on the true responses, as the seed code, or on the predictions, as the paper's prose), ``r2``
    and ``pearson_r``. Participants without predictions are skipped.
    """
    functions = {name: MEASURES.get(name) for name in measures}
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
                values = [function(y_true, y_pred, (targets, distractors)) for function in functions.values()]
                n = y_true.shape[1]
                frames.append(pd.DataFrame({
                    "dataset": dataset, "model": model, "subject": subject, "fold": fold.index,
                    "heldout_run": fold.heldout_run, "seed": model_seed, "voxel": np.tile(np.arange(n), len(functions)),
                    "measure": np.repeat(list(functions), n), "value": np.concatenate(values)}))
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
    if f"accuracy_{anchor}" not in set(table["measure"]):
        raise InputError("score table", "measure", f"accuracy_{anchor} (score.anchor is {anchor!r})",
                         f"measures {sorted(set(table['measure']))}")
    keys = KEYS + [k for k in LAYER_KEYS if k in table.columns]
    wide = table.pivot(index=keys, columns="measure", values="value").reset_index()
    wide.columns.name = None
    wide["accuracy"] = wide[f"accuracy_{anchor}"]
    return wide


def measures_of(table: pd.DataFrame) -> list[str]:
    """The measures a long score table holds, in the order they were scored."""
    return list(dict.fromkeys(table["measure"]))


def voxel_means(table: pd.DataFrame, anchor: str = "target") -> pd.DataFrame:
    """Scores averaged over held-out runs and seeds: one row per dataset, model, participant and channel.

    ``table`` is the long score table; the columns are the measures plus ``accuracy`` (the ``anchor`` form).
    """
    wide = wide_scores(table, anchor)
    measures = ["accuracy", *measures_of(table)]
    return wide.groupby(["dataset", "model", "subject", "voxel"], sort=False)[measures].mean().reset_index()


def summarise(table: pd.DataFrame, top: int = 1000, anchor: str = "target") -> dict:
    """Metrics per model, dataset and participant: mean accuracy over all channels and the ``top`` best.

    ``accuracy`` is the k vs k form ``anchor`` names; the best channels are chosen by their mean accuracy
    over held-out runs and seeds, as the paper reports them. Returns
    ``{model: {dataset: {subject or "mean": {metric: value}}}}``.
    """
    summary: dict = {}
    measures = measures_of(table)
    for (model, name, subject), group in voxel_means(table, anchor).groupby(["model", "dataset", "subject"],
                                                                             sort=False):
        best = np.sort(group["accuracy"].to_numpy())[::-1][:top]
        summary.setdefault(model, {}).setdefault(name, {})[str(subject)] = {
            "accuracy_mean": float(group["accuracy"].mean()),
            f"accuracy_top{top}": float(best.mean()),
            **{f"{measure}_mean": float(group[measure].mean()) for measure in measures},
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
