"""Stage simulate: a simulated reading experiment in the Harry Potter fMRI release format.

Writes ``data/raw/fmri/subject_N.mat`` and ``data/raw/meg/hp_meg.npz`` (what the releases hold) and
``data/truth/`` (what only the simulation knows: responsive voxels, SNR, noise-free signal).
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import field_names, load_params, section  # noqa: E402
from brainalign.data.simulated import (  # noqa: E402
    SimulationConfig,
    simulate_experiment,
    write_simulation,
)


def main() -> None:
    config = SimulationConfig(**section(load_params(), "simulate", field_names(SimulationConfig)))
    with tracking.stage_run("simulate", {"simulate": asdict(config)}):
        fmri, meg, truth = simulate_experiment(config)
        write_simulation(fmri, meg, truth, config, "data/raw", "data/truth")
        mlflow.log_metrics({f"snr.{subject}": snr for subject, snr in truth.snr.items()})
        mlflow.log_metrics({f"meg_snr.{subject}": float(f["snr"]) for subject, f in truth.meg.items()})
        mlflow.log_metrics({"n_voxels": truth.responsive.size, "n_responsive": int(truth.responsive.sum()),
                            "n_trs": fmri[0].responses.shape[0],
                            "n_words": int((fmri[0].words["word"] != "+").sum())})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
