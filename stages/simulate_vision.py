"""Stage simulate_vision: a simulated NSD in the release's files, with its truth.

Images the project makes, shown to ``simulate_vision.subjects`` participants (the shared images to all, three
times each); voxels of V1-hV4 with Gaussian population receptive fields over an untrained AlexNet's feature maps
(``brainalign.vision.simulate``). Writes the NSD layout under ``data/vision/nsd`` with ``truth.json``.
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import field_names, load_params, section  # noqa: E402
from brainalign.vision.simulate import VisionSimulation, simulate_nsd  # noqa: E402

ROOT = "data/vision/nsd"


def main() -> None:
    values = section(load_params(), "simulate_vision", field_names(VisionSimulation))
    settings = VisionSimulation(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    with tracking.stage_run("simulate_vision", {"simulate_vision": asdict(settings)}):
        truth = simulate_nsd(ROOT, settings)
        mlflow.log_metrics({"images": truth["images"]["n_images"], "trials": truth["images"]["trials"],
                            **{f"voxels.{s}": sum(part["responsive"]) for s, part in truth["subjects"].items()}})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
