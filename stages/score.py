"""Stage score: the measures of `score.measures` per channel (20 vs 20 accuracy in both forms, R², Pearson r)
on every held-out run, every model and dataset, into one long-format table with the encoding models' rows
(their `layer` and `feature_space`; the brain models' are -1 and "cls") and the vision models' (feature space
"image": Pearson r, NSD's noise ceiling and its explained share per voxel, with the voxel's `roi`); summaries
(the default form named by `score.anchor`) as DVC metrics."""

from pathlib import Path

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.errors import InputError  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.metrics.table import (  # noqa: E402
    brain_model_rows,
    model_dirs,
    score_model,
    score_settings,
    summarise,
    with_layer_keys,
)

PREPARED, MODELS, ENCODING, TABLE, METRICS = ("data/prepared", "data/models", "data/encoding", "data/scores/scores.parquet",
                                              "metrics")
VISION = "data/vision"


def main() -> None:
    settings = score_settings(load_params())
    with tracking.stage_run("score", {"score": settings}):
        frames = [with_layer_keys(score_model(model, path, Path(PREPARED) / name, k=settings["k"],
                                              n_draws=settings["n_draws"], seed=settings["seed"],
                                              draws=settings["draws"], dataset=name, measures=settings["measures"]))
                  for (model, name), path in model_dirs(MODELS).items()]
        # The encoding models' rows (every layer), scored by the encoding stages on the same draws.
        frames += [pd.read_parquet(path) for path in sorted(Path(ENCODING).glob("*/scores.parquet"))]
        # The vision models' rows (feature space "image", with each voxel's ROI), scored on the shared images.
        frames += [pd.read_parquet(path) for path in sorted(Path(VISION).glob("*/scores.parquet"))]
        if not frames:
            raise InputError(MODELS, "models", "trained models or encoding results to score", "none")
        table = pd.concat(frames, ignore_index=True)
        with atomic_path(TABLE) as tmp:
            table.to_parquet(tmp, index=False)
        heads = brain_model_rows(table)
        summary = summarise(heads, top=settings["top_voxels"], anchor=settings["anchor"]) if len(heads) else {}
        for model, datasets in summary.items():
            write_json(Path(METRICS) / f"{model}.json", datasets)
            for name, subjects in datasets.items():
                for subject, values in subjects.items():
                    mlflow.log_metrics({f"{model}.{name}.{subject}.{k}": v for k, v in values.items()})
        mlflow.log_artifact(TABLE)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
