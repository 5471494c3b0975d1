"""Stage vanilla@<dataset>: the frozen encoder with a linear head per participant, held-out run and seed.

The heads read the ``encode`` stage's cached features (the encoder never runs again) and train with the
seed paper's optimiser and schedule. Tasks, MLflow runs and files as for every model (``brainalign.finetuning.grid``).
"""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded, stage_argument  # noqa: E402
from brainalign.finetuning.grid import export, grid_from_params, heldout_summary, resolve, vanilla_tasks  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402


def main() -> None:
    name = stage_argument("vanilla")
    params = load_params()
    grid, settings = grid_from_params(params), resolve(params, "vanilla")
    with tracking.stage_run(f"vanilla@{name}", {"models": grid.models, "vanilla": settings}):
        store = tracking.task_store()
        tasks = vanilla_tasks(grid, name, settings)
        tracking.run_tasks(tasks, store, summarise=lambda task: heldout_summary(task, store, grid))
        export(tasks, store, f"data/models/vanilla/{name}", dataset=name)


if __name__ == "__main__":
    raise SystemExit(guarded(main))
