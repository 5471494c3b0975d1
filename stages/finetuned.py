"""Stage finetuned: per fMRI participant, held-out run and seed, head-only epochs then full fine-tuning.

The head epochs read the `encode` stage's cached features, as the vanilla model does, and with the same seed
start from the same head and see the examples in the same order; the full epochs then train the encoder
and head together (reference section 3).
"""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.finetuning.grid import export, finetuned_tasks, grid_from_params, heldout_summary, resolve  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402


def main() -> None:
    params = load_params()
    grid, settings = grid_from_params(params), resolve(params, "finetuned")
    with tracking.stage_run("finetuned", {"models": grid.models, "finetuned": settings}):
        store = tracking.task_store()
        tasks = finetuned_tasks(grid, settings)
        tracking.run_tasks(tasks, store, summarise=lambda task: heldout_summary(task, store, grid))
        export(tasks, store, "data/models/finetuned")


if __name__ == "__main__":
    raise SystemExit(guarded(main))
