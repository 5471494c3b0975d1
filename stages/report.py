"""Stage report: every figure (with the CSV of its numbers), the comparison statistics, and one static HTML
report (`reports/index.html`) holding the configuration, the score summary, the figures and the MLflow run ids.
What is drawn and how it is captioned lives in :mod:`brainalign.report.pages`."""


from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.report.pages import (  # noqa: E402
    FIGURES,
    REPORT,
    pipeline_stages,
    report_settings,
    write_figures,
    write_page,
)


def main() -> None:
    params = load_params()
    settings = report_settings(params)
    with tracking.stage_run("report", {"report": settings}):
        shown, tests = write_figures(params, settings)
        write_page(params, shown, tests, runs=tracking.stage_runs(pipeline_stages(params)))
        mlflow.log_artifacts(FIGURES, artifact_path="figures")
        mlflow.log_artifact(REPORT)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
