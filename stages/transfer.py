"""Stage transfer: the transfer matrix between the GNet8r cores, and its asymmetry index.

Each ROI's GNet8r core frozen, new readouts trained for every ROI; entry (i, j) is the mean over ROI j's voxels
of the validation r with core i minus that with ROI j's own GNet8r (``brainalign.vision.transfer``). One task in
the task store, each entry checkpointed. Writes ``data/vision/transfer/``: ``matrix.csv``,
``per_participant.csv``, ``summary.json`` (the asymmetry index, pooled and per participant).
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import shutil  # noqa: E402

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.errors import InputError  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.runs.executors import LocalExecutor  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402
from brainalign.vision.experiment import read_data, tasks_for, transfer_work, vision_plan  # noqa: E402

OUT = "data/vision/transfer"


def main() -> None:
    plan = vision_plan(load_params())
    data = read_data(plan)
    planned = tasks_for(plan, data)
    task = planned["transfer"]
    with tracking.stage_run("transfer", {"vision": asdict(plan)}):
        store = TaskStore(tracking.task_store())
        missing = [t.label for t in planned["gnet8r"].values() if not store.is_done(t)]
        if missing:
            raise InputError(store.root, "gnet", f"the trained GNet8r cores {[t.label for t in planned['gnet8r'].values()]}",
                             f"{missing} not trained (run the gnet stage first: dvc repro transfer runs it)")
        result = LocalExecutor().run([task], store, transfer_work(plan, data, store), tracking.TaskRuns(
            summarise=lambda task, result: {"asymmetry": result["asymmetry"]}))[0]
        summary = {"asymmetry": result["asymmetry"], "asymmetry_per_participant": result["asymmetry_per_participant"],
                   "rois": list(task.rois), "epochs": int(plan.transfer["epochs"])}
        with atomic_path(OUT) as tmp:
            tmp.mkdir(parents=True)
            for name in ("matrix.csv", "per_participant.csv"):
                shutil.copyfile(store.directory(task) / name, tmp / name)
            write_json(tmp / "summary.json", summary)
        write_json("metrics/vision_transfer.json", summary)
        mlflow.log_metric("asymmetry", result["asymmetry"])


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
