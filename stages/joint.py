"""Stage joint: one encoder with a head for every MEG and every fMRI participant, per held-out run and seed.

Batches hold fMRI windows or MEG words; each head's loss is weighted by the seed code's 1/n_k task weights
(reference section 3). Held-out predictions go to `data/models/joint/<dataset>/...` for both datasets.
"""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.finetuning.grid import export, joint_tasks, grid_from_params, heldout_summary, resolve  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402


def main() -> None:
    params = load_params()
    grid, settings = grid_from_params(params), resolve(params, "joint")
    with tracking.stage_run("joint", {"models": grid.models, "joint": settings}):
        store = tracking.task_store()
        tasks = joint_tasks(grid, settings)
        tracking.run_tasks(tasks, store, summarise=lambda task: heldout_summary(task, store, grid))
        export(tasks, store, "data/models/joint")


if __name__ == "__main__":
    raise SystemExit(guarded(main))
