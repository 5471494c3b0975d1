"""Stage vanilla: the frozen encoder with a linear [CLS] head per participant and fold (reference section 3).

The encoder's features come from the ``encode`` stage (one forward pass); only the head trains, with the
seed paper's optimiser and schedule. Each participant x fold is a nested MLflow run with its per-epoch
losses; the held-out predictions go to ``data/models/vanilla`` for the ``score`` stage.
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
from brainalign.cli import guarded  # noqa: E402
from brainalign.errors import InputError  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.params import field_names, load_params, section  # noqa: E402
from brainalign.prepared import prepared_subjects, read_prepared  # noqa: E402
from brainalign.training import Schedule, fit_head, predict  # noqa: E402

PREPARED, FEATURES, OUT = "data/prepared", "data/features", "data/models/vanilla"


def main() -> None:
    settings = section(load_params(), "vanilla", field_names(Schedule) + ["init_std", "seed"])
    schedule = Schedule(**{k: settings[k] for k in field_names(Schedule)})
    encoder = json.loads((Path(FEATURES) / "encoder.json").read_text())
    with tracking.stage_run("vanilla", {"vanilla": settings}), atomic_path(OUT) as tmp:
        subjects = prepared_subjects(PREPARED)
        tasks = [(s, f) for s in subjects for f in range(len(read_prepared(PREPARED, s).folds))]
        for subject, f in tqdm(tasks, desc="vanilla heads"):
            data = read_prepared(PREPARED, subject)
            fold = data.folds[f]
            x = np.load(Path(FEATURES) / f"{subject}.npy", allow_pickle=False)
            y = data.responses
            if x.shape[0] != y.shape[0]:
                raise InputError(Path(FEATURES) / f"{subject}.npy", "rows", f"{y.shape[0]} (one per example of "
                                 f"{PREPARED}/{subject})", f"{x.shape[0]}")
            card = {"model": "vanilla", "encoder": encoder["encoder"], "untrained_encoder": encoder["untrained"],
                    "subject": subject, "fold": fold.index, "heldout_run": fold.heldout_run,
                    "seed": settings["seed"], "epochs": schedule.epochs, "head": "linear [CLS] -> voxels"}
            with tracking.child_run(f"vanilla/{subject}/fold{fold.index}", params=card):
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
