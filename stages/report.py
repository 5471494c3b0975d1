"""Stage report: accuracy distributions per participant, and per dataset the figure its channels call for:
glass-brain maps (voxels), bars (named regions) or time courses (MEG sensors x bins)."""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.figures import accuracy_distribution, channel_accuracy, glass_brain, meg_time_course  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.params import load_params, section  # noqa: E402
from brainalign.prepared import read_prepared  # noqa: E402
from brainalign.recordings.hp_meg import bins_per_sensor  # noqa: E402
from brainalign.scoring.table import voxel_means  # noqa: E402

PREPARED, TABLE, OUT = "data/prepared", "data/scores/scores.parquet", "reports/figures"


def main() -> None:
    settings = section(load_params(), "report", ["map_threshold", "map_vmax"])
    with tracking.stage_run("report", {"report": settings}), atomic_path(OUT) as tmp:
        tmp.mkdir(parents=True)
        means = voxel_means(pd.read_parquet(TABLE))
        for (name, model), scores in means.groupby(["dataset", "model"], sort=False):
            stem = f"{model}_{name}"
            accuracy_distribution(scores, tmp / f"{stem}_accuracy_distribution.png")
            spaces = {}
            for subject, voxels in scores.groupby("subject", sort=False):
                space = read_prepared(Path(PREPARED) / name, str(subject))
                if space.coords is None:
                    continue
                spaces[subject] = (space, voxels.sort_values("voxel")["accuracy"].to_numpy())
                glass_brain(spaces[subject][1], space.coords, space.affine, space.volume_shape,
                            tmp / f"{stem}_glass_brain_{subject}.png",
                            title=f"{model} ({name}), participant {subject}: 20 vs 20 accuracy",
                            threshold=settings["map_threshold"], vmax=settings["map_vmax"])
            shared = [sp for sp, _ in spaces.values()]
            if len(shared) > 1 and all(np.array_equal(sp.coords, shared[0].coords) for sp in shared):
                # Participants in one voxel space (MNI, same mask): the group mean halves the null's spread.
                glass_brain(np.mean([acc for _, acc in spaces.values()], axis=0), shared[0].coords,
                            shared[0].affine, shared[0].volume_shape, tmp / f"{stem}_glass_brain_mean.png",
                            title=f"{model} ({name}), mean of {len(shared)} participants: 20 vs 20 accuracy",
                            threshold=settings["map_threshold"], vmax=settings["map_vmax"])
            first = read_prepared(Path(PREPARED) / name, str(scores["subject"].iloc[0]))
            if first.modality == "meg":
                meg_time_course(scores, bins_per_sensor(first.channel_names), tmp / f"{stem}_time_course.png",
                                title=f"{model} ({name}): 20 vs 20 accuracy after word onset")
            elif first.coords is None and first.channel_names is not None:
                channel_accuracy(scores, first.channel_names, tmp / f"{stem}_regions.png",
                                 title=f"{model} ({name}): 20 vs 20 accuracy per region")
        mlflow.log_artifacts(str(tmp), artifact_path="figures")


if __name__ == "__main__":
    raise SystemExit(guarded(main))
