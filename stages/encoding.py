"""Stage encoding@<dataset>: a ridge encoding model per layer of every model (and low-level space), per
participant, scored on held-out runs; the dataset's noise ceiling; layer curves and best layers.

Writes ``data/encoding/<dataset>/``: ``scores.parquet`` (the long score table's rows, with ``layer`` and
``feature_space``), ``significance.parquet`` (each channel's circular-shift test per layer), ``ceiling.parquet``
(the extrapolation ceiling per channel and, on a simulation, each participant's true ceiling),
``curves.parquet`` and ``best.parquet`` (the median over the benchmark's channels per layer, and per model),
``summary.json``; and ``metrics/encoding_<dataset>.json``.
"""

import json
from pathlib import Path

from brainalign.cli import begin_stage, exit_stage, guarded, stage_argument

begin_stage()

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import dataset, load_params  # noqa: E402
from brainalign.data.atlas import language_region_labels  # noqa: E402
from brainalign.data.prepared import prepared_subjects, read_prepared  # noqa: E402
from brainalign.encoding.ceilings import dataset_ceiling, shared_space, simulated_true_ceiling  # noqa: E402
from brainalign.encoding.experiment import usable_low_level  # noqa: E402
from brainalign.encoding.settings import encoding_section, fit_settings  # noqa: E402
from brainalign.encoding.summary import best_layers, layer_curves  # noqa: E402
from brainalign.encoding.tasks import LOW_LEVEL, FitTask, fitter, read_fit, settings_json  # noqa: E402
from brainalign.errors import InputError  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.metrics.table import score_settings  # noqa: E402
from brainalign.ridge import resolve_device  # noqa: E402
from brainalign.runs.engine import executor_for  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402

TRUTH = "data/truth"


def benchmark_channels(subject, choice: str) -> tuple[np.ndarray, str]:
    """The channels a layer's score is the median over, and how they were chosen (for the report)."""
    if choice == "language" and subject.coords is not None and subject.affine is not None:
        chosen = np.flatnonzero(language_region_labels(subject.coords, subject.affine) > 0)
        if chosen.size:
            return chosen, f"the {chosen.size} voxels of the language-network spheres (data/atlas.py)"
    return np.arange(subject.responses.shape[1]), f"all {subject.responses.shape[1]} channels"


def main() -> None:
    name = stage_argument("encoding")
    params = load_params()
    values = encoding_section(params)
    settings = fit_settings(params, score_settings(params))
    prepared, features_dir, out = f"data/prepared/{name}", Path(f"data/encoding/features/{name}"), f"data/encoding/{name}"
    if not (features_dir / "models.json").is_file():
        raise InputError(features_dir / "models.json", "models.json", "the features stage's description of its "
                         f"models (run: dvc repro features@{name})", "no such file")
    models = json.loads((features_dir / "models.json").read_text())
    with tracking.stage_run(f"encoding@{name}", {"encoding": values}):
        subjects = [read_prepared(prepared, s) for s in prepared_subjects(prepared)]
        encoded = settings_json(settings)
        tasks = [FitTask(name, prepared, s.subject, model, meta["key"], encoded, int(values["seed"]),
                         str(features_dir / f"{model}.npy"), meta["feature_space"])
                 for s in subjects for model, meta in models.items()]
        tasks += [FitTask(name, prepared, s.subject, space, LOW_LEVEL, encoded) for s in subjects
                  for space in usable_low_level(s.modality, values["low_level"])]
        store = TaskStore(tracking.task_store())
        executor = executor_for(int(values["workers"]), resolve_device(values["device"]))
        executor.run(tasks, store, fitter(device=values["device"]), tracking.TaskRuns(
            summarise=lambda task, result: {"best_layer": result["best_layer"], "best_mean_r": result["best_mean_r"]}))
        fits = [read_fit(store.root, task) for task in tasks]
        scores = pd.concat([f[0] for f in fits], ignore_index=True)
        significance = pd.concat([f[1].assign(model=t.model, subject=t.subject) for t, f in zip(tasks, fits)],
                                 ignore_index=True)
        channels, chosen = benchmark_channels(subjects[0], values["channels"])
        ceilings, note = [], shared_space(subjects)
        if note is None:
            # As Brain-Score's benchmarks do, over the benchmark's channels: they are the neuroids.
            ceilings.append(dataset_ceiling(subjects, channels, n_bootstraps=int(values["ceiling_bootstraps"]),
                                            seed=int(values["seed"])).assign(subject="all", kind="extrapolation"))
        if dataset(params, name)["source"] == "simulated" and subjects[0].modality == "fmri" and Path(TRUTH).exists():
            for s in subjects:
                true = simulated_true_ceiling(s, TRUTH)
                ceilings.append(pd.DataFrame({"voxel": np.arange(true.size), "ceiling": true, "subject": s.subject,
                                              "kind": "true"}))
        ceiling = pd.concat(ceilings, ignore_index=True) if ceilings else pd.DataFrame(
            columns=["voxel", "ceiling", "subject", "kind"])
        estimated = ceiling[ceiling["kind"] == "extrapolation"]
        value = float(np.nanmedian(estimated["ceiling"])) if len(estimated) else None
        curves = layer_curves(scores, channels, {**{m: meta["n_layers"] for m, meta in models.items()}})
        best = best_layers(curves, value)
        summary = {"channels": chosen, "ceiling": value, "ceiling_note": note,
                   "models": {m: {**meta} for m, meta in models.items()},
                   "best": best.replace({np.nan: None}).to_dict(orient="records")}
        true = ceiling[ceiling["kind"] == "true"]
        if len(true):
            summary["true_ceiling"] = float(true[true["voxel"].isin(channels)].groupby("subject")["ceiling"]
                                            .median().mean())
        with atomic_path(out) as tmp:
            tmp.mkdir(parents=True)
            scores.to_parquet(tmp / "scores.parquet", index=False)
            significance.to_parquet(tmp / "significance.parquet", index=False)
            ceiling.to_parquet(tmp / "ceiling.parquet", index=False)
            curves.to_parquet(tmp / "curves.parquet", index=False)
            best.to_parquet(tmp / "best.parquet", index=False)
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        metrics = {row["model"]: {k: row[k] for k in ("best_layer", "raw", "normalised")}
                   for row in summary["best"]}
        write_json(f"metrics/encoding_{name}.json", {"ceiling": value, **metrics})
        mlflow.log_metrics({f"{m}.{k}": v for m, row in metrics.items() for k, v in row.items() if v is not None})
        if value is not None:
            mlflow.log_metric("ceiling", value)
        print(best.to_string(index=False), flush=True)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
