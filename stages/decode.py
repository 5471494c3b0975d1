"""Stage decode: brain images decoded into every checkpoint's sentence space (Gauthier & Levy 2019).

Reads the Pereira 2018 images at ``decoding.data`` (the release's ``<participant>/examples_384sentences.mat``;
by default the simulated ones) and the exported trajectories (``data/decoding/trajectories/<name>``). Encodes the
stimulus sentences at the pretrained encoder and every checkpoint, decodes each participant's images into each
checkpoint's space (PCA, centring and the ridge penalty fitted inside the training folds only, unless
``leaky_pca``), ranks the true sentences, and compares representations (RSA) and each trajectory's final
checkpoint with the pretrained encoder (Wilcoxon, Benjamini-Hochberg).

Writes ``data/decoding/scores/`` (``scores.parquet``, ``ranks.parquet``, ``tests.csv``, ``rsa.csv``,
``summary.json``) and ``metrics/decoding.json``.
"""

from brainalign.cli import begin_stage, exit_stage, guarded

begin_stage()

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params  # noqa: E402
from brainalign.data.pereira import read_pereira2018  # noqa: E402
from brainalign.decoding.experiment import (  # noqa: E402
    decode_participants,
    decoding_tables,
    encode_checkpoints,
    images_md5,
    observer_summary,
    trajectory_checkpoints,
    write_tables,
)
from brainalign.decoding.settings import decoding_plan  # noqa: E402
from brainalign.files import write_json  # noqa: E402
from brainalign.finetuning.tasks import torch_device  # noqa: E402
from brainalign.runs.store import TaskStore  # noqa: E402


def main() -> None:
    plan = decoding_plan(load_params())
    names = list(plan.trajectories)
    data = read_pereira2018(plan.data, plan.experiment, plan.atlases)
    sentences = data.stimuli["text"].tolist()
    with tracking.stage_run("decode", {"decoding": {"encoder": plan.encoder, "data": plan.data,
                                                    "layer": plan.layer, "pooling": plan.pooling,
                                                    "trajectories": names, **plan.decoder.__dict__}}):
        mlflow.set_tag("input_md5.decoding_images", images_md5(data.responses))
        mlflow.set_tag("leaky_pca", str(plan.decoder.leaky_pca))
        store = TaskStore(tracking.task_store())
        checkpoints = trajectory_checkpoints("data/decoding/trajectories", names)
        tasks, encodings = encode_checkpoints(checkpoints, plan.encoder, sentences, plan.layer, plan.pooling, store,
                                              torch_device(plan.device))
        decoded = decode_participants(data, encodings, tasks, plan.decoder, store,
                                      tracking.TaskRuns(summarise=observer_summary))
        tables = decoding_tables(data, checkpoints, encodings, decoded, names, plan.decoder)
        write_tables(tables, "data/decoding/scores")
        summary = tables.summary
        write_json("metrics/decoding.json", {"chance_mar": summary["chance_mar"],
                                             "pretrained_mar": summary["pretrained_mar"],
                                             "final_mar": summary["final_mar"], "leaky_pca": summary["leaky_pca"]})
        mlflow.log_metrics({"pretrained_mar": summary["pretrained_mar"], "chance_mar": summary["chance_mar"],
                            **{f"final_mar.{t}": v for t, v in summary["final_mar"].items()}})
        print(tables.tests.to_string(index=False), flush=True)


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
