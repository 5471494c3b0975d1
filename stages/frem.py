"""Stage frem: the story's features decoded from each region of each participant with FReM, held out by run.

For every participant of ``probing.data``, region of ``probing.regions`` (the recording's own atlas:
``colToROInum`` / ``ROInumToName``) and feature of ``probing.frem_features``: nilearn's FREMRegressor (ridge) for
a continuous feature or FREMClassifier for a binary one, every run held out once, against a dummy decoder,
with a circular-shift null (``brainalign.probing.frem``). One task each, run in ``probing.workers`` processes
and kept in the task store, so an interrupted stage resumes. Writes ``data/probing/frem/scores.parquet``.
"""

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

from dataclasses import asdict  # noqa: E402

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.probing.experiment import decode_brain, probing_plan, read_recordings, story_segments  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402


def summarise(task, result: dict) -> dict[str, float]:
    return {"score": result["score"], "dummy_score": result["dummy_score"], "gain": result["gain"],
            "p_value": result["p_value"]}


def main() -> None:
    plan = probing_plan(load_params())
    recordings = read_recordings(plan)
    segments = story_segments(plan, recordings[0])
    with tracking.stage_run("frem", {"probing": asdict(plan)}):
        scores = decode_brain(recordings, segments, plan, TaskStore(tracking.task_store()),
                              tracking.TaskRuns(summarise=summarise))
        with atomic_path("data/probing/frem/scores.parquet") as tmp:
            scores.to_parquet(tmp, index=False)
        mlflow.log_metrics({"pairs": len(scores), "median_gain": float(scores["gain"].median())})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
