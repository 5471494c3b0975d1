"""Stage trajectory@<name>: one fine-tuning trajectory of ``decoding.trajectories`` (Gauthier & Levy 2019).

The encoder ``decoding.encoder`` is fine-tuned on the trajectory's objective (a GLUE task, SQuAD 2.0, or a
language-modelling variant) for ``decoding.steps`` steps, once per seed, keeping the encoder every
``checkpoint_every`` steps. Each seed is a task of the store (a finished one is reused, an interrupted one
resumes bitwise from its last checkpoint) and an MLflow run nested under the stage's, with the loss at every
step and the dev metric at every checkpoint. ``data: sample`` trains on the embedded samples (made-up tasks in
the GLUE and SQuAD release formats: not GLUE or SQuAD, and every output says so).

Writes ``data/decoding/trajectories/<name>/``: ``seed<s>/step-NNNN.safetensors`` with its card
``step-NNNN.json``, ``history.csv`` and ``trajectory.json``.
"""

import tempfile
from pathlib import Path

from brainalign.cli import begin_stage, exit_stage, guarded, stage_argument

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.decoding.data import objective_data  # noqa: E402
from brainalign.decoding.settings import decoding_plan  # noqa: E402
from brainalign.decoding.trajectory import build_objectives, export_trajectory, plan_run, trainer  # noqa: E402
from brainalign.features.encoders import load_encoder  # noqa: E402
from brainalign.finetuning.tasks import torch_device  # noqa: E402
from brainalign.runs.engine import executor_for  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402
from brainalign.errors import ConfigError  # noqa: E402


def main() -> None:
    name = stage_argument("trajectory")
    plan = decoding_plan(load_params())
    if name not in plan.trajectories:
        raise ConfigError(f"params.yaml: decoding.trajectories: no trajectory {name!r} (found "
                          f"{', '.join(plan.trajectories)})")
    settings, device = plan.settings_for(name), torch_device(plan.device)
    with tempfile.TemporaryDirectory() as scratch:
        entry, notice = objective_data(plan.trajectories[name], Path(scratch), plan.seeds[0])
        tokenizer = load_encoder(plan.encoder).tokenizer
        objectives = build_objectives(name, entry, tokenizer, settings, plan.seeds)
    runs = [plan_run(name, objectives[seed], plan.encoder, settings, seed, device) for seed in plan.seeds]
    with tracking.stage_run(f"trajectory@{name}", {"trajectory": {"name": name, **plan.trajectories[name]},
                                                   "encoder": plan.encoder, "preset": plan.preset,
                                                   "training": settings.__dict__, "seeds": plan.seeds}):
        if notice:
            mlflow.set_tag("notice", notice)
        store = TaskStore(tracking.task_store())
        final = lambda run, result: {k: v for k, v in result["history"][-1].items()  # noqa: E731
                                     if k.startswith("dev.") or k == "loss"}
        executor_for(device=device, fresh_process=True).run(
            runs, store, trainer(objectives, progress=True),
            tracking.TaskRuns(summarise=final, tags={"notice": notice} if notice else None))
        summary = export_trajectory(runs, store.root, f"data/decoding/trajectories/{name}")
        print(f"trajectory {name}: {objectives[plan.seeds[0]].describe()}, seeds {plan.seeds}, "
              f"checkpoints at steps {summary['seeds'][str(plan.seeds[0])]['checkpoints']}", flush=True)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
