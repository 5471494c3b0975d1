"""Stage train@<model> (and vanilla@<dataset>): one model recipe's grid of tasks, trained and exported.

``python stages/train.py <model> [dataset]``: the recipe (:mod:`brainalign.finetuning.recipes`) plans its
tasks from params.yaml (``models`` and the model's own section); the executor runs them through the task
store (finished tasks are reused, interrupted ones resume); each task is an MLflow run nested under the
stage's; the finished tasks are exported to ``data/models/<model>[/<dataset>]`` for ``score``.
"""

import sys

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.errors import BrainalignError  # noqa: E402
from brainalign.finetuning.grid import export, grid_from_params, heldout_summary, runtime  # noqa: E402
from brainalign.finetuning.recipes import RECIPES  # noqa: E402
from brainalign.finetuning.tasks import trainer  # noqa: E402
from brainalign.runs.engine import executor_for  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402


def main() -> None:
    if len(sys.argv) not in (2, 3):
        raise BrainalignError(f"stages/train.py: expected a model ({', '.join(RECIPES.names())}) and, for a "
                              f"model trained per dataset, the dataset; found {sys.argv[1:]}")
    recipe = RECIPES.get(sys.argv[1])
    dataset = sys.argv[2] if len(sys.argv) == 3 else None
    if recipe.per_dataset != (dataset is not None):
        raise BrainalignError(f"stages/train.py {recipe.name}: expected {'a' if recipe.per_dataset else 'no'} "
                              f"dataset argument, found {sys.argv[2:]}")
    params = load_params()
    grid = grid_from_params(params)
    settings = recipe.settings(params, grid.models["preset"])
    with tracking.stage_run(recipe.stage(dataset), {"models": grid.models, recipe.name: settings}):
        plan = recipe.plan(grid, settings, dataset)
        if plan.notes:
            mlflow.log_params(plan.notes)
        store = TaskStore(tracking.task_store())
        work = trainer(store, grid.prepared_root, grid.features_root,
                       checkpoint_every=float(grid.models["checkpoint_every"]))
        executor = executor_for(device=runtime(grid.models)["device"], fresh_process=True)
        executor.run(plan.tasks, store, work,
                     tracking.TaskRuns(summarise=lambda task, result: heldout_summary(task, store.root, grid)))
        export(plan.tasks, store.root, recipe.output(dataset), dataset=dataset)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
