"""The benchmark stages' tasks, for the task store: a model scored on a benchmark, a benchmark's ceiling.

A model task is keyed by the model (and a local model's files), the benchmark's data (the MD5 of its
presentations and responses), the metric, the layer-selection split and the reading settings; a ceiling
task by the data, the metric and the ceiling's sampling. Every key holds the code key of this module's
imports, so a changed metric or reader gives new keys and an added model costs only itself.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from brainalign.benchmarks.activations import presentation_activations
from brainalign.benchmarks.ceilings import brainscore_ceiling
from brainalign.benchmarks.metrics import split_half_ceiling, surprisal_score
from brainalign.benchmarks.nextword import word_surprisal
from brainalign.benchmarks.scoring import benchmark_metric, score_layers, selection_mask
from brainalign.benchmarks.zoo import load_zoo_model, model_files_md5, zoo_model
from brainalign.data.presentations import Presentations
from brainalign.runs.spec import StoredTask
from brainalign.runs.code import code_key
from brainalign.stimuli.lexicon import log_probability


def data_md5(data: Presentations) -> str:
    """What decides a benchmark's numbers: the presentations, their groups, the channels and the responses."""
    digest = hashlib.md5()
    digest.update(data.stimuli[["stimulus_id", "text", data.group]].to_csv(index=False).encode("utf-8"))
    digest.update(data.channels[["channel_id", "subject"]].to_csv(index=False).encode("utf-8"))
    digest.update(np.ascontiguousarray(data.responses, dtype=np.float32).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Reading:
    """How models read a benchmark and how a layer is committed (params.yaml ``benchmarks``)."""

    selection_fraction: float = 1 / 3
    seed: int = 0
    batch_size: int = 16
    max_length: int = 256


def _bookkeeping(started: float, n: int) -> dict:
    seconds = time.perf_counter() - started
    return {"history": [], "seconds": seconds, "resumed_at_epoch": 0,
            "examples_per_second": n / seconds if seconds > 0 else 0.0}


@dataclass(frozen=True)
class ModelTask(StoredTask):
    """One model on one benchmark: every layer scored on the selection and test parts (neural), or its
    surprisal's fit to reading times."""

    benchmark: str
    key_name: str  # the suite entry (benchmark@<key_name>)
    model: str
    data_md5: str
    metric: str
    reading: Reading

    namespace = "benchmarks"

    @property
    def label(self) -> str:
        return f"benchmark/{self.key_name}/{self.model}"

    @cached_property
    def spec(self) -> dict:
        return {"benchmark": self.benchmark, "model": self.model, "model_md5": model_files_md5(self.model),
                "data_md5": self.data_md5, "metric": self.metric, "reading": asdict(self.reading),
                "code": code_key(__name__)}

    def params(self) -> dict:
        return {"benchmark": self.benchmark, "model": self.model, "metric": self.metric, **asdict(self.reading)}

    def tags(self) -> dict[str, str]:
        return {"benchmark_key": self.key, "model": self.model, "benchmark": self.benchmark,
                "input_md5.benchmark_data": self.data_md5}


@dataclass(frozen=True)
class CeilingTask(StoredTask):
    """A benchmark's noise ceiling on the presentations models are scored on."""

    benchmark: str
    key_name: str
    data_md5: str
    metric: str
    kind: str
    n_bootstraps: int
    subsets_per_k: int | None
    heldout_participants: int | None
    reading: Reading
    fit: str = "global"

    namespace = "benchmark-ceilings"

    @property
    def label(self) -> str:
        return f"ceiling/{self.key_name}"

    @cached_property
    def spec(self) -> dict:
        return {"benchmark": self.benchmark, "data_md5": self.data_md5, "metric": self.metric, "kind": self.kind,
                "n_bootstraps": self.n_bootstraps, "subsets_per_k": self.subsets_per_k,
                "heldout_participants": self.heldout_participants, "fit": self.fit,
                "code": code_key(__name__)}

    def params(self) -> dict:
        return {"benchmark": self.benchmark, "metric": self.metric, "kind": self.kind,
                "n_bootstraps": self.n_bootstraps}

    def tags(self) -> dict[str, str]:
        return {"ceiling_key": self.key, "benchmark": self.benchmark, "input_md5.benchmark_data": self.data_md5}


def unigram_surprisal(words: list[str]) -> np.ndarray:
    """Bits of each word under wordfreq's English unigram frequencies (the reading-time baseline; a word
    wordfreq does not know gets the floor of :func:`brainalign.stimuli.lexicon.log_probability`)."""
    return np.array([-log_probability(w) / np.log(2.0) for w in words])


def scorer(data: Presentations, progress: bool = True) -> Callable:
    """The work of model tasks on ``data``: ``layers.parquet`` and ``neuroids.npy`` (neural) or
    ``surprisal.npy`` (reading times) in the task's directory."""
    def work(task: ModelTask, directory: Path, on_epoch=None) -> dict:
        started = time.perf_counter()
        entry = zoo_model(task.model)
        if task.metric == "surprisal":
            words = data.stimuli["text"].tolist()
            if entry.family == "unigram":
                surprisal = unigram_surprisal(words)
            else:
                model = load_zoo_model(task.model, seed=task.reading.seed)
                surprisal = word_surprisal(model, words, data.groups, progress=progress)
            np.save(directory / "surprisal.npy", surprisal)
            mean_rt = np.nanmean(data.responses.astype(np.float64), axis=1)
            score = surprisal_score(surprisal, mean_rt, data.stimuli["sentence_first"].to_numpy(bool))
            return {"committed_layer": -1, "raw": float(score), "best_test_layer": -1,
                    "best_test_raw": float(score), "n_layers": 1, **_bookkeeping(started, len(words))}
        model = load_zoo_model(task.model, seed=task.reading.seed)
        activations = presentation_activations(model, data.stimuli["text"].tolist(), data.groups,
                                               batch_size=task.reading.batch_size,
                                               max_length=task.reading.max_length, progress=progress)
        selection = selection_mask(data.groups, task.reading.selection_fraction, task.reading.seed)
        layers = score_layers(activations, data.responses, data.stimuli["stimulus_id"].to_numpy(), data.groups,
                              benchmark_metric(task.metric), selection, progress=progress, label=task.model)
        layers.table.to_parquet(directory / "layers.parquet", index=False)
        np.save(directory / "neuroids.npy", layers.per_neuroid.astype(np.float32))
        return {"committed_layer": layers.committed_layer, "raw": layers.score(),
                "best_test_layer": layers.best_test_layer,
                "best_test_raw": layers.score(layers.best_test_layer) if layers.best_test_layer >= 0 else None,
                "n_layers": int(activations.shape[0]),
                **_bookkeeping(started, data.n_presentations * int(activations.shape[0]))}
    return work


def ceiling_work(data: Presentations, progress: bool = True) -> Callable:
    """The work of ceiling tasks: ``ceiling.npy`` (per channel) in the task's directory."""
    def work(task: CeilingTask, directory: Path, on_epoch=None) -> dict:
        started = time.perf_counter()
        if task.kind == "split_half":
            value, per_split = split_half_ceiling(data.responses.T.astype(np.float64), seed=task.reading.seed)
            np.save(directory / "ceiling.npy", np.asarray(per_split, dtype=np.float64))
            return {"value": float(value), **_bookkeeping(started, data.n_presentations)}
        # The ceiling fits no model of the stimulus (participants predict each other, cross-validated), so it
        # uses every presentation, as Brain-Score does: the model scores, on the test part alone, are then if
        # anything slightly conservative against it.
        result = brainscore_ceiling(data.responses.astype(np.float64), data.channels["subject"].to_numpy(),
                                    benchmark_metric(task.metric),
                                    stimulus_ids=data.stimuli["stimulus_id"].to_numpy(),
                                    groups=data.groups, n_bootstraps=task.n_bootstraps,
                                    subsets_per_k=task.subsets_per_k,
                                    heldout_participants=task.heldout_participants, fit=task.fit,
                                    progress=progress)
        np.save(directory / "ceiling.npy", np.asarray(result.per_neuroid, dtype=np.float64))
        return {"value": float(result.value), **_bookkeeping(started, data.n_presentations)}
    return work


def read_layers(store_root: Path, task: ModelTask) -> pd.DataFrame:
    return pd.read_parquet(store_root / task.id / "layers.parquet")
