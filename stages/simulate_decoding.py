"""Stage simulate_decoding: simulated Pereira 2018 images for decoding, in the release's format, with truth.

Every participant's image of a sentence is a noisy linear function of the pretrained ``decoding.encoder``'s
sentence encoding (``decoding.layer``, ``decoding.pooling``). Writes
``data/decoding/raw/pereira2018/<participant>/examples_384sentences.mat`` and ``data/decoding/truth/``.
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params, section  # noqa: E402
from brainalign.decoding.simulate import DecodingSimulation, simulate_decoding_data  # noqa: E402
from brainalign.decoding.settings import decoding_plan  # noqa: E402

KEYS = ("seed", "participants", "voxels", "responsive_fraction", "true_r", "shared_fraction")


def main() -> None:
    params = load_params()
    values = section(params, "simulate_decoding", KEYS)
    plan = decoding_plan(params)
    settings = DecodingSimulation(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()},
                                  encoder=plan.encoder, layer=plan.layer, pooling=plan.pooling)
    with tracking.stage_run("simulate_decoding", {"simulate_decoding": asdict(settings)}):
        truth = simulate_decoding_data("data/decoding/raw/pereira2018", "data/decoding/truth", settings)
        mlflow.log_metrics({f"median_true_r.{p}": r for p, r in truth["median_true_r"].items()})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
