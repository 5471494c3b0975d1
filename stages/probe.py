"""Stage probe: ridge probes from every layer of the encoder to every feature of the story's segments.

Reads the word entries of the first participant of ``probing.data`` (the release's ``subject_N.mat``; every
participant read the same story) and ``probing.features`` (``story_features.mat`` or a TSV), groups the words
of each TR into segments with their mean features, and probes each layer's mean-pooled states and attention
summaries (``probing.kinds``) for each feature, held out by run, with a within-run permutation null
(``brainalign.probing.probes``). Writes ``data/probing/probes/scores.parquet``.
"""

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

from dataclasses import asdict  # noqa: E402

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.probing.experiment import probe_model, probing_plan, read_recordings, story_segments  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402


def main() -> None:
    plan = probing_plan(load_params())
    recording = read_recordings(plan)[0]
    segments = story_segments(plan, recording)
    with tracking.stage_run("probe", {"probing": {k: v for k, v in asdict(plan).items() if k != "frem"}}):
        mlflow.log_metrics({"segments": len(segments), "features": len(segments.names)})
        scores = probe_model(segments, plan, TaskStore(tracking.task_store()), tracking.TaskRuns())
        with atomic_path("data/probing/probes/scores.parquet") as tmp:
            scores.to_parquet(tmp, index=False)
        mlflow.log_metrics({f"significant.{kind}": int(t["significant"].sum()) for kind, t in scores.groupby("kind")})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
