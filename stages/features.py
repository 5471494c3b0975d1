"""Stage features@<dataset>: every layer of every model of `encoding.models` over the dataset's story.

Writes ``data/encoding/features/<dataset>/``: ``<model>.npy`` (n_layers + 1, n_words, width; layer 0 the
embeddings), ``words.parquet`` (the story the rows follow) and ``models.json`` (what each model is: trained
or not, causal or not, layers, width). Each model is a task of the store, keyed by the model, the words and
the extraction settings: datasets that read one story share it, and a model added later costs only itself.
"""

import json
import shutil

from brainalign.cli import begin_stage, exit_stage, guarded, stage_argument

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.data.prepared import read_prepared  # noqa: E402
from brainalign.encoding.settings import extraction_settings, story_of  # noqa: E402
from brainalign.encoding.tasks import FeatureTask, extract  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.runs.engine import executor_for  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402


def main() -> None:
    name = stage_argument("features")
    models, extraction = extraction_settings(load_params())
    prepared, out = f"data/prepared/{name}", f"data/encoding/features/{name}"
    with tracking.stage_run(f"features@{name}", {"encoding": {"models": models, **extraction.__dict__}}):
        words = story_of(prepared, read_prepared)
        tasks = [FeatureTask(model, tuple(words["word"]), extraction) for model in models]
        store = TaskStore(tracking.task_store())
        results = executor_for().run(tasks, store, lambda task, directory, on_epoch: extract(task, directory),
                                      tracking.TaskRuns(summarise=lambda task, result: {
                                          "n_layers": result["n_layers"], "width": result["width"]}))
        with atomic_path(out) as tmp:
            tmp.mkdir(parents=True)
            words.to_parquet(tmp / "words.parquet", index=False)
            for task in tasks:
                shutil.copyfile(store.directory(task) / "features.npy", tmp / f"{task.model}.npy")
            (tmp / "models.json").write_text(json.dumps(
                {task.model: {"key": task.key, **{k: v for k, v in result.items()
                                                  if k in ("description", "feature_space", "causal", "trained",
                                                           "n_layers", "width")}}
                 for task, result in zip(tasks, results)}, indent=2) + "\n")
        mlflow.log_metrics({"n_words": len(words), "n_models": len(tasks)})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
