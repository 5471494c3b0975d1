"""Stage nextword: next-word prediction of every language model of ``benchmarks.models``.

Causal models: top-1 next-word accuracy (Brain-Score's Wikitext-accuracy) and perplexity; masked models:
pseudo-perplexity (pseudo-log-likelihood); on ``nextword.text`` (the project's story by default, any text
file such as WikiText-2's test split). Writes ``data/benchmarks/nextword.parquet`` and
``metrics/nextword.json``.
"""

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.benchmarks.nextword import NextWordTask, nextword_text, nextword_work, nextword_row  # noqa: E402
from brainalign.benchmarks.zoo import predicts_words  # noqa: E402
from brainalign.config.params import load_params, section  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.runs.engine import executor_for  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402

import pandas as pd  # noqa: E402


def main() -> None:
    params = load_params()
    values = section(params, "nextword", ["text", "max_words", "max_words_masked"])
    models = params["benchmarks"]["models"]
    with tracking.stage_run("nextword", {"nextword": values, "models": models}):
        text, source = nextword_text(values["text"])
        tasks = [NextWordTask(model, text, source, int(values["max_words"]), int(values["max_words_masked"]),
                              int(params["benchmarks"]["seed"]), int(params["benchmarks"]["max_length"]))
                 for model in models if predicts_words(model)]
        results = executor_for().run(tasks, TaskStore(tracking.task_store()), nextword_work(), tracking.TaskRuns(
            summarise=lambda task, result: {k: v for k, v in result["metrics"].items() if v is not None}))
        table = pd.DataFrame([nextword_row(task, result) for task, result in zip(tasks, results)])
        with atomic_path("data/benchmarks/nextword.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        write_json("metrics/nextword.json", {"text": source, **{row["model"]: {
            k: float(row[k]) for k in ("accuracy", "perplexity", "pseudo_perplexity") if pd.notna(row.get(k))}
            for row in table.to_dict(orient="records")}})
        mlflow.log_metric("n_models", len(tasks))
        mlflow.set_tag("nextword_text", source)
        print(table.to_string(index=False), flush=True)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
