"""Stage transfer: the transfer matrix between the GNet8r cores, and its asymmetry index.

Each ROI's GNet8r core frozen, new readouts trained for every ROI; entry (i, j) is the mean over ROI j's voxels
of the validation r with core i minus that with ROI j's own GNet8r (``brainalign.vision.transfer``). One task per
source core (a row of the matrix) in the task store, run by the engine like any grid, each training checkpointed.
Writes ``data/vision/transfer/``: ``matrix.csv``, ``per_participant.csv``, ``summary.json`` (the asymmetry index,
pooled and per participant).
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.errors import InputError  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402
from brainalign.vision.experiment import (executor, read_data, tasks_for, transfer_matrix_of,  # noqa: E402
                                          transfer_work, vision_plan)
from brainalign.vision.transfer import ORDER, asymmetry_index  # noqa: E402

OUT = "data/vision/transfer"


def main() -> None:
    plan = vision_plan(load_params())
    data = read_data(plan)
    planned = tasks_for(plan, data)
    rows = planned["transfer"]
    with tracking.stage_run("transfer", {"vision": asdict(plan)}):
        store = TaskStore(tracking.task_store())
        missing = [t.label for t in planned["gnet8r"].values() if not store.is_done(t)]
        if missing:
            raise InputError(store.root, "gnet", f"the trained GNet8r cores {[t.label for t in planned['gnet8r'].values()]}",
                             f"{missing} not trained (run the gnet stage first: dvc repro transfer runs it)")
        executor(plan).run(list(rows.values()), store, transfer_work(plan, data, store), tracking.TaskRuns())
        matrix, per_participant = transfer_matrix_of(plan, data, store, rows, planned["gnet8r"])
        order = [r for r in ORDER if r in rows]
        summary = {"asymmetry": asymmetry_index(matrix, order),
                   "asymmetry_per_participant": {name: asymmetry_index(m, order) for name, m in per_participant.items()},
                   "rois": list(rows), "epochs": int(plan.transfer["epochs"])}
        with atomic_path(OUT) as tmp:
            tmp.mkdir(parents=True)
            matrix.to_csv(tmp / "matrix.csv")
            pd.concat([m.assign(participant=name) for name, m in per_participant.items()]).to_csv(
                tmp / "per_participant.csv")
            write_json(tmp / "summary.json", summary)
        write_json("metrics/vision_transfer.json", summary)
        mlflow.log_metric("asymmetry", summary["asymmetry"])


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
