"""What every model's grid shares: the ``models`` settings, the :class:`Grid` tasks are built on, the
held-out summary logged per task, and the export of finished tasks into the files ``score`` reads.

The models themselves are recipes (:mod:`brainalign.finetuning.recipes`, one module each; reference
section 3, epochs as ``head`` + ``full`` phases):

============================  =========================================================================
vanilla                       per participant: heads only (the encoder frozen)
finetuned                     per participant: head epochs, then full epochs
participant_transfer          fine-tune on the most predictable participant (head + full), then a new
                              head per other participant on the frozen encoder
meg_transfer                  fine-tune on all MEG participants at once (head + full), then per fMRI
                              participant (head + full) from that encoder
joint                         one model, heads for every MEG and fMRI participant (head + full)
============================  =========================================================================

Every model is trained once per held-out run and seed. A seed fixes the heads' initialisation, the data
order and dropout, so the two models of a comparison start from the same parameters.

Files for ``score`` (``data/models/<model>/``)::

    <dataset>/<subject>/fold<k>/seed<s>/predictions.npy   held-out predictions
    <dataset>/<subject>/fold<k>/seed<s>/card.json         what they are, and where the weights are
    checkpoints/<task>.safetensors, checkpoints/<task>.json   the final weights of each task and its card
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brainalign.config.params import section
from brainalign.data.prepared import prepared_dataset, prepared_subjects, read_prepared
from brainalign.errors import ConfigError
from brainalign.files import atomic_path, link_or_copy
from brainalign.finetuning.tasks import Task, read_task_predictions, torch_device, with_inputs
from brainalign.metrics.kvsk import draw_kvsk, kvsk_accuracy
from brainalign.runs.store import TaskStore

# The ``models`` section, shared by every recipe. Presets fill its null keys (and each recipe's, from
# the recipe's own ``presets``): ``default`` fits `make run` on 2 CPU cores; ``paper`` is the reference's
# schedule (run it with the paper simulation and a BERT-base-sized encoder: docs/finetuning.md).
MODELS_KEYS = ["preset", "fmri", "meg", "seeds", "heldout_runs", "batch_size", "learning_rate", "warmup_fraction",
               "weight_decay", "decay_all", "init_std", "device", "precision", "checkpoint_every"]
MODELS_PRESETS: dict[str, dict] = {"default": {"seeds": [0]}, "paper": {"seeds": list(range(10))}}


def models_settings(params: dict) -> dict:
    """The ``models`` section with its null keys filled from ``models.preset``."""
    values = dict(section(params, "models", MODELS_KEYS))
    preset = values["preset"]
    if preset not in MODELS_PRESETS:
        raise ConfigError(f"params.yaml: models.preset: expected one of {sorted(MODELS_PRESETS)}, found {preset!r}")
    for key, value in values.items():
        if value is None:
            if key not in MODELS_PRESETS[preset]:
                raise ConfigError(f"params.yaml: models.{key}: null, and preset {preset!r} has no value for it")
            values[key] = MODELS_PRESETS[preset][key]
    if not isinstance(values["seeds"], list) or not values["seeds"] or \
            not all(isinstance(s, int) for s in values["seeds"]):
        raise ConfigError(f"params.yaml: models.seeds: expected a list of integers, found {values['seeds']!r}")
    if values["precision"] not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"params.yaml: models.precision: expected auto, fp32 or bf16, found {values['precision']!r}")
    every = values["checkpoint_every"]
    if isinstance(every, bool) or not isinstance(every, (int, float)) or every < 0:
        raise ConfigError(f"params.yaml: models.checkpoint_every: expected seconds (a number, 0 or more), "
                          f"found {every!r}")
    return values


def runtime(models: dict) -> dict:
    """The device and numerics tasks run with (part of every task's key)."""
    device = torch_device(models["device"])
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"params.yaml: models.device: {models['device']!r}, but no GPU is visible")
    bf16 = models["precision"] == "bf16" or (models["precision"] == "auto" and device.startswith("cuda")
                                             and torch.cuda.is_bf16_supported())
    if bf16 and not device.startswith("cuda"):
        raise ConfigError("params.yaml: models.precision: bf16 needs a GPU here (on CPU it only slows training)")
    return {"device": device, "bf16": bf16}


@dataclass
class Grid:
    """What every builder needs: settings, where the data are, and the base encoder."""

    models: dict
    encoder: dict
    prepared_root: Path = Path("data/prepared")
    features_root: Path = Path("data/features")

    @property
    def optimisation(self) -> dict:
        return {k: self.models[k] for k in ("batch_size", "learning_rate", "warmup_fraction", "weight_decay",
                                            "decay_all", "init_std")}

    def subjects(self, dataset: str) -> list[str]:
        return prepared_subjects(self.prepared_root / dataset)

    def runs(self, dataset: str) -> list[int]:
        """The held-out runs trained: ``models.heldout_runs`` or every fold of the dataset."""
        first = read_prepared(self.prepared_root / dataset, self.subjects(dataset)[0])
        available = [f.heldout_run for f in first.folds]
        wanted = self.models["heldout_runs"]
        if wanted == "all":
            return available
        if not isinstance(wanted, list) or any(r not in available for r in wanted):
            raise ConfigError(f"params.yaml: models.heldout_runs: expected 'all' or a list of runs among "
                              f"{available}, found {wanted!r}")
        return list(wanted)

    def modality(self, dataset: str) -> str:
        return prepared_dataset(self.prepared_root / dataset)["modality"]

    def task(self, model: str, label: str, heads: list[tuple[str, str]], run: int, seed: int,
             phases: list[list], source: Task | None = None) -> Task:
        task = Task(model=model, label=label, encoder={"task": source.id} if source else dict(self.encoder),
                    heads=[{"dataset": d, "subject": s} for d, s in heads], heldout_run=int(run), seed=int(seed),
                    phases=[[k, int(e)] for k, e in phases if int(e) > 0], optimisation=self.optimisation,
                    runtime=runtime(self.models))
        return with_inputs(task, self.prepared_root, self.features_root)


def grid_from_params(params: dict) -> Grid:
    """The grid of ``params.yaml``: the ``models`` section (preset applied) and the ``encode`` encoder."""
    encode = section(params, "encode")
    return Grid(models=models_settings(params),
                encoder={"name": encode["encoder"], "untrained": bool(encode["untrained"]), "seed": int(encode["seed"])})


def heldout_summary(task: Task, store: str | os.PathLike, grid: Grid, k: int = 20, n_draws: int = 200) -> dict:
    """The held-out 20 vs 20 summary logged with each task: per head, mean accuracy over all channels and
    over its best tenth (a quick look: ``score`` computes the full 1000-draw table)."""
    summary = {}
    for head in task.heads:
        dataset, subject = head["dataset"], head["subject"]
        data = read_prepared(grid.prepared_root / dataset, subject)
        fold = next(f for f in data.folds if f.heldout_run == task.heldout_run)
        y_true = data.responses[fold.test]
        targets, distractors = draw_kvsk(len(fold.test), k, n_draws, np.random.default_rng(0))
        accuracy = kvsk_accuracy(y_true, read_task_predictions(store, task, dataset, subject), targets, distractors)
        best = np.sort(accuracy)[::-1][: max(1, len(accuracy) // 10)]
        summary[f"heldout_accuracy/{dataset}/{subject}"] = float(accuracy.mean())
        summary[f"heldout_accuracy_top10pct/{dataset}/{subject}"] = float(best.mean())
    return summary


def export(tasks: list[Task], store: str | os.PathLike, out: str | os.PathLike, dataset: str | None = None,
           prepared_root: str | os.PathLike = "data/prepared") -> None:
    """Write ``out`` (``data/models/<model>``) from the finished tasks, atomically.

    Predictions are written per dataset, participant, held-out run and seed; weights are hard-linked
    from the store (copied where links are impossible) under ``checkpoints/``. With ``dataset``, ``out``
    is that dataset's directory (``data/models/vanilla/<dataset>``) and holds the participants directly.
    """
    only, tasks_store = dataset, TaskStore(store)
    checkpoints = {t.id: Path("checkpoints") / f"{t.label.replace('/', '_')}.safetensors" for t in tasks}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for task in tasks:
            directory = tasks_store.directory(task)
            result = tasks_store.read_result(task)
            checkpoint = checkpoints[task.id]
            encoder_from = result.get("encoder_from")
            card = {"model": task.model, "task": task.label, "key": task.key, "encoder": result["base_encoder"],
                    "encoder_trained": result["encoder_trained"],
                    # Where the encoder's weights are: this checkpoint when this task trained it, the
                    # source task's when it was frozen, nowhere for the base encoder (load it by name).
                    "encoder_weights": checkpoint.as_posix() if result["encoder_trained"] else (
                        checkpoints[encoder_from].as_posix() if encoder_from in checkpoints else None),
                    "encoder_from_task": encoder_from, "participants": task.heads, "heldout_run": task.heldout_run,
                    "seed": task.seed, "phases": task.phases, "epochs": sum(e for _, e in task.phases),
                    "optimisation": task.optimisation, "runtime": task.runtime}
            (tmp / "checkpoints").mkdir(exist_ok=True)
            link_or_copy(directory / "weights.safetensors", tmp / checkpoint)
            (tmp / checkpoint.with_suffix(".json")).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
            for head in task.heads:
                dataset, subject = head["dataset"], head["subject"]
                fold = _fold_index(task, Path(prepared_root), dataset, subject)
                relative = Path(subject, f"fold{fold}", f"seed{task.seed}")
                target = tmp / relative if dataset == only else tmp / dataset / relative
                target.mkdir(parents=True, exist_ok=True)
                link_or_copy(directory / "predictions" / dataset / f"{subject}.npy", target / "predictions.npy")
                weights = Path(os.path.relpath(tmp / checkpoint, target)).as_posix()
                (target / "card.json").write_text(json.dumps({**card, "dataset": dataset, "subject": subject,
                                                              "fold": fold, "weights": weights},
                                                             indent=2, sort_keys=True) + "\n")


def _fold_index(task: Task, prepared_root: Path, dataset: str, subject: str) -> int:
    """The fold number of the task's held-out run for one participant."""
    folds = read_prepared(prepared_root / dataset, subject).folds
    return next(f.index for f in folds if f.heldout_run == task.heldout_run)
