"""The decoding experiment: every checkpoint of every trajectory, every participant, one tidy table.

Steps (each cached in the task store, keyed by what determines it):

1. the stimulus sentences' encodings at the pretrained encoder (step 0 of every trajectory) and at every kept
   checkpoint (:class:`EncodingTask`: the checkpoint's MD5, the sentences, layer and pooling);
2. per participant, the decoder over all those encodings at once (:class:`DecodeTask`), so the image side
   (PCA, the SVDs of the ridge path) is computed once for all checkpoints;
3. the tables: ``scores`` (one row per participant × checkpoint: MAR, pairwise accuracy, chance, the penalties),
   ``ranks`` (one row per sentence of each of those: its rank), RSA and the tests against the pretrained encoder.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.data.presentations import Presentations
from brainalign.decoding.decoder import chance_mar, decode
from brainalign.decoding.encodings import checkpoint_encoder, sentence_encodings
from brainalign.decoding.rsa import rdm, rsa_matrix
from brainalign.decoding.settings import DecoderSettings
from brainalign.decoding.statistics import compare_to_pretrained
from brainalign.errors import InputError
from brainalign.features.encoders import weight_files
from brainalign.files import md5_file
from brainalign.runs.code import code_key
from brainalign.runs.engine import executor_for
from brainalign.runs.spec import StoredTask
from brainalign.runs.store import TaskStore

PRETRAINED = "pretrained"


@dataclass(frozen=True)
class Checkpoint:
    """A point of a trajectory: the pretrained encoder (``weights`` None, step 0) or a kept checkpoint."""

    trajectory: str
    objective: str
    seed: int
    step: int
    weights: str | None

    @property
    def label(self) -> str:
        return PRETRAINED if self.weights is None else f"{self.trajectory}/seed{self.seed}/step{self.step}"


def trajectory_checkpoints(root: str | Path, names: list[str]) -> list[Checkpoint]:
    """The pretrained encoder, then every kept checkpoint of the exported trajectories ``names``."""
    root = Path(root)
    out = [Checkpoint(PRETRAINED, PRETRAINED, -1, 0, None)]
    for name in names:
        summary_path = root / name / "trajectory.json"
        if not summary_path.exists():
            raise InputError(summary_path, "trajectory.json", f"the exported trajectory {name!r} "
                             f"(run `dvc repro trajectory@{name}`)", "no such file")
        summary = json.loads(summary_path.read_text())
        for seed, entry in summary["seeds"].items():
            for step in entry["checkpoints"]:
                weights = root / name / f"seed{seed}" / f"step-{step:04d}.safetensors"
                if not weights.exists():
                    raise InputError(weights, "checkpoint", f"step {step} of {name} seed {seed}", "no such file")
                out.append(Checkpoint(name, summary["objective"], int(seed), int(step), str(weights)))
    return out


def _md5_strings(items: list[str]) -> str:
    return hashlib.md5("\n".join(items).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EncodingTask(StoredTask):
    """The stimulus sentences encoded by one checkpoint."""

    encoder: str
    weights: str | None
    sentences_md5: str
    layer: int
    pooling: str
    max_length: int = 128

    namespace = "sentence-encodings"

    @property
    def label(self) -> str:
        return f"encodings/{Path(self.weights).parent.parent.name + '/' + Path(self.weights).stem if self.weights else PRETRAINED}"

    @cached_property
    def spec(self) -> dict:
        return {"encoder": self.encoder, "encoder_md5": {p.name: md5_file(p) for p in weight_files(self.encoder)},
                "weights_md5": md5_file(self.weights) if self.weights else None, "sentences_md5": self.sentences_md5,
                "layer": self.layer, "pooling": self.pooling, "max_length": self.max_length,
                "code": code_key(__name__)}

    def params(self) -> dict:
        return {"encoder": self.encoder, "layer": self.layer, "pooling": self.pooling}

    def tags(self) -> dict[str, str]:
        return {"input_md5.sentences": self.sentences_md5}


@dataclass(frozen=True)
class DecodeTask(StoredTask):
    """One participant's images decoded into every checkpoint's encodings."""

    participant: str
    images_md5: str
    encoding_keys: tuple[str, ...]
    decoder: DecoderSettings
    grouped: bool

    namespace = "decodings"

    @property
    def label(self) -> str:
        return f"decode/{self.participant}"

    @cached_property
    def spec(self) -> dict:
        return {"participant": self.participant, "images_md5": self.images_md5, "encodings": list(self.encoding_keys),
                "decoder": asdict(self.decoder), "grouped": self.grouped, "code": code_key(__name__)}

    def params(self) -> dict:
        return {"participant": self.participant, **asdict(self.decoder)}

    def tags(self) -> dict[str, str]:
        return {"input_md5.images": self.images_md5}


def _bookkeeping(started: float, n: int) -> dict:
    seconds = time.perf_counter() - started
    return {"history": [], "seconds": seconds, "resumed_at_epoch": 0,
            "examples_per_second": n / seconds if seconds > 0 else 0.0}


def encode_checkpoints(checkpoints: list[Checkpoint], encoder: str, sentences: list[str], layer: int, pooling: str,
                       store: TaskStore, device: str = "cpu", progress: bool = True
                       ) -> tuple[list[EncodingTask], list[np.ndarray]]:
    """Every checkpoint's encodings of ``sentences`` (from the store when already computed)."""
    md5 = _md5_strings(sentences)
    tasks = [EncodingTask(encoder, c.weights, md5, layer, pooling) for c in checkpoints]

    loaded: dict = {}

    def work(task: EncodingTask, directory: Path, on_epoch=None) -> dict:
        started = time.perf_counter()
        # One encoder loaded, each checkpoint's weights loaded into it (the base's kept aside for step 0).
        if "encoder" not in loaded:
            loaded["encoder"] = checkpoint_encoder(task.encoder, None)
            loaded["base"] = {k: v.clone() for k, v in loaded["encoder"].model.state_dict().items()}
        encoder = loaded["encoder"]
        if task.weights is None:
            encoder.model.load_state_dict(loaded["base"])
        else:
            from safetensors.torch import load_file

            encoder.model.load_state_dict(load_file(str(task.weights)))
        values = sentence_encodings(encoder, sentences, task.layer, task.pooling, max_length=task.max_length,
                                    device=device)
        np.save(directory / "encodings.npy", values)
        return _bookkeeping(started, len(sentences))

    executor_for(device=device, progress=progress).run(tasks, store, work)
    return tasks, [np.load(store.directory(t) / "encodings.npy", allow_pickle=False) for t in tasks]


def images_md5(images: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()


def decode_participants(data: Presentations, encodings: list[np.ndarray], encoding_tasks: list[EncodingTask],
                        decoder: DecoderSettings, store: TaskStore, observer=None, progress: bool = True
                        ) -> dict[str, dict]:
    """Per participant (the channels' ``subject``): ranks (n_checkpoints, n_sentences), MAR, pairwise accuracy
    and penalties of every checkpoint."""
    groups = data.groups if decoder.folds_by == "passage" else None
    tasks, images = [], {}
    for subject in data.subjects:
        images[subject] = data.responses[:, data.subject_mask(subject)].astype(np.float64)
        tasks.append(DecodeTask(subject, images_md5(images[subject]), tuple(t.key for t in encoding_tasks), decoder,
                                groups is not None))

    def work(task: DecodeTask, directory: Path, on_epoch=None) -> dict:
        started = time.perf_counter()
        results = decode(images[task.participant], encodings, n_folds=decoder.folds, inner_folds=decoder.inner_folds,
                         alphas=decoder.alphas, n_components=decoder.n_components, leaky_pca=decoder.leaky_pca,
                         groups=groups, seed=decoder.seed, progress=progress)
        np.save(directory / "ranks.npy", np.stack([r.ranks for r in results]).astype(np.int32))
        return {"mar": [r.mar for r in results], "pairwise_accuracy": [r.pairwise_accuracy for r in results],
                "alphas": [np.asarray(r.alphas).tolist() for r in results], "n_candidates": results[0].n_candidates,
                "leaky": bool(results[0].leaky), **_bookkeeping(started, len(results))}

    out = {}
    for task, result in zip(tasks, executor_for(progress=progress).run(tasks, store, work, observer)):
        out[task.participant] = {**result, "ranks": np.load(store.directory(task) / "ranks.npy", allow_pickle=False)}
    return out


@dataclass
class DecodingTables:
    scores: pd.DataFrame   # participant x checkpoint
    ranks: pd.DataFrame    # participant x checkpoint x sentence
    tests: pd.DataFrame    # trajectory: final vs pretrained
    rsa: pd.DataFrame      # representations x representations (Spearman of RDMs)
    summary: dict


def _checkpoint_rows(checkpoints: list[Checkpoint], trajectories: list[str]) -> list[dict]:
    """One row per (trajectory, seed, step), the pretrained encoder as step 0 of every trajectory and seed."""
    seeds = {(c.trajectory, c.seed) for c in checkpoints if c.weights is not None}
    rows = [{"index": i, "trajectory": c.trajectory, "objective": c.objective, "seed": c.seed, "step": c.step}
            for i, c in enumerate(checkpoints) if c.weights is not None]
    objectives = {c.trajectory: c.objective for c in checkpoints}
    rows += [{"index": 0, "trajectory": t, "objective": objectives[t], "seed": s, "step": 0}
             for t, s in sorted(seeds) if t in trajectories]
    return rows


def decoding_tables(data: Presentations, checkpoints: list[Checkpoint], encodings: list[np.ndarray],
                    decoded: dict[str, dict], trajectories: list[str], decoder: DecoderSettings) -> DecodingTables:
    """The tidy tables, RSA and tests of one decoding experiment."""
    rows = _checkpoint_rows(checkpoints, trajectories)
    n = data.n_presentations
    score_rows, rank_blocks = [], []
    for participant, result in decoded.items():
        for row in rows:
            i = row["index"]
            score_rows.append({"participant": participant, **{k: v for k, v in row.items() if k != "index"},
                               "mar": result["mar"][i], "pairwise_accuracy": result["pairwise_accuracy"][i],
                               "chance_mar": chance_mar(result["n_candidates"]), "n_candidates": result["n_candidates"],
                               "leaky_pca": result["leaky"], "alphas": json.dumps(result["alphas"][i])})
            rank_blocks.append(pd.DataFrame({"participant": participant, "trajectory": row["trajectory"],
                                             "objective": row["objective"], "seed": row["seed"], "step": row["step"],
                                             "sentence": np.arange(n), "stimulus_id": data.stimuli["stimulus_id"],
                                             "rank": result["ranks"][i]}))
    scores = pd.DataFrame(score_rows)
    ranks = pd.concat(rank_blocks, ignore_index=True)
    # Tests: each trajectory's final checkpoint against the pretrained encoder, per sentence (ranks averaged
    # over participants and seeds).
    per_sentence = ranks.groupby(["trajectory", "step", "sentence"])["rank"].mean()
    pretrained = ranks[ranks["step"] == 0].groupby("sentence")["rank"].mean().to_numpy()
    finals = {t: per_sentence.loc[(t, int(scores.loc[scores["trajectory"] == t, "step"].max()))].to_numpy()
              for t in trajectories}
    tests = compare_to_pretrained(finals, pretrained)
    # RSA: the pretrained encoder and every trajectory's final checkpoint (seed by seed), and every participant.
    named = {PRETRAINED: rdm(encodings[0])}
    for i, c in enumerate(checkpoints):
        final = max(x.step for x in checkpoints if x.trajectory == c.trajectory)
        if c.weights is not None and c.step == final:
            named[f"{c.trajectory}/seed{c.seed}"] = rdm(encodings[i])
    subjects = data.subjects
    for subject in subjects:
        named[f"brain/{subject}"] = rdm(data.responses[:, data.subject_mask(subject)].astype(np.float64))
    rsa = rsa_matrix(named)
    mean = scores.groupby(["trajectory", "step"])["mar"].mean()
    summary = {"n_sentences": int(n), "chance_mar": chance_mar(n), "leaky_pca": decoder.leaky_pca,
               "folds_by": decoder.folds_by, "participants": subjects,
               "pretrained_mar": float(scores.loc[scores["step"] == 0].groupby("participant")["mar"].first().mean()),
               "final_mar": {t: float(mean.loc[t].iloc[-1]) for t in trajectories},
               "significant": {r["task"]: bool(r["significant"]) for r in tests.to_dict("records")}}
    return DecodingTables(scores, ranks, tests, rsa, summary)


def write_tables(tables: DecodingTables, out: str | Path) -> None:
    """``out`` (``data/decoding/scores``): ``scores.parquet``, ``ranks.parquet``, ``tests.csv``, ``rsa.csv``,
    ``summary.json``, atomically."""
    from brainalign.files import atomic_path

    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        tables.scores.to_parquet(tmp / "scores.parquet", index=False)
        tables.ranks.to_parquet(tmp / "ranks.parquet", index=False)
        tables.tests.to_csv(tmp / "tests.csv", index=False)
        tables.rsa.to_csv(tmp / "rsa.csv")
        (tmp / "summary.json").write_text(json.dumps(tables.summary, indent=2, sort_keys=True) + "\n")


def observer_summary(task: DecodeTask, result: dict) -> dict[str, float]:
    return {"pretrained_mar": result["mar"][0], "min_mar": float(np.min(result["mar"])),
            "max_mar": float(np.max(result["mar"]))}

