"""Stage prepare@<dataset>: trim, detrend and z-score within run, build word windows, write folds.

The prepared splits are checked by their own suite before anything is written.
"""


from brainalign.cli import begin_stage, exit_stage, guarded, stage_argument

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import dataset, load_params, section  # noqa: E402
from brainalign.data.datasets import read_dataset  # noqa: E402
from brainalign.data.prepared import prepare_recording, write_prepared  # noqa: E402
from brainalign.data.validation import validate_prepared  # noqa: E402


def main() -> None:
    name = stage_argument("prepare")
    params = load_params()
    data = dataset(params, name)
    settings = section(params, "prepare", ["drop_start_trs", "drop_end_trs", "window_span", "window_min_lead"])
    out = f"data/prepared/{name}"
    with tracking.stage_run(f"prepare@{name}", {"dataset": data, "prepare": settings}):
        prepared = [prepare_recording(rec, drop_start=settings["drop_start_trs"], drop_end=settings["drop_end_trs"],
                                      span=settings["window_span"], min_lead=settings["window_min_lead"])
                    for rec in read_dataset(data["source"], data["path"], data["participants"])]
        report = validate_prepared(prepared, out)
        mlflow.log_dict(report.to_dict(), "prepared_validation.json")
        mlflow.log_metric("validation_success", float(report.success))
        report.raise_for_failure()  # the failure's message is the report
        write_prepared(prepared, out, report=report.to_dict())
        for p in prepared:
            mlflow.log_metrics({f"examples.{p.subject}": len(p.examples), f"channels.{p.subject}": p.responses.shape[1]})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
