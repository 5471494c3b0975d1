"""One benchmark of the suite, every zoo model on it: what the ``benchmark@<name>`` stage computes.

:func:`evaluate_benchmark` reads the benchmark's data through its registered loader, runs its ceiling task
and one task per model through an executor and the task store (finished tasks are reused), and gathers
the tables the stage writes. Tracking stays with the caller: it passes the observers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from brainalign.benchmarks.leaderboard import benchmark_summary, scores_benchmark
from brainalign.benchmarks.suite import Benchmark
from brainalign.benchmarks.tasks import CeilingTask, ModelTask, Reading, ceiling_work, data_md5, read_layers, scorer
from brainalign.benchmarks.zoo import zoo_model
from brainalign.data.benchmark_sources import read_benchmark_data
from brainalign.data.presentations import Presentations
from brainalign.files import atomic_path
from brainalign.runs.engine import executor_for
from brainalign.runs.store import TaskStore

SIMULATED_RAW, SIMULATED_TRUTH = Path("data/benchmarks/raw"), Path("data/benchmarks/truth")


@dataclass
class BenchmarkResult:
    """What a benchmark stage writes (see :func:`write_result`)."""

    summary: dict
    models: pd.DataFrame
    layers: pd.DataFrame
    neuroids: pd.DataFrame
    ceiling: pd.DataFrame
    data_md5: str


def reading_settings(values: dict[str, Any]) -> Reading:
    """``benchmarks`` params -> how models read and how layers are committed."""
    return Reading(selection_fraction=float(values["selection_fraction"]), seed=int(values["seed"]),
                   batch_size=int(values["batch_size"]), max_length=int(values["max_length"]))


def simulated_truth(path: str | Path) -> dict | None:
    """The truth of a simulated twin read from ``data/benchmarks/raw/<source>``; None for other data."""
    path = Path(path)
    if not path.is_relative_to(SIMULATED_RAW) or path == SIMULATED_RAW:
        return None
    truth = SIMULATED_TRUTH / path.relative_to(SIMULATED_RAW).parts[0] / "truth.json"
    return json.loads(truth.read_text()) if truth.is_file() else None


def evaluate_benchmark(benchmark: Benchmark, key: str, entry: dict, models: list[str], reading: Reading,
                       n_bootstraps: int, store: TaskStore, ceiling_fit: str = "global", observer: Callable[[str], Any] | None = None,
                       data: Presentations | None = None, progress: bool = True) -> BenchmarkResult:
    """Score every model of ``models`` that the benchmark can score, and the benchmark's ceiling.

    Parameters
    ----------
    benchmark, entry
        From :func:`brainalign.benchmarks.suite.suite_entry` (``entry``: path, options, metric).
    observer : callable, optional
        ``observer("ceiling" | "models")`` gives the executor's observer for those tasks (MLflow runs).
    data : Presentations, optional
        Already read (default: read through the benchmark's loader).
    """
    if data is None:
        data = read_benchmark_data(entry["source"], entry["path"], **entry["options"])
    digest = data_md5(data)
    entries = {m: zoo_model(m) for m in models}
    scored = [m for m in models if scores_benchmark(entries[m].family, benchmark.kind)]
    skipped = {m: entries[m].family for m in models if m not in scored}
    executor = executor_for(progress=progress)
    ceiling_value, ceiling = None, pd.DataFrame(columns=["channel_id", "subject", "ceiling"])
    ceiling_task = CeilingTask(benchmark.name, key, digest, entry["metric"], benchmark.ceiling, int(n_bootstraps),
                               benchmark.subsets_per_k, benchmark.heldout_participants, reading,
                               ceiling_fit)
    # A split-half ceiling needs readers; a file of mean times has none.
    if benchmark.ceiling != "split_half" or data.n_channels > 1:
        result = executor.run([ceiling_task], store, ceiling_work(data, progress),
                              observer("ceiling") if observer else None)[0]
        ceiling_value = result["value"]
        if benchmark.kind == "neural":
            ceiling = data.channels.assign(ceiling=np.load(store.directory(ceiling_task) / "ceiling.npy"))
    tasks = [ModelTask(benchmark.name, key, model, digest, entry["metric"], reading) for model in scored]
    results = executor.run(tasks, store, scorer(data, progress), observer("models") if observer else None)
    summary, table = benchmark_summary(benchmark, key, tasks, results, ceiling_value, simulated_truth(entry["path"]),
                                       skipped, {m: entries[m].label for m in models})
    summary["data"] = {"path": entry["path"], "options": entry["options"], "metric": entry["metric"],
                       "md5": digest, "n_presentations": data.n_presentations, "n_channels": data.n_channels,
                       "subjects": data.subjects}
    layers = pd.DataFrame(columns=["layer", "part", "score", "model"])
    neuroids = pd.DataFrame(columns=["channel_id", "subject", "model", "layer", "score"])
    if benchmark.kind == "neural" and tasks:
        layers = pd.concat([read_layers(store.root, t).assign(model=t.model) for t in tasks], ignore_index=True)
        neuroids = pd.concat([
            data.channels[["channel_id", "subject"]].assign(
                model=t.model, layer=r["committed_layer"],
                score=np.load(store.directory(t) / "neuroids.npy")[r["committed_layer"]])
            for t, r in zip(tasks, results)], ignore_index=True)
    return BenchmarkResult(summary, table, layers, neuroids, ceiling, digest)


def write_result(result: BenchmarkResult, directory: str | Path) -> None:
    """``models.parquet``, ``layers.parquet``, ``neuroids.parquet``, ``ceiling.parquet``, ``summary.json``,
    in one atomic rename of ``directory``."""
    with atomic_path(directory) as tmp:
        tmp.mkdir(parents=True)
        result.models.to_parquet(tmp / "models.parquet", index=False)
        result.layers.to_parquet(tmp / "layers.parquet", index=False)
        result.neuroids.to_parquet(tmp / "neuroids.parquet", index=False)
        result.ceiling.to_parquet(tmp / "ceiling.parquet", index=False)
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
