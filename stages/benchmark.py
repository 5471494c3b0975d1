"""Stage benchmark@<name>: every model of ``benchmarks.models`` scored on one benchmark of ``benchmarks.suite``.

Neural benchmarks: every layer scored on a selection part and a test part of the groups; the committed layer
(best on selection) scored on the test part; the noise ceiling on the test part. Reading times: each causal
model's surprisal (and the unigram baseline's) against the mean reading time; the readers' split-half ceiling.

Writes ``data/benchmarks/scores/<name>/``: ``models.parquet`` (one row per model: committed layer, raw,
ceiling, normalised, the optimistic best test layer), ``layers.parquet`` (every layer on both parts),
``neuroids.parquet`` (the committed layer's test score per channel), ``ceiling.parquet`` (per channel),
``summary.json``; and ``metrics/benchmark_<name>.json``.
"""

from pathlib import Path

from brainalign.cli import begin_stage, exit_stage, guarded, stage_argument

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.benchmarks.evaluate import evaluate_benchmark, reading_settings, write_result  # noqa: E402
from brainalign.benchmarks.suite import suite_entry  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.files import write_json  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402


def observer(kind: str) -> tracking.TaskRuns:
    if kind == "ceiling":
        return tracking.TaskRuns(summarise=lambda task, result: {"ceiling": result["value"]})
    return tracking.TaskRuns(summarise=lambda task, result: {"raw": result["raw"],
                                                             "committed_layer": result["committed_layer"]})


def main() -> None:
    name = stage_argument("benchmark")
    params = load_params()
    benchmark, entry = suite_entry(params, name)
    values = params["benchmarks"]
    reading = reading_settings(values)
    with tracking.stage_run(f"benchmark@{name}", {"benchmark": benchmark.name, **entry, "models": values["models"],
                                                  "reading": reading.__dict__}):
        result = evaluate_benchmark(benchmark, name, entry, list(values["models"]), reading,
                                    int(values["ceiling_bootstraps"]), TaskStore(tracking.task_store()),
                                    values["ceiling_fit"], observer)
        mlflow.set_tag("input_md5.benchmark_data", result.data_md5)
        write_result(result, f"data/benchmarks/scores/{name}")
        summary = result.summary
        write_json(f"metrics/benchmark_{name}.json", {"ceiling": summary["ceiling"], **{
            row["model"]: {k: row[k] for k in ("committed_layer", "raw", "normalised")} for row in summary["models"]}})
        mlflow.log_metrics({f"{Path(row['model']).name}.{k}": row[k] for row in summary["models"]
                            for k in ("raw", "normalised") if row[k] is not None})
        if summary["ceiling"] is not None:
            mlflow.log_metric("ceiling", summary["ceiling"])
        print(result.models.to_string(index=False), flush=True)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
