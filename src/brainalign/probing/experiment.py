"""The probing experiment of the pipeline: its plan, its tasks and its tables.

``probe`` scores ridge probes from every layer of the encoder to every feature of the story's segments (one
task per representation kind); ``frem`` decodes each chosen feature from each chosen region of each
participant with FReM (one task per participant, region and feature, run in parallel and resumable); the
``align`` stage averages each side over participants, corrects for multiple comparisons and compares the
profiles (:mod:`brainalign.probing.alignment`). Every score is held out by run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from brainalign.config.params import section
from brainalign.data.recording import Recording
from brainalign.errors import ConfigError, InputError
from brainalign.probing.alignment import FAMILIES, alignment_table, check_families, family_means, profiles
from brainalign.probing.frem import FremSettings, recording_atlas, region_masks
from brainalign.probing.segments import Segments, check_delays, make_segments
from brainalign.runs.code import code_key
from brainalign.runs.spec import StoredTask
from brainalign.runs.store import TaskStore

KEYS = ("data", "participants", "features", "groups", "encoder", "kinds", "delays", "drop_start", "drop_end",
        "alphas", "n_permutations", "seed", "regions", "frem_features", "cv", "clustering_percentile",
        "screening_percentile", "n_shifts", "alpha_fdr", "families", "workers")
KINDS = ("embedding", "attention")


@dataclass(frozen=True)
class ProbingPlan:
    """params.yaml ``probing``, checked."""

    data: str
    participants: Any
    features: str
    groups: tuple[str, ...] | None
    encoder: str
    kinds: tuple[str, ...]
    delays: tuple[int, ...]
    drop_start: int
    drop_end: int
    alphas: tuple[float, ...]
    n_permutations: int
    seed: int
    regions: tuple[str, ...] | None
    frem_features: tuple[str, ...] | None
    frem: FremSettings
    alpha_fdr: float
    families: dict
    workers: int


def probing_plan(params: dict) -> ProbingPlan:
    """The ``probing`` section as a plan (every key required, each checked)."""
    values = section(params, "probing", KEYS)
    kinds = tuple(values["kinds"])
    if not kinds or any(k not in KINDS for k in kinds):
        raise ConfigError(f"params.yaml: probing.kinds: expected a list among {list(KINDS)}, found {values['kinds']}")
    if not 0 < float(values["alpha_fdr"]) < 1:
        raise ConfigError(f"params.yaml: probing.alpha_fdr: expected a level in (0, 1), found {values['alpha_fdr']}")
    if int(values["workers"]) < 1:
        raise ConfigError(f"params.yaml: probing.workers: expected at least 1, found {values['workers']}")
    regions = values["regions"]
    if regions != "all" and not (isinstance(regions, list) and regions):
        raise ConfigError(f"params.yaml: probing.regions: expected 'all' or a list of region names, found {regions!r}")
    frem = FremSettings(cv=values["cv"], clustering_percentile=values["clustering_percentile"],
                        screening_percentile=values["screening_percentile"], n_shifts=values["n_shifts"],
                        seed=values["seed"])

    def names(key: str) -> tuple[str, ...] | None:
        value = values[key]
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise ConfigError(f"params.yaml: probing.{key}: expected null or a list, found {value!r}")
        return tuple(str(v) for v in value)

    return ProbingPlan(data=str(values["data"]), participants=values["participants"], features=str(values["features"]),
                       groups=names("groups"), encoder=str(values["encoder"]), kinds=kinds,
                       delays=tuple(check_delays(values["delays"])), drop_start=int(values["drop_start"]),
                       drop_end=int(values["drop_end"]), alphas=tuple(float(a) for a in values["alphas"]),
                       n_permutations=int(values["n_permutations"]), seed=int(values["seed"]),
                       regions=None if regions == "all" else tuple(str(r) for r in regions),
                       frem_features=names("frem_features"), frem=frem, alpha_fdr=float(values["alpha_fdr"]),
                       families=check_families(values["families"] or FAMILIES), workers=int(values["workers"]))


def read_recordings(plan: ProbingPlan) -> list[Recording]:
    """The participants' ``subject_N.mat`` files (the release's layout)."""
    from brainalign.data.hp_fmri import read_hp_fmri_dataset

    recordings = read_hp_fmri_dataset(Path(plan.data), plan.participants)
    words = recordings[0].words["word"].astype(str).tolist()
    for recording in recordings[1:]:
        if recording.words["word"].astype(str).tolist() != words:
            raise InputError(recording.source, "words", f"the same word entries as {recordings[0].source}",
                             "different entries (the story features are one per entry of one story)")
    return recordings


def story_segments(plan: ProbingPlan, recording: Recording) -> Segments:
    """The story's segments with the features chosen (``groups``), read from ``plan.features``."""
    from brainalign.probing.features import read_features

    words = recording.words["word"].astype(str).tolist()
    features = read_features(plan.features, words=words)
    if plan.groups is not None:
        known = [g.type for g in features.groups]
        unknown = [g for g in plan.groups if g not in known]
        if unknown:
            raise ConfigError(f"params.yaml: probing.groups: {unknown} are not groups of {plan.features} "
                              f"(it has {known})")
        features = features.select([n for n in features.names if n.split("/", 1)[0] in plan.groups])
    return make_segments(recording, features.matrix(), features.names, plan.delays, plan.drop_start, plan.drop_end)


def _md5(*arrays: np.ndarray | Sequence[str]) -> str:
    digest = hashlib.md5()
    for array in arrays:
        if isinstance(array, np.ndarray):
            digest.update(np.ascontiguousarray(array).tobytes())
            digest.update(str(array.shape).encode())
        else:
            digest.update(json.dumps(list(array)).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ProbeTask(StoredTask):
    """Every layer x feature probe of one representation kind."""

    encoder: str
    encoder_md5: str
    kind: str
    segments_md5: str
    alphas: tuple[float, ...]
    n_permutations: int
    seed: int
    alpha_fdr: float

    namespace = "probes"

    @property
    def label(self) -> str:
        return f"probe/{self.kind}"

    @cached_property
    def spec(self) -> dict:
        return {**asdict(self), "code": code_key(__name__)}

    def params(self) -> dict:
        return {"kind": self.kind, "encoder": self.encoder, "n_permutations": self.n_permutations, "seed": self.seed}

    def tags(self) -> dict[str, str]:
        return {"input_md5.segments": self.segments_md5, "input_md5.encoder": self.encoder_md5}


def encoder_md5(name: str) -> str:
    """The MD5 of the encoder's weight files (what its representations are a function of)."""
    from brainalign.features.encoders import file_fingerprint, weight_files

    return _md5([json.dumps(file_fingerprint(Path(p)), sort_keys=True) for p in weight_files(name)])


def probe_model(segments: Segments, plan: ProbingPlan, store: TaskStore, observer=None, device: str = "cpu",
                progress: bool = True) -> pd.DataFrame:
    """Probe scores of every kind, layer and feature (``probes.probe_scores``), one task per kind."""
    from brainalign.runs.engine import executor_for

    md5 = _md5(segments.text, segments.values, segments.run, segments.names)
    tasks = [ProbeTask(plan.encoder, encoder_md5(plan.encoder), kind, md5, plan.alphas, plan.n_permutations,
                       plan.seed, plan.alpha_fdr) for kind in plan.kinds]
    cache: dict[str, dict[str, np.ndarray]] = {}

    def work(task: ProbeTask, directory: Path, on_epoch=None) -> dict:
        from brainalign.features.encoders import load_encoder
        from brainalign.probing.probes import probe_scores
        from brainalign.probing.representations import segment_representations

        started = time.perf_counter()
        if "representations" not in cache:
            cache["representations"] = segment_representations(load_encoder(task.encoder), segments.text,
                                                               device=device, progress=progress)
        table = probe_scores(cache["representations"][task.kind], segments.values, segments.run, segments.names,
                             alphas=task.alphas, n_permutations=task.n_permutations, seed=task.seed, kind=task.kind,
                             q=task.alpha_fdr, progress=progress)
        table.to_parquet(directory / "scores.parquet", index=False)
        best = table.dropna(subset=["r2"]).groupby("feature")["r2"].max()
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "history": [], "resumed_at_epoch": 0,
                "examples_per_second": len(segments) / seconds if seconds > 0 else 0.0,
                "n_significant": int(table["significant"].sum()), "median_best_r2": float(best.median()) if len(best) else float("nan")}

    executor_for(device=device, progress=progress).run(tasks, store, work, observer)
    return pd.concat([pd.read_parquet(store.directory(t) / "scores.parquet") for t in tasks], ignore_index=True)


@dataclass(frozen=True)
class FremTask(StoredTask):
    """One feature decoded from one region of one participant."""

    subject: str
    region: str
    feature: str
    images_md5: str
    target_md5: str
    settings: FremSettings

    namespace = "frem"

    @property
    def label(self) -> str:
        return f"frem/{self.subject}/{self.region}/{self.feature}"

    @cached_property
    def spec(self) -> dict:
        return {"subject": self.subject, "region": self.region, "feature": self.feature,
                "images_md5": self.images_md5, "target_md5": self.target_md5, "settings": asdict(self.settings),
                "code": code_key(__name__)}

    def params(self) -> dict:
        return {"subject": self.subject, "region": self.region, "feature": self.feature, **asdict(self.settings)}

    def tags(self) -> dict[str, str]:
        return {"input_md5.images": self.images_md5, "input_md5.target": self.target_md5}


def frem_features(plan: ProbingPlan, segments: Segments) -> list[str]:
    """The features FReM decodes: ``frem_features`` (each must be a segment feature), or all."""
    if plan.frem_features is None:
        return list(segments.names)
    unknown = [f for f in plan.frem_features if f not in segments.names]
    if unknown:
        raise ConfigError(f"params.yaml: probing.frem_features: {unknown} are not features of {plan.features} "
                          f"(e.g. {segments.names[:6]})")
    return list(plan.frem_features)


def decode_brain(recordings: list[Recording], segments: Segments, plan: ProbingPlan, store: TaskStore,
                 observer=None, progress: bool = True) -> pd.DataFrame:
    """FReM's held-out score of every chosen feature in every chosen region of every participant."""
    from brainalign.probing.frem import decode_feature
    from brainalign.probing.segments import segment_images
    from brainalign.runs.engine import executor_for

    features = frem_features(plan, segments)
    tasks, inputs = [], {}
    for recording in recordings:
        numbers, names = recording_atlas(recording.extra.get("meta", {}), recording.source)
        masks = region_masks(numbers, names, plan.regions, recording.source)
        for region, mask in masks.items():
            if not mask.any():
                raise InputError(recording.source, "meta.colToROInum", f"voxels in region {region!r}", "none")
            channels = np.flatnonzero(mask)
            images = segment_images(recording, segments, plan.drop_start, plan.drop_end, channels)
            images_key = _md5(images, recording.coords[channels])
            for feature in features:
                target = segments.values[:, segments.names.index(feature)]
                task = FremTask(recording.subject, region, feature, images_key, _md5(target, segments.run), plan.frem)
                tasks.append(task)
                inputs[task.id] = (images, target, recording.coords[channels], recording.volume_shape,
                                   recording.affine)

    def work(task: FremTask, directory: Path, on_epoch=None) -> dict:
        started = time.perf_counter()
        images, target, coords, shape, affine = inputs[task.id]
        result = decode_feature(images, target, segments.run, coords, shape, affine, task.settings)
        np.save(directory / "predictions.npy", np.stack([result.predictions, result.dummy_predictions]))
        return {**result.summary(), "fold_scores": result.fold_scores.tolist(),
                "dummy_fold_scores": result.dummy_fold_scores.tolist(), "seconds": time.perf_counter() - started,
                "examples_per_second": len(target) / max(time.perf_counter() - started, 1e-9),
                "history": [], "resumed_at_epoch": 0}

    results = executor_for(plan.workers, progress=progress).run(tasks, store, work, observer)
    return pd.DataFrame([{"subject": t.subject, "region": t.region, "feature": t.feature,
                          **{k: r[k] for k in ("kind", "metric", "score", "dummy_score", "gain", "p_value",
                                               "fold_scores", "dummy_fold_scores", "n_folds_fitted", "n_voxels", "reason")}}
                         for t, r in zip(tasks, results)])


def frem_profile_value(table: pd.DataFrame) -> pd.Series:
    """A FReM score on the probes' scale: the R² gain over the dummy; for a binary feature, the AUC's gain
    doubled (Gini's coefficient, 0 at chance and 1 when perfect, as R² is)."""
    return np.where(table["metric"] == "roc_auc", 2.0 * table["gain"], table["gain"])


def group_p_value(rows: pd.DataFrame) -> float:
    """One-sided p-value that the held-out score beats the dummy's: a t-test of the gains of every participant's
    held-out runs (fold score minus the dummy's on the same run) against 0.

    Each participant's circular-shift p-value stays in the table, but it cannot carry the group's test: a run
    of n segments has only about n - 20 distinct shifts, so its smallest p-value cannot survive a correction
    over region x feature, and slow drifts that the shifts break make it liberal. A decoder that learned
    nothing loses to the dummy on held-out runs (its noise costs R²), so this test errs on the safe side.
    """
    from scipy.stats import ttest_1samp

    gains = np.concatenate([np.asarray(f, dtype=np.float64) - np.asarray(d, dtype=np.float64)
                            for f, d in zip(rows["fold_scores"], rows["dummy_fold_scores"])])
    gains = gains[np.isfinite(gains)]
    if gains.size < 2:
        return float("nan")
    if np.ptp(gains) == 0:
        return 0.0 if gains[0] > 0 else 1.0
    return float(ttest_1samp(gains, 0.0, alternative="greater").pvalue)


@dataclass
class ProbingTables:
    probes: pd.DataFrame      # kind x layer x feature
    frem: pd.DataFrame        # subject x region x feature, and the group's rows (subject "mean")
    alignment: pd.DataFrame   # kind x family x region x layer
    families: pd.DataFrame    # side x unit x family
    scores: pd.DataFrame      # both sides, tidy
    summary: dict


def probing_tables(probes: pd.DataFrame, frem: pd.DataFrame, plan: ProbingPlan) -> ProbingTables:
    """Averages over participants, Benjamini-Hochberg over region x feature, the alignment and the tidy table."""
    from brainalign.decoding.statistics import benjamini_hochberg

    frem = frem.assign(value=frem_profile_value(frem))
    group = frem.groupby(["region", "feature"], as_index=False, sort=True).agg(
        kind=("kind", "first"), metric=("metric", "first"), score=("score", "mean"),
        dummy_score=("dummy_score", "mean"), gain=("gain", "mean"), value=("value", "mean"),
        n_voxels=("n_voxels", "mean"))
    group["p_value"] = [group_p_value(frem.loc[(frem["region"] == row.region) & (frem["feature"] == row.feature)])
                        for row in group.itertuples()]
    group = group.assign(subject="mean")
    valid = group["p_value"].notna().to_numpy()
    p_fdr = np.full(len(group), np.nan)
    p_fdr[valid] = benjamini_hochberg(group.loc[valid, "p_value"].to_numpy())
    group = group.assign(p_fdr=p_fdr, significant=(p_fdr <= plan.alpha_fdr) & (group["gain"] > 0))
    frem_all = pd.concat([frem.drop(columns=["fold_scores", "dummy_fold_scores"]), group], ignore_index=True)

    brain = profiles(group.rename(columns={"value": "score_value"}), "region", "score_value")
    rows, family_rows = [], []
    for kind, table in probes.groupby("kind", sort=False):
        model = profiles(table.rename(columns={"r2": "score_value"}), "layer", "score_value")
        rows.append(alignment_table(brain, model, plan.families).assign(kind=kind))
        family_rows.append(family_means(table.rename(columns={"layer": "unit", "r2": "score"}), "unit",
                                        families=plan.families).assign(side=f"model/{kind}"))
    family_rows.append(family_means(group.drop(columns="score").rename(columns={"region": "unit", "value": "score"}), "unit",
                                    families=plan.families).assign(side="brain"))
    alignment = pd.concat(rows, ignore_index=True)[["kind", "family", "region", "layer", "cosine", "n_features"]]
    families = pd.concat(family_rows, ignore_index=True)[["side", "unit", "family", "score"]]

    scores = pd.concat([
        probes.assign(side="model", unit=probes["layer"].map(lambda l: f"layer{l}"), subject="model",
                      metric="r2", score=probes["r2"], baseline=0.0, gain=probes["r2"])
        [["side", "kind", "subject", "unit", "feature", "metric", "score", "baseline", "gain", "p_value", "p_fdr",
          "significant"]],
        frem_all.assign(side="brain", kind="frem", unit=frem_all["region"], baseline=frem_all["dummy_score"])
        [["side", "kind", "subject", "unit", "feature", "metric", "score", "baseline", "gain", "p_value", "p_fdr",
          "significant"]],
    ], ignore_index=True)
    scores["group"] = scores["feature"].str.split("/", n=1).str[0]

    def best(kind: str) -> pd.DataFrame:
        table = alignment[(alignment["kind"] == kind) & (alignment["family"] == "all")].dropna(subset=["cosine"])
        return table.loc[table.groupby("region")["cosine"].idxmax()]

    summary = {
        "n_segments": int(probes.groupby(["kind", "layer"]).size().iloc[0]) if len(probes) else 0,
        "probes_significant": {k: int(t["significant"].sum()) for k, t in probes.groupby("kind")},
        "frem_significant": int(group["significant"].sum()), "frem_pairs": int(len(group)),
        "best_layer_of_region": {kind: {r["region"]: int(r["layer"]) for _, r in best(kind).iterrows()}
                                 for kind in probes["kind"].unique()},
    }
    return ProbingTables(probes=probes, frem=frem_all, alignment=alignment, families=families, scores=scores,
                         summary=summary)


def write_tables(tables: ProbingTables, directory: str | Path) -> None:
    """``scores.parquet`` (tidy, both sides), ``probes.parquet``, ``frem.parquet``, ``alignment.parquet``,
    ``families.csv`` and ``summary.json`` under ``directory``."""
    from brainalign.files import atomic_path, write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, table in (("scores", tables.scores), ("probes", tables.probes), ("frem", tables.frem),
                        ("alignment", tables.alignment)):
        with atomic_path(directory / f"{name}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
    with atomic_path(directory / "families.csv") as tmp:
        tables.families.to_csv(tmp, index=False)
    write_json(directory / "summary.json", tables.summary)
