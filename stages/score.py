"""Stage score: the measures of `score.measures` per channel (20 vs 20 accuracy in both forms, R², Pearson r)
on every held-out run, every model and dataset, into one long-format table; summaries (the default form named by `score.anchor`) as DVC metrics."""

from pathlib import Path

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.metrics.table import model_dirs, score_model, score_settings, summarise  # noqa: E402

PREPARED, MODELS, TABLE, METRICS = "data/prepared", "data/models", "data/scores/scores.parquet", "metrics"


def main() -> None:
    settings = score_settings(load_params())
    with tracking.stage_run("score", {"score": settings}):
        table = pd.concat([score_model(model, path, Path(PREPARED) / name, k=settings["k"],
                                       n_draws=settings["n_draws"], seed=settings["seed"], draws=settings["draws"],
                                       dataset=name, measures=settings["measures"])
                           for (model, name), path in model_dirs(MODELS).items()], ignore_index=True)
        with atomic_path(TABLE) as tmp:
            table.to_parquet(tmp, index=False)
        summary = summarise(table, top=settings["top_voxels"], anchor=settings["anchor"])
        for model, datasets in summary.items():
            write_json(Path(METRICS) / f"{model}.json", datasets)
            for name, subjects in datasets.items():
                for subject, values in subjects.items():
                    mlflow.log_metrics({f"{model}.{name}.{subject}.{k}": v for k, v in values.items()})
        mlflow.log_artifact(TABLE)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
