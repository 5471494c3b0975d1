"""GLUE runs: one (encoder, task, seed) fine-tuning, keyed by everything that determines it, stored once.

A run lives in ``<store>/glue/<key>/``: its checkpoint while it trains, then ``predictions/<split>.npy``
and ``result.json`` (written last). The key hashes the encoder (its base and the MD5 of its fine-tuned
weights), the task's files (MD5), the subsampling, the settings, the seed, the device and the code, so
a finished run is reused and a stale one never is; an interrupted run continues from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from brainalign.errors import ConfigError, InputError
from brainalign.files import atomic_path, md5_file, write_json
from brainalign.runs.code import code_key
from brainalign.nlu.glue import GlueSplit, glue_task, read_split, split_files
from brainalign.nlu.finetune import GlueSettings, finetune
from brainalign.nlu.metrics import majority_predictions, task_metrics

PRETRAINED = "pretrained"


@dataclass(frozen=True)
class GlueEncoder:
    """An encoder to test: a label for the table, its base encoder, and fine-tuned weights (or None)."""

    label: str
    base: dict
    weights: str | None = None


def encoder_choices(names: list[str], base: dict, models_root: str | os.PathLike = "data/models") -> list[GlueEncoder]:
    """Resolve the ``glue.encoders`` entries.

    ``pretrained`` is the base encoder itself (``encode.encoder``); a model name (``meg_transfer``,
    ``joint``, ``finetuned``, ``participant_transfer``) is, at that model's lowest held-out run and seed,
    the encoder it fine-tuned on the most participants (for ``meg_transfer``, the encoder tuned on every
    MEG participant, before any fMRI participant; for ``joint``, the one encoder; for ``finetuned``, the
    first participant's); anything else is a path to a ``.safetensors`` checkpoint with ``encoder.*``
    keys (an exported ``checkpoints/<label>.safetensors``), whose card, when beside it, names its base.
    """
    from brainalign.report.analyses import model_cards

    chosen = []
    for name in names:
        if name == PRETRAINED:
            chosen.append(GlueEncoder(PRETRAINED, dict(base)))
            continue
        folder = Path(models_root) / name
        if (folder / "checkpoints").is_dir():
            cards = [c for c in model_cards(folder) if c.get("encoder_trained") and c.get("encoder_weights")]
            if not cards:
                raise InputError(folder / "checkpoints", "encoder_trained", "a checkpoint whose task fine-tuned the "
                                 "encoder (vanilla freezes it: use 'pretrained')", "none")
            card = min(cards, key=lambda c: (c["heldout_run"], c["seed"], -len(c["participants"]), c["task"]))
            chosen.append(GlueEncoder(name, dict(card["encoder"]), str(folder / card["encoder_weights"])))
            continue
        path = Path(name)
        if path.suffix == ".safetensors":
            if not path.exists():
                raise InputError(path, "glue.encoders", "an encoder checkpoint (.safetensors)", "no such file")
            card_path = path.with_suffix(".json")
            card_base = json.loads(card_path.read_text()).get("encoder") if card_path.exists() else None
            chosen.append(GlueEncoder(path.stem, dict(card_base or base), str(path)))
            continue
        raise ConfigError(f"glue.encoders: {name!r} is neither 'pretrained', a model with exported checkpoints "
                          f"under {models_root}, nor a .safetensors checkpoint")
    labels = [c.label for c in chosen]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"glue.encoders: two entries have the same label ({', '.join(labels)})")
    return chosen


@dataclass(frozen=True)
class GlueRun:
    """One fine-tuning: an encoder on a task with a seed; training (and dev) subsampled when asked."""

    encoder: GlueEncoder
    task: str
    seed: int
    data: str
    settings: GlueSettings
    max_train: int | None = None
    max_dev: int | None = None
    device: str = "cpu"

    @property
    def label(self) -> str:
        return f"{self.encoder.label}/{self.task}/seed{self.seed}"

    @cached_property
    def spec(self) -> dict:
        """Everything that determines the run's numbers, with the MD5 of every file it reads."""
        task = glue_task(self.task)
        files = [f for split in ("train", *task.dev_splits) for f in split_files(self.data, task, split)]
        return {"encoder": self.encoder.base, "encoder_weights_md5": md5_file(self.encoder.weights)
                if self.encoder.weights else None, "task": self.task, "seed": self.seed,
                "data_md5": {f"{f.parent.name}/{f.name}": md5_file(f) for f in files}, "max_train": self.max_train,
                "max_dev": self.max_dev, "settings": asdict(self.settings), "device": self.device,
                "code": _code_version()}

    @cached_property
    def key(self) -> str:
        return hashlib.md5(json.dumps(self.spec, sort_keys=True).encode()).hexdigest()[:16]

    def _read(self, split: str) -> GlueSplit:
        return read_split(self.data, self.task, split)

    def splits(self) -> tuple[GlueSplit, list[GlueSplit]]:
        """The (subsampled) training split and every dev split of the task."""
        task = glue_task(self.task)
        train = self._read("train").subsample(self.max_train, self.seed)
        devs = [self._read(d).subsample(self.max_dev, 0) for d in task.dev_splits]
        return train, devs


def _code_version() -> str:
    """A hash over every brainalign module that a GLUE run imports (training.py among them)."""
    return code_key(__name__)


def run_dir(store: str | os.PathLike, run: GlueRun, key: str | None = None) -> Path:
    return Path(store) / "glue" / (key or run.key)


def read_run(store: str | os.PathLike, run: GlueRun, key: str | None = None) -> dict | None:
    """The finished run's result (metrics per dev split, majority baseline, history), or None."""
    path = run_dir(store, run, key) / "result.json"
    return json.loads(path.read_text()) if path.exists() else None


def execute(run: GlueRun, store: str | os.PathLike, on_epoch: Callable[[dict], None] | None = None,
            progress: bool = True) -> dict:
    """Fine-tune and score ``run``, or return its stored result when it has finished before.

    Returns
    -------
    dict
        ``key``, ``metrics`` and ``majority`` (``{dev split: {metric: value}}``, on the paper's x 100
        scale), ``history``, ``seconds``, ``examples_per_second``, ``n_train``, ``n_dev``,
        ``resumed_at_epoch``, ``outcome`` (trained, resumed or reused).
    """
    import torch

    from brainalign.features.attention import encoder_from_weights
    from brainalign.finetuning.tasks import load_base_encoder

    key = run.key
    directory = run_dir(store, run, key)
    done = read_run(store, run, key)
    if done is not None:
        return {**done, "outcome": "reused"}
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "spec.json", run.spec)
    task = glue_task(run.task)
    train, devs = run.splits()
    torch.manual_seed(run.seed)
    encoder = load_base_encoder(run.encoder.base)
    if run.encoder.weights:
        encoder = encoder_from_weights(run.encoder.weights, encoder)
    checkpoint = directory / "checkpoint.safetensors"
    result = finetune(encoder, task, train, devs, run.settings, run.seed, checkpoint=checkpoint, device=run.device,
                      on_epoch=on_epoch, progress=progress)
    metrics, majority = {}, {}
    for dev in devs:
        predictions = result.predictions[dev.split]
        np.save(directory / f"predictions.{dev.split}.npy", predictions, allow_pickle=False)
        metrics[dev.split] = task_metrics(task, dev.labels, predictions)
        majority[dev.split] = task_metrics(task, dev.labels, majority_predictions(task, train.labels, len(dev)))
    trained = [r for r in result.history if r["epoch"] > result.resumed_at_epoch]
    summary = {"key": key, "label": run.label, "metrics": metrics, "majority": majority, "history": result.history,
               "seconds": result.seconds, "resumed_at_epoch": result.resumed_at_epoch,
               "examples_per_second": float(np.mean([r["examples_per_second"] for r in trained])) if trained else 0.0,
               "n_train": len(train), "n_dev": {dev.split: len(dev) for dev in devs}}
    with atomic_path(directory / "result.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    checkpoint.unlink(missing_ok=True)  # the run is finished: its numbers are stored, its weights not needed
    return {**summary, "outcome": "resumed" if result.resumed_at_epoch else "trained"}
