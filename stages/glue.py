"""Stage glue: do brain-tuned encoders keep their language skills? (the paper's Table 1)

Fine-tunes every encoder `glue.encoders` names on every task in `glue.tasks`, once per seed, and scores
each dev set with the task's metric. `glue.data: sample` uses the embedded GLUE-format sample (written
to data/glue/sample; not GLUE, and every output says so); a directory in the GLUE release layout or a
Hugging Face hub cache holding nyu-mll/glue gives real scores. Each run is an MLflow run nested under
the stage's; finished runs are reused from the task store and interrupted ones resume.
"""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.errors import ConfigError  # noqa: E402
from brainalign.files import atomic_path, write_json  # noqa: E402
from brainalign.nlu.glue import glue_task  # noqa: E402
from brainalign.nlu.finetune import POOLINGS, GlueSettings  # noqa: E402
from brainalign.nlu.runs import GlueRun, encoder_choices, execute  # noqa: E402
from brainalign.nlu.sample import NOTICE, SAMPLE_TASKS, write_sample  # noqa: E402
from brainalign.nlu.table import dvc_metrics, long_results, markdown, table1  # noqa: E402
from brainalign.finetuning.grid import grid_from_params  # noqa: E402
from brainalign.config.params import load_params, section  # noqa: E402
from brainalign.finetuning.tasks import torch_device  # noqa: E402

SAMPLE, RESULTS, TABLES, METRICS = "data/glue/sample", "data/glue/results.parquet", "reports/glue", "metrics/glue.json"
KEYS = ["data", "tasks", "encoders", "seeds", "max_train", "max_dev", "sample", "learning_rate",
        "batch_size", "epochs", "max_length", "warmup_fraction", "weight_decay", "dropout", "pooling", "device"]


def main() -> None:
    params = load_params()
    settings = section(params, "glue", KEYS)
    if settings["pooling"] not in POOLINGS:
        raise ConfigError(f"params.yaml: glue.pooling: expected one of {', '.join(POOLINGS)}, "
                          f"found {settings['pooling']!r}")
    tasks = [glue_task(t).name for t in settings["tasks"]]
    sample = settings["data"] == "sample"
    if sample:
        unknown = [t for t in tasks if t not in SAMPLE_TASKS]
        if unknown:
            raise ConfigError(f"params.yaml: glue.tasks: the embedded sample has {', '.join(SAMPLE_TASKS)}; "
                              f"{', '.join(unknown)} need(s) real GLUE data (glue.data: a directory)")
    # Always written (it is tiny), so the stage's outputs do not depend on which data it reads.
    sample_settings = section({"glue.sample": settings["sample"]}, "glue.sample", ["train", "dev", "learning_rate", "epochs"])
    write_sample(SAMPLE, sample_settings["train"], sample_settings["dev"])
    if sample:
        data = SAMPLE
        settings = {**settings, "learning_rate": sample_settings["learning_rate"], "epochs": sample_settings["epochs"]}
    else:
        data = str(Path(settings["data"]).expanduser())
        if not Path(data).is_dir():
            raise ConfigError(f"params.yaml: glue.data: expected 'sample', a GLUE release directory or a hub "
                              f"cache holding nyu-mll/glue, found {settings['data']!r} (no such directory)")
    hyper = GlueSettings(learning_rate=settings["learning_rate"], batch_size=settings["batch_size"],
                         epochs=settings["epochs"], max_length=settings["max_length"],
                         warmup_fraction=settings["warmup_fraction"], weight_decay=settings["weight_decay"],
                         dropout=settings["dropout"], pooling=settings["pooling"])
    encoders = encoder_choices(settings["encoders"], grid_from_params(params).encoder)
    device = torch_device(settings["device"])
    runs = [GlueRun(encoder, task, int(seed), data, hyper, settings["max_train"], settings["max_dev"], device)
            for encoder in encoders for task in tasks for seed in settings["seeds"]]
    notice = NOTICE if sample else None
    with tracking.stage_run("glue", {"glue": settings}):
        if notice:
            mlflow.set_tag("notice", notice)
        store, results = tracking.task_store(), []
        for number, run in enumerate(runs, 1):
            key = run.key
            done = (store / "glue" / key / "result.json").exists()
            print(f"glue {number}/{len(runs)}: {run.label}{' (reused)' if done else ''}", flush=True)
            params_logged = {"task": run.task, "encoder": run.encoder.label, "encoder_base": run.encoder.base,
                             "encoder_weights": run.encoder.weights or "", "seed": run.seed, "data": data,
                             "max_train": run.max_train, "max_dev": run.max_dev, "device": device,
                             **vars(hyper)}
            tags = {"glue_key": key, "task": run.task, "encoder": run.encoder.label, **({"notice": notice} if notice else {})}
            with tracking.child_run(run.label, params_logged, tags):
                spec = run.spec
                mlflow.set_tags({f"input_md5.{name}": digest for name, digest in spec["data_md5"].items()})
                if spec["encoder_weights_md5"]:
                    mlflow.set_tag("input_md5.encoder_weights", spec["encoder_weights_md5"])
                # Epochs replayed from a checkpoint are logged too, so a resumed run's history is whole.
                result = execute(run, store, progress=True, on_epoch=lambda r: tracking.log_history(
                    [{k: v for k, v in r.items() if k != "replayed"}]))
                if result["outcome"] == "reused":
                    tracking.log_history(result["history"])
                mlflow.set_tag("outcome", result["outcome"])
                for split, values in result["metrics"].items():
                    mlflow.log_metrics({f"{split}.{metric}": value for metric, value in values.items()})
                    mlflow.log_metrics({f"{split}.majority.{metric}": value
                                        for metric, value in result["majority"][split].items()})
                mlflow.log_metrics({"wall_seconds": result["seconds"], "n_train": result["n_train"],
                                    "examples_per_second": result["examples_per_second"]})
            results.append({**result, "encoder": run.encoder.label, "task": run.task, "seed": run.seed})
        long = long_results(results)
        with atomic_path(RESULTS) as tmp:
            long.to_parquet(tmp, index=False)
        table = table1(long, paper=not sample)
        Path(TABLES).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(TABLES) / "table1.csv") as tmp:
            table.to_csv(tmp, float_format="%.4f")
        with atomic_path(Path(TABLES) / "table1.md") as tmp:
            tmp.write_text(markdown(table, notice))
        write_json(METRICS, dvc_metrics(table, notice))
        mlflow.log_artifacts(TABLES, artifact_path="glue")
        print(markdown(table, notice), flush=True)


if __name__ == "__main__":
    raise SystemExit(guarded(main))
