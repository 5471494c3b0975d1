"""Stage simulate_benchmarks: simulated twins of the Brain-Score language datasets, in their release formats.

Writes ``data/benchmarks/raw/<source>/`` (Pereira 2018 ``<participant>/examples_384sentences.mat``,
Fedorenko 2016 ``ECoG_g_lang_v3.mat`` + ``sentences.txt``, Blank 2014 fROI time courses, Natural Stories
``all_stories.tok`` + ``processed_RTs.tsv`` + ``processed_wordinfo.tsv``) and ``data/benchmarks/truth/<source>/``
(each channel's true ceiling, the generator and its layer, the readers' true reliability).
"""

from dataclasses import asdict

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.benchmarks.simulate import BenchmarkSimulation, simulate_benchmarks  # noqa: E402
from brainalign.config.params import field_names, load_params, section  # noqa: E402


def main() -> None:
    values = section(load_params(), "simulate_benchmarks", field_names(BenchmarkSimulation))
    settings = BenchmarkSimulation(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    with tracking.stage_run("simulate_benchmarks", {"simulate_benchmarks": asdict(settings)}):
        written = simulate_benchmarks("data/benchmarks/raw", "data/benchmarks/truth", settings)
        mlflow.log_metric("n_datasets", len(written))


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
