"""Stage prepare: trim, detrend and z-score within run, build word windows, write leave-one-run-out folds."""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.params import DATASET_KEYS, load_params, section  # noqa: E402
from brainalign.prepared import prepare_recording, write_prepared  # noqa: E402
from brainalign.recordings import read_dataset  # noqa: E402

OUT = "data/prepared"


def main() -> None:
    params = load_params()
    dataset = section(params, "dataset", DATASET_KEYS)
    settings = section(params, "prepare", ["drop_start_trs", "drop_end_trs", "window_span", "window_min_lead"])
    with tracking.stage_run("prepare", {"dataset": dataset, "prepare": settings}):
        prepared = [prepare_recording(rec, drop_start=settings["drop_start_trs"], drop_end=settings["drop_end_trs"],
                                      span=settings["window_span"], min_lead=settings["window_min_lead"])
                    for rec in read_dataset(dataset["source"], dataset["path"])]
        write_prepared(prepared, OUT)
        for p in prepared:
            mlflow.log_metrics({f"examples.{p.subject}": len(p.examples), f"channels.{p.subject}": p.responses.shape[1]})


if __name__ == "__main__":
    raise SystemExit(guarded(main))
