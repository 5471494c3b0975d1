"""The analyses a finished experiment's report shows, from its score table and model outputs.

- paired model comparisons (paper Figures 2 and 3): per participant, per-voxel accuracies of two models
  for each initialisation they share, their comparison curves, a related-samples t-test per voxel with
  Benjamini-Hochberg FDR (on the voxels the models predict above chance: :func:`chance_screen`), and a
  paired test across participants;
- which voxels a model predicts above chance (:func:`above_chance`, a circular-shift null with BH FDR):
  the voxels its accuracy maps show;
- attention from ``[CLS]`` (Figure 4): the base encoder against each fine-tuned encoder, on the held-out
  windows of the run that encoder never trained on;
- which examples changed: per example, the percent change of the prediction-to-target distance after
  fine-tuning, and the prevalence of word features in changed against unchanged examples.

The numerics live in :mod:`brainalign.metrics.comparisons`, :mod:`brainalign.features.attention` and
:mod:`brainalign.metrics.changes`; this module gathers their inputs from the pipeline's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainalign.data.prepared import prepared_subjects, read_prepared
from brainalign.errors import InputError
from brainalign.features.attention import attention_summary, cls_attention, encoder_from_weights
from brainalign.features.encoders import load_encoder
from brainalign.finetuning.checkpoints import fold_dir, model_cards, read_predictions, seeds
from brainalign.metrics.changes import (
    changed_mask,
    feature_prevalence,
    percent_change,
    read_feature_table,
    window_features,
)
from brainalign.metrics.comparisons import comparison_curves, participant_test, predictable_voxels, voxel_ttest
from brainalign.metrics.kvsk import draw_kvsk, kvsk_shift_null
from brainalign.metrics.table import draw_seed
from brainalign.stimuli.tokens import read_tokens


def seed_means(wide: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per dataset, model, participant, seed and channel, averaged over held-out runs."""
    return wide.groupby(["dataset", "model", "subject", "seed", "voxel"], sort=False)["accuracy"].mean().reset_index()


def seed_matrix(means: pd.DataFrame, dataset: str, model: str, subject: str, seeds: list[int]) -> np.ndarray:
    """(n_seeds, n_channels) accuracies of one model and participant, rows in ``seeds`` order."""
    rows = means[(means["dataset"] == dataset) & (means["model"] == model) & (means["subject"] == subject)]
    matrix = rows.pivot(index="seed", columns="voxel", values="accuracy")
    return matrix.loc[seeds].to_numpy(dtype=np.float64)


@dataclass
class PairComparison:
    """Two models compared on one dataset: B minus A, per participant, paired by initialisation."""

    dataset: str
    model_a: str
    model_b: str
    seeds: dict[str, list[int]]
    curves: dict[str, np.ndarray]
    tests: dict[str, pd.DataFrame | None]
    mean_difference: dict[str, float]
    across_participants: dict


#: Circular shifts per held-out run of the chance tests (:func:`above_chance`): pooled over voxels, ten are plenty.
N_SHIFTS = 10


@dataclass
class ChanceTest:
    """Per voxel, one participant's accuracy against its circular-shift null (:func:`above_chance`).

    ``table``: :func:`brainalign.metrics.comparisons.predictable_voxels` (``voxel``, ``z``, ``p``,
    ``predictable``); ``n_runs``: the held-out runs it pools; ``n_shifts``: the shifts of the run with fewest.
    """

    table: pd.DataFrame
    n_runs: int
    n_shifts: int

    @property
    def passes(self) -> np.ndarray:
        """Boolean mask over channels: the voxels above chance at the test's FDR."""
        return self.table["predictable"].to_numpy()


def above_chance(wide: pd.DataFrame, dataset: str, models: Sequence[str], subject: str, seeds: list[int],
                 models_root: str | os.PathLike, prepared_dir: str | os.PathLike, scoring: dict, q: float,
                 n_shifts: int = N_SHIFTS) -> ChanceTest:
    """Which voxels one model (or the mean of several) predicts above chance, from every held-out run scored.

    ``models`` are read from ``models_root/<model>/<dataset>`` (their predictions) and from ``wide`` (their
    scores); one model tests that model's map, two the voxels a comparison tests (:func:`chance_screen`).
    Per held-out run on which every model was scored with every seed of ``seeds``: the observed statistic
    is the accuracy averaged over ``models`` and ``seeds`` (from the score table, so it is the accuracy the
    maps show and the t-test compares); its chance distribution comes from ``n_shifts`` circular shifts of
    the first seed's predictions of every model, drawn with the score stage's draws (``scoring``: its ``k``,
    ``n_draws``, ``seed``, ``draws`` and ``anchor``). Other seeds are highly correlated with the first, and
    the variance of a mean is at most the mean of the variances, so the null of one seed bounds that of the
    seed average from above: the test errs conservative, and costs one seed's shifts whatever the seeds.
    Runs combine as a z-score that allows for their correlation (each run's model trained on the others),
    one-sided, Benjamini-Hochberg at ``q`` over voxels (:func:`brainalign.metrics.comparisons.predictable_voxels`).
    """
    models = list(models)
    if not models or not seeds:
        raise InputError(str(models_root), "models", "at least one model and one seed", f"{models}, seeds {seeds}")
    data = read_prepared(prepared_dir, subject)
    rows = wide[(wide["dataset"] == dataset) & (wide["subject"] == subject) & wide["model"].isin(models)
                & wide["seed"].isin(seeds)]
    observed, nulls = [], []
    for fold in data.folds:
        scored = rows[rows["fold"] == fold.index]
        if scored.groupby("model")["seed"].nunique().reindex(models).fillna(0).min() < len(seeds):
            continue  # a run one of the models was not scored on with every seed
        observed.append(scored.groupby("voxel")["accuracy"].mean().sort_index().to_numpy())
        y_true = data.responses[fold.test]
        targets, distractors = draw_kvsk(len(fold.test), int(scoring["k"]), int(scoring["n_draws"]),
                                         np.random.default_rng(draw_seed(scoring["seed"], subject, fold.index)),
                                         draws=scoring["draws"])
        predictions = [read_predictions(fold_dir(Path(models_root) / model / dataset, subject, fold.index, seeds[0]),
                                        *y_true.shape) for model in models]
        nulls.append(kvsk_shift_null(y_true, predictions, targets, distractors, n_shifts=n_shifts,
                                     anchor=scoring["anchor"]))
    if not observed:
        raise InputError(str(models_root), "predictions", f"held-out runs of participant {subject} scored for "
                         f"{' and '.join(models)} with seeds {seeds}", "none")
    return ChanceTest(predictable_voxels(np.array(observed), nulls, q), len(observed), min(len(n) for n in nulls))


def chance_screen(wide: pd.DataFrame, dataset: str, models: tuple[str, str], subject: str, seeds: list[int],
                  models_root: str | os.PathLike, prepared_dir: str | os.PathLike, scoring: dict, q: float,
                  n_shifts: int = N_SHIFTS) -> np.ndarray:
    """The voxels two models predict above chance: :func:`above_chance` of the pair's mean accuracy.

    Returns a boolean mask over channels, the voxels a comparison's t-test tests.
    """
    return above_chance(wide, dataset, models, subject, seeds, models_root, prepared_dir, scoring, q,
                        n_shifts=n_shifts).passes


def compare_pair(means: pd.DataFrame, dataset: str, model_a: str, model_b: str, q: float = 0.01,
                 screen: Callable[[str, list[int]], np.ndarray] | None = None) -> PairComparison:
    """Compare ``model_b`` against ``model_a`` for every participant both predict.

    Per participant the two models are paired by the initialisations (seeds) both have. The voxel t-test
    needs at least 3 shared seeds (with 2 a t-test has one degree of freedom and FDR finds nothing);
    with fewer, ``tests[subject]`` is None. ``screen(subject, seeds)``, when given, returns the voxels the
    t-test tests (:func:`chance_screen`); without it every voxel is tested, as in the seed paper.
    """
    data = means[means["dataset"] == dataset]
    subjects_a = set(data.loc[data["model"] == model_a, "subject"])
    subjects_b = set(data.loc[data["model"] == model_b, "subject"])
    subjects = [s for s in dict.fromkeys(data["subject"]) if s in subjects_a and s in subjects_b]
    if not subjects:
        raise InputError("data/scores/scores.parquet", "model", f"participants of {dataset} scored for both "
                         f"{model_a} and {model_b}", "none in common")
    seeds, curves, tests, differences = {}, {}, {}, {}
    for subject in subjects:
        have_a = set(data.loc[(data["model"] == model_a) & (data["subject"] == subject), "seed"])
        have_b = set(data.loc[(data["model"] == model_b) & (data["subject"] == subject), "seed"])
        shared = sorted(have_a & have_b)
        if not shared:
            continue
        a = seed_matrix(data, dataset, model_a, subject, shared)
        b = seed_matrix(data, dataset, model_b, subject, shared)
        seeds[subject] = shared
        curves[subject] = comparison_curves(a, b)
        if len(shared) >= 3:
            tests[subject] = voxel_ttest(a, b, q=q, tested=screen(subject, shared) if screen else None)
        else:
            tests[subject] = None
        differences[subject] = float(np.nanmean(b - a))
    return PairComparison(dataset, model_a, model_b, seeds, curves, tests, differences,
                          participant_test(differences) if len(differences) >= 2 else {})


def attention_by_model(model_dir: str | os.PathLike, prepared_root: str | os.PathLike,
                       features_root: str | os.PathLike, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``[CLS]`` attention summaries of the base encoder and of a fine-tuned model's encoders.

    Every exported checkpoint of ``model_dir`` that trained its encoder is read (safetensors only) and run
    on the held-out windows of its participant's held-out run: text that encoder never trained on. The
    base encoder runs on the same windows. Presentations pool over participants and held-out runs; the
    fine-tuned summary's standard error also spans initialisations (seeds). The base encoder is the same
    for every seed, so it counts once.
    """
    cards = [c for c in model_cards(model_dir) if c.get("encoder_trained") and c.get("encoder_weights")]
    if not cards:
        raise InputError(Path(model_dir) / "checkpoints", "encoder_weights", "checkpoints of fine-tuned encoders",
                         "none")
    base_spec = cards[0]["encoder"]
    base = load_encoder(base_spec["name"], untrained=bool(base_spec.get("untrained")), seed=int(base_spec.get("seed", 0)))
    base_maps, tuned_maps = {}, {}
    tokens_cache: dict[str, object] = {}
    for card in tqdm(cards, desc="attention of fine-tuned encoders", disable=not progress):
        if card["encoder"] != base_spec:
            raise InputError(card["path"], "encoder", f"one base encoder for all checkpoints ({base_spec})",
                             f"{card['encoder']}")
        for participant in card["participants"]:
            dataset, subject = participant["dataset"], str(participant["subject"])
            if dataset not in tokens_cache:
                tokens_cache[dataset] = read_tokens(Path(features_root) / dataset / "tokens.npz")
            data = read_prepared(Path(prepared_root) / dataset, subject)
            fold = next(f for f in data.folds if f.heldout_run == card["heldout_run"])
            windows = np.load(Path(features_root) / dataset / f"{subject}.windows.npy", allow_pickle=False)
            rows = windows[fold.test]
            key = (dataset, subject, card["heldout_run"])
            if key not in base_maps:
                base_maps[key] = cls_attention(base, tokens_cache[dataset], rows)
            tuned = encoder_from_weights(Path(model_dir) / card["encoder_weights"], base)
            tuned_maps.setdefault(int(card["seed"]), []).append(cls_attention(tuned, tokens_cache[dataset], rows))
    vanilla = attention_summary({0: np.concatenate(list(base_maps.values()), axis=2)})
    tuned = attention_summary({seed: np.concatenate(maps, axis=2) for seed, maps in tuned_maps.items()})
    return vanilla, tuned


def changed_examples(before_dir: str | os.PathLike, after_dir: str | os.PathLike, prepared_dir: str | os.PathLike,
                     threshold: float = 10.0, features: str | os.PathLike | None = None,
                     n_boot: int = 100, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Which held-out examples a model's predictions changed on, and the word features of those examples.

    Per participant, example and initialisation: the percent change of the Euclidean prediction-to-target
    distance from ``before_dir``'s model to ``after_dir``'s (paired by seed), averaged over seeds. Every
    example is held out in exactly one run, so each gets one value per participant. ``features``: a CSV of
    word features per example (real data); by default the features the windows' words give
    (:func:`brainalign.metrics.changes.window_features`).

    Returns
    -------
    changes : DataFrame
        ``subject``, ``example``, ``heldout_run``, ``percent_change``, ``changed``.
    prevalence : DataFrame
        :func:`brainalign.metrics.changes.feature_prevalence` over every participant's examples.
    """
    rows, feature_rows = [], []
    for subject in prepared_subjects(prepared_dir):
        data = read_prepared(prepared_dir, subject)
        table = (read_feature_table(features, len(data.examples)) if features is not None
                 else window_features(data.examples).reset_index(drop=True))
        for fold in data.folds:
            shared = sorted(set(seeds(before_dir, subject, fold.index)) & set(seeds(after_dir, subject, fold.index)))
            if not shared:
                continue
            y_true = data.responses[fold.test]
            change = np.mean([percent_change(
                y_true, read_predictions(fold_dir(before_dir, subject, fold.index, s), *y_true.shape),
                read_predictions(fold_dir(after_dir, subject, fold.index, s), *y_true.shape)) for s in shared], axis=0)
            rows.append(pd.DataFrame({"subject": subject, "example": fold.test, "heldout_run": fold.heldout_run,
                                      "percent_change": change, "changed": changed_mask(change, threshold)}))
            feature_rows.append(table.iloc[fold.test].reset_index(drop=True))
    if not rows:
        raise InputError(after_dir, "predictions", f"held-out predictions paired by seed with {before_dir}", "none")
    changes = pd.concat(rows, ignore_index=True)
    prevalence = feature_prevalence(pd.concat(feature_rows, ignore_index=True), changes["changed"].to_numpy(),
                                    n_boot=n_boot, rng=np.random.default_rng(seed))
    return changes, prevalence
