"""Stage validate@<dataset>: great-expectations checks of one dataset's raw recordings.

A failure stops the pipeline with a report naming the file, the check and the offending values.
"""


from brainalign.cli import begin_stage, exit_stage, guarded, stage_argument

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import dataset, load_params, section  # noqa: E402
from brainalign.data.datasets import read_dataset  # noqa: E402
from brainalign.data.validation import validate_recordings  # noqa: E402
from brainalign.files import write_json  # noqa: E402


def main() -> None:
    name = stage_argument("validate")
    params = load_params()
    data = dataset(params, name)
    settings = section(params, "validate", ["tr_tolerance"])
    with tracking.stage_run(f"validate@{name}", {"dataset": data, "validate": settings}):
        recordings = read_dataset(data["source"], data["path"], data["participants"])
        report = validate_recordings(recordings, runs=list(data["runs"]),
                                     tr=None if data["tr"] is None else float(data["tr"]),
                                     tr_tolerance=float(settings["tr_tolerance"]))
        mlflow.log_dict(report.to_dict(), "validation.json")
        mlflow.log_metrics({"validation_success": float(report.success),
                            "failed_checks": float(len(report.failures()))})
        report.raise_for_failure()  # the failure's message is the report
        print(report.summary())
        write_json(f"data/validation/{name}.json", report.to_dict())


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
