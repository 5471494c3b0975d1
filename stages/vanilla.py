"""Stage vanilla@<dataset>: the frozen encoder with a linear head per participant and fold (reference §3).

The encoder's features come from the ``encode`` stage (one forward pass): the window's ``[CLS]`` for
fMRI, a content word's first piece with its length and log-probability for MEG. Only the head trains,
with the seed paper's optimiser and schedule. Each participant x fold is a nested MLflow run with its
per-epoch losses; the held-out predictions go to ``data/models/vanilla/<dataset>`` for ``score``.
"""

import json
import time
from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.checkpoints import fold_dir, write_fold  # noqa: E402
from brainalign.cli import guarded, stage_argument  # noqa: E402
from brainalign.errors import InputError  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.params import field_names, load_params, section  # noqa: E402
from brainalign.prepared import prepared_subjects, read_prepared  # noqa: E402
from brainalign.training import Schedule, fit_head, predict  # noqa: E402

HEADS = {"fmri": "linear [CLS] -> voxels", "meg": "linear (first piece, length, log-probability) -> sensors x bins"}


def main() -> None:
    name = stage_argument("vanilla")
    prepared, features, out = f"data/prepared/{name}", f"data/features/{name}", f"data/models/vanilla/{name}"
    settings = section(load_params(), "vanilla", field_names(Schedule) + ["init_std", "seed"])
    schedule = Schedule(**{k: settings[k] for k in field_names(Schedule)})
    encoder = json.loads((Path(features) / "encoder.json").read_text())
    with tracking.stage_run(f"vanilla@{name}", {"vanilla": settings}), atomic_path(out) as tmp:
        subjects = prepared_subjects(prepared)
        tasks = [(s, f) for s in subjects for f in range(len(read_prepared(prepared, s).folds))]
        for subject, f in tqdm(tasks, desc="vanilla heads"):
            data = read_prepared(prepared, subject)
            fold = data.folds[f]
            x = np.load(Path(features) / f"{subject}.npy", allow_pickle=False)
            y = data.responses
            if x.shape[0] != y.shape[0]:
                raise InputError(Path(features) / f"{subject}.npy", "rows", f"{y.shape[0]} (one per example of "
                                 f"{prepared}/{subject})", f"{x.shape[0]}")
            card = {"model": "vanilla", "dataset": name, "encoder": encoder["encoder"],
                    "untrained_encoder": encoder["untrained"], "subject": subject, "fold": fold.index,
                    "heldout_run": fold.heldout_run, "seed": settings["seed"], "epochs": schedule.epochs,
                    "head": HEADS[encoder["modality"]]}
            with tracking.child_run(f"vanilla/{name}/{subject}/fold{fold.index}", params=card):
                started = time.perf_counter()
                head, history = fit_head(x[fold.train], y[fold.train], schedule, seed=settings["seed"],
                                         val_x=x[fold.test], val_y=y[fold.test], init_std=settings["init_std"])
                seconds = time.perf_counter() - started
                tracking.log_history(history)
                mlflow.log_metrics({"wall_seconds": seconds,
                                    "examples_per_second": len(fold.train) * schedule.epochs / seconds,
                                    "final_train_loss": history[-1]["train_loss"],
                                    "final_val_loss": history[-1]["val_loss"]})
                predictions = predict(head, x[fold.test]).numpy()
                write_fold(fold_dir(tmp, subject, fold.index), head.state_dict(), predictions, card)


if __name__ == "__main__":
    raise SystemExit(guarded(main))
