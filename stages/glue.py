"""Stage glue: do brain-tuned encoders keep their language skills? (the paper's Table 1)

Fine-tunes every encoder `glue.encoders` names on every task in `glue.tasks`, once per seed, and scores
each dev set with the task's metric. `glue.data: sample` uses the embedded GLUE-format sample (written
to data/glue/sample; not GLUE, and every output says so); a directory in the GLUE release layout or a
Hugging Face hub cache holding nyu-mll/glue gives real scores. Each run is an MLflow run nested under
the stage's; finished runs are reused from the task store and interrupted ones resume.
"""


from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.finetuning.tasks import torch_device  # noqa: E402
from brainalign.nlu.runs import plan_runs, run_metrics, trainer  # noqa: E402
from brainalign.nlu.table import write_tables  # noqa: E402
from brainalign.runs.engine import executor_for  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402

SAMPLE, RESULTS, TABLES, METRICS = "data/glue/sample", "data/glue/results.parquet", "reports/glue", "metrics/glue.json"


def main() -> None:
    plan = plan_runs(load_params(), SAMPLE)
    with tracking.stage_run("glue", {"glue": plan.settings}):
        if plan.notice:
            mlflow.set_tag("notice", plan.notice)
        store = TaskStore(tracking.task_store())
        executor = executor_for(device=torch_device(plan.settings["device"]), fresh_process=True)
        results = executor.run(plan.runs, store, trainer(progress=True), tracking.TaskRuns(
            summarise=lambda run, result: run_metrics(result), tags={"notice": plan.notice} if plan.notice else None))
        results = [{**result, "encoder": run.encoder.label, "task": run.task, "seed": run.seed}
                   for run, result in zip(plan.runs, results)]
        print(write_tables(results, RESULTS, TABLES, METRICS, plan.notice), flush=True)
        mlflow.log_artifacts(TABLES, artifact_path="glue")


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
