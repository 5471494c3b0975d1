"""Stage gnet: GNet8j (one core over V1-hV4, a readout per participant) and GNet8r (one core per ROI).

Trained from the images and the brain data of every participant at once, batches from one participant at a
time, the epoch chosen on the last training trials (``brainalign.vision.gnet``); one task each in the task
store, checkpointed after every epoch (an interrupted stage resumes) and logged to MLflow per epoch. Writes
``data/vision/gnet/``: ``scores.parquet`` (rows of the one score table, models ``gnet8j`` and ``gnet8r``),
``history.parquet`` (every epoch of every model) and ``summary.json``.
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402
from brainalign.vision.experiment import (  # noqa: E402
    executor,
    gnet_participants,
    gnet_work,
    read_data,
    roi_summary,
    score_rows,
    tasks_for,
    vision_plan,
)
from brainalign.vision.gnet import load_gnet, predict  # noqa: E402

OUT = "data/vision/gnet"


def main() -> None:
    plan = vision_plan(load_params())
    data = read_data(plan)
    planned = tasks_for(plan, data)
    tasks = [planned["gnet8j"], *planned["gnet8r"].values()]
    with tracking.stage_run("gnet", {"vision": asdict(plan)}):
        store = TaskStore(tracking.task_store())
        results = executor(plan).run(tasks, store, gnet_work(plan, data), tracking.TaskRuns(
            summarise=lambda task, result: {"best_epoch": result["best_epoch"]}))
        scores, history = [], []
        for task, result in zip(tasks, results):
            model = load_gnet(store.directory(task) / "gnet.safetensors")
            name = "gnet8j" if task.roi is None else "gnet8r"
            for recording, participant in zip(data.recordings, gnet_participants(data, task.roi, "validation")):
                unique, inverse = np.unique(participant.image_index, return_inverse=True)
                predictions = predict(model.model, data.images[unique], participant.name)[inverse]
                voxels = None if task.roi is None else recording.rois == task.roi
                scores.append(score_rows(name, plan, recording, predictions, voxels, seed=int(plan.gnet["seed"])))
            history.append(pd.DataFrame(result["history"]).assign(model=task.label))
        scores = pd.concat(scores, ignore_index=True)
        medians = roi_summary(scores).groupby(["model", "roi"], sort=False)["pearson_r"].median()
        summary = {"provenance": results[0]["provenance"],
                   "best_epoch": {t.label: r["best_epoch"] for t, r in zip(tasks, results)},
                   "median_r": {model: {roi: float(v) for (m, roi), v in medians.items() if m == model}
                                for model in ("gnet8j", "gnet8r")}}
        with atomic_path(OUT) as tmp:
            tmp.mkdir(parents=True)
            scores.to_parquet(tmp / "scores.parquet", index=False)
            pd.concat(history, ignore_index=True).to_parquet(tmp / "history.parquet", index=False)
            write_json(tmp / "summary.json", summary)
        write_json("metrics/vision_gnet.json", summary)
        mlflow.log_metrics({f"{model}.median_r.{roi}": v for model, rois in summary["median_r"].items()
                            for roi, v in rois.items()})
        mlflow.set_tag("network_provenance", summary["provenance"])


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
