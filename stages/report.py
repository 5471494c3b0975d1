"""Stage report: accuracy distributions per participant and glass-brain maps of accuracy."""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.figures import accuracy_distribution, glass_brain  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.params import load_params, section  # noqa: E402
from brainalign.prepared import read_prepared  # noqa: E402
from brainalign.scoring.table import voxel_means  # noqa: E402

PREPARED, TABLE, OUT = "data/prepared", "data/scores/scores.parquet", "reports/figures"


def main() -> None:
    settings = section(load_params(), "report", ["map_threshold", "map_vmax"])
    with tracking.stage_run("report", {"report": settings}), atomic_path(OUT) as tmp:
        tmp.mkdir(parents=True)
        means = voxel_means(pd.read_parquet(TABLE))
        for model, scores in means.groupby("model", sort=False):
            accuracy_distribution(scores, tmp / f"{model}_accuracy_distribution.png")
            spaces = {}
            for subject, voxels in scores.groupby("subject", sort=False):
                space = read_prepared(PREPARED, str(subject))
                if space.coords is None:
                    continue
                spaces[subject] = (space, voxels.sort_values("voxel")["accuracy"].to_numpy())
                glass_brain(spaces[subject][1], space.coords, space.affine, space.volume_shape,
                            tmp / f"{model}_glass_brain_{subject}.png",
                            title=f"{model}, participant {subject}: 20 vs 20 accuracy",
                            threshold=settings["map_threshold"], vmax=settings["map_vmax"])
            shared = [sp for sp, _ in spaces.values()]
            if len(shared) > 1 and all(np.array_equal(sp.coords, shared[0].coords) for sp in shared):
                # Participants in one voxel space (MNI, same mask): the group mean halves the null's spread.
                glass_brain(np.mean([acc for _, acc in spaces.values()], axis=0), shared[0].coords,
                            shared[0].affine, shared[0].volume_shape, tmp / f"{model}_glass_brain_mean.png",
                            title=f"{model}, mean of {len(shared)} participants: 20 vs 20 accuracy",
                            threshold=settings["map_threshold"], vmax=settings["map_vmax"])
        mlflow.log_artifacts(str(tmp), artifact_path="figures")


if __name__ == "__main__":
    raise SystemExit(guarded(main))
