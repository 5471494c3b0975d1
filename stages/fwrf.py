"""Stage fwrf: a feature-weighted receptive field model per participant, scored on the shared images.

Feature maps of ``vision.network`` (untrained, or the user's local weights: said in every output); per voxel a
Gaussian pRF and a ridge penalty chosen on the last training trials (``brainalign.vision.fwrf``); one task per
participant in the task store. Writes ``data/vision/fwrf/``: ``scores.parquet`` (rows of the one score table),
``prf.parquet`` (each voxel's pRF, with the simulated truth beside it when there is one), ``summary.json``.
"""

from dataclasses import asdict
from pathlib import Path

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
    fwrf_work,
    read_data,
    roi_summary,
    score_rows,
    tasks_for,
    vision_plan,
)
from brainalign.vision.simulate import TRUTH_FILE, read_truth, voxel_truth  # noqa: E402

OUT = "data/vision/fwrf"


def main() -> None:
    plan = vision_plan(load_params())
    data = read_data(plan)
    tasks = tasks_for(plan, data)["fwrf"]
    with tracking.stage_run("fwrf", {"vision": asdict(plan)}):
        store = TaskStore(tracking.task_store())
        results = executor(plan).run(tasks, store, fwrf_work(plan, data), tracking.TaskRuns(
            summarise=lambda task, result: {"median_r": result["median_r"]}))
        truth = read_truth(plan.data) if (Path(plan.data) / TRUTH_FILE).exists() else None
        scores, prfs = [], []
        for task, recording in zip(tasks, data.recordings):
            directory = store.directory(task)
            predictions = np.load(directory / "predictions.npy", allow_pickle=False)
            scores.append(score_rows("fwrf", plan, recording, predictions))
            with np.load(directory / "prf.npz", allow_pickle=False) as prf:
                frame = pd.DataFrame({"subject": str(recording.subject), "voxel": np.arange(len(recording.rois)),
                                      "roi": recording.rois, "prf_x": prf["prf"][:, 0], "prf_y": prf["prf"][:, 1],
                                      "prf_sigma": prf["prf"][:, 2], "alpha": prf["alpha"],
                                      "holdout_r": prf["holdout_r"]})
            if truth is not None:
                true = voxel_truth(truth, recording.subject, recording.voxels)
                frame = frame.assign(true_x=true["prf_x"], true_y=true["prf_y"], true_sigma=true["prf_sigma"])
            prfs.append(frame)
        scores, prfs = pd.concat(scores, ignore_index=True), pd.concat(prfs, ignore_index=True)
        summary = {"data": plan.data, "network": plan.network, "provenance": results[0]["provenance"],
                   "n_candidates": results[0]["n_candidates"],
                   "median_r": {row.roi: float(row.pearson_r) for row in
                                roi_summary(scores).groupby("roi", sort=False)["pearson_r"].median().reset_index()
                                .itertuples()}}
        if truth is not None:
            known = prfs.dropna(subset=["true_x"])
            summary["prf_centre_r"] = {axis: float(np.corrcoef(known[f"prf_{axis}"], known[f"true_{axis}"])[0, 1])
                                       for axis in ("x", "y")}
        with atomic_path(OUT) as tmp:
            tmp.mkdir(parents=True)
            scores.to_parquet(tmp / "scores.parquet", index=False)
            prfs.to_parquet(tmp / "prf.parquet", index=False)
            write_json(tmp / "summary.json", summary)
        write_json("metrics/vision_fwrf.json", summary)
        mlflow.log_metrics({f"median_r.{roi}": v for roi, v in summary["median_r"].items()})
        mlflow.set_tag("network_provenance", summary["provenance"])


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
