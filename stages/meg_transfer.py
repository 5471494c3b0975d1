"""Stage meg_transfer: fine-tune on every MEG participant at once, then on each fMRI participant from there.

Per held-out run and seed: the MEG model (a head per MEG participant, the seed code's 1/n_k weights)
trains on the MEG words of the other runs, so the held-out run's text is never seen; each fMRI
participant's model then starts from its encoder with a new head (reference section 3). The held-out
MEG predictions are scored too (`data/models/meg_transfer/<meg dataset>`).
"""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.finetuning.grid import export, grid_from_params, heldout_summary, meg_transfer_tasks, resolve  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402


def main() -> None:
    params = load_params()
    grid, settings = grid_from_params(params), resolve(params, "meg_transfer")
    with tracking.stage_run("meg_transfer", {"models": grid.models, "meg_transfer": settings}):
        store = tracking.task_store()
        tasks = meg_transfer_tasks(grid, settings)
        tracking.run_tasks(tasks, store, summarise=lambda task: heldout_summary(task, store, grid))
        export(tasks, store, "data/models/meg_transfer")


if __name__ == "__main__":
    raise SystemExit(guarded(main))
