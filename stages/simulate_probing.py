"""Stage simulate_probing: a simulated probing experiment in the release's files, with its truth.

The packaged story read in the scanner by ``simulate_probing.subjects`` participants; its features (the
project's own annotations plus ``simulated/layer<L>`` and ``simulated/state``) with the features of
``simulate_probing.planted`` put into the voxels of their regions (``brainalign.probing.simulate``). Writes
``data/probing/raw/fmri/subject_N.mat``, ``data/probing/raw/story_features.mat`` and
``data/probing/truth/truth.json``.
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params, section  # noqa: E402
from brainalign.probing.simulate import ProbingSimulation, write_probing_simulation  # noqa: E402

KEYS = ("seed", "subjects", "words_per_run", "resolution_mm", "region_radius_mm", "layers", "planted", "snr")


def main() -> None:
    settings = ProbingSimulation(**section(load_params(), "simulate_probing", KEYS))
    with tracking.stage_run("simulate_probing", {"simulate_probing": asdict(settings)}):
        truth = write_probing_simulation("data/probing/raw", "data/probing/truth", settings)
        mlflow.log_metrics({f"snr.{subject}": snr for subject, snr in truth["snr"].items()})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
