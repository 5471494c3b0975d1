"""GLUE runs: one (encoder, task, seed) fine-tuning, keyed by everything that determines it, stored once.

A run is a task of the task store (:mod:`brainalign.runs.store`) and lives in ``<store>/glue/<key>/``:
its checkpoint while it trains, then ``predictions.<split>.npy`` and ``result.json`` (written last). The key hashes the encoder (its base and the MD5 of its fine-tuned
weights), the task's files (MD5), the subsampling, the settings, the seed, the device and the code, so
a finished run is reused and a stale one never is; an interrupted run continues from its checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from brainalign.config.params import section
from brainalign.errors import ConfigError, InputError
from brainalign.features.attention import encoder_from_weights
from brainalign.features.encoders import load_encoder_spec
from brainalign.files import md5_file
from brainalign.finetuning.checkpoints import model_cards
from brainalign.finetuning.tasks import torch_device
from brainalign.nlu.finetune import POOLINGS, GlueSettings, finetune
from brainalign.nlu.glue import GlueSplit, glue_task, read_split, split_files
from brainalign.nlu.metrics import majority_predictions, task_metrics
from brainalign.nlu.sample import NOTICE, SAMPLE_TASKS, write_sample
from brainalign.runs.code import code_key
from brainalign.runs.spec import spec_key
from brainalign.runs.store import TaskStore

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

    namespace = "glue"
    source = None

    @property
    def label(self) -> str:
        return f"{self.encoder.label}/{self.task}/seed{self.seed}"

    def payload(self) -> dict:
        return self.spec

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.key}"

    def params(self) -> dict:
        return {"task": self.task, "encoder": self.encoder.label, "encoder_base": self.encoder.base,
                "encoder_weights": self.encoder.weights or "", "seed": self.seed, "data": self.data,
                "max_train": self.max_train, "max_dev": self.max_dev, "device": self.device, **asdict(self.settings)}

    def tags(self) -> dict[str, str]:
        spec = self.spec
        tags = {"glue_key": self.key, "task": self.task, "encoder": self.encoder.label}
        tags.update({f"input_md5.{name}": digest for name, digest in spec["data_md5"].items()})
        if spec["encoder_weights_md5"]:
            tags["input_md5.encoder_weights"] = spec["encoder_weights_md5"]
        return tags

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
        return spec_key(self.spec)

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


def execute(run: GlueRun, store: str | os.PathLike, on_epoch: Callable[[dict], None] | None = None,
            progress: bool = True) -> dict:
    """Fine-tune and score ``run`` through the store at ``store``, or return its stored result.

    Returns
    -------
    dict
        ``key``, ``metrics`` and ``majority`` (``{dev split: {metric: value}}``, on the paper's x 100
        scale), ``history``, ``seconds``, ``examples_per_second``, ``n_train``, ``n_dev``,
        ``resumed_at_epoch``, ``outcome`` (trained, resumed or reused).
    """
    tasks = TaskStore(store)
    outcome = tasks.outcome(run)
    result = tasks.run(run, trainer(progress), on_epoch)
    if outcome != "reused":
        outcome = "resumed" if result["resumed_at_epoch"] else "trained"
    return {**result, "outcome": outcome}


def trainer(progress: bool = True):
    """The store's ``work`` function for GLUE runs (:func:`train_run`)."""
    def work(run: GlueRun, directory: Path, on_epoch: Callable[[dict], None] | None) -> dict:
        return train_run(run, directory, on_epoch, progress)
    return work


def train_run(run: GlueRun, directory: Path, on_epoch: Callable[[dict], None] | None = None,
              progress: bool = True) -> dict:
    """Fine-tune ``run``'s encoder (resuming from the checkpoint in ``directory``), predict and score every
    dev split, and return the run's result."""
    task = glue_task(run.task)
    train, devs = run.splits()
    torch.manual_seed(run.seed)
    encoder = load_encoder_spec(run.encoder.base)
    if run.encoder.weights:
        encoder = encoder_from_weights(run.encoder.weights, encoder)
    result = finetune(encoder, task, train, devs, run.settings, run.seed, checkpoint=directory / "checkpoint.safetensors",
                      device=run.device, on_epoch=on_epoch, progress=progress)
    metrics, majority = {}, {}
    for dev in devs:
        predictions = result.predictions[dev.split]
        np.save(directory / f"predictions.{dev.split}.npy", predictions, allow_pickle=False)
        metrics[dev.split] = task_metrics(task, dev.labels, predictions)
        majority[dev.split] = task_metrics(task, dev.labels, majority_predictions(task, train.labels, len(dev)))
    trained = [r for r in result.history if r["epoch"] > result.resumed_at_epoch]
    return {"key": run.key, "label": run.label, "metrics": metrics, "majority": majority, "history": result.history,
            "seconds": result.seconds, "resumed_at_epoch": result.resumed_at_epoch,
            "examples_per_second": float(np.mean([r["examples_per_second"] for r in trained])) if trained else 0.0,
            "n_train": len(train), "n_dev": {dev.split: len(dev) for dev in devs}}


def run_metrics(result: dict) -> dict[str, float]:
    """A finished run's numbers to record: every dev split's metrics, the majority baseline's, and the
    training size (``dev.accuracy``, ``dev.majority.accuracy``, ``n_train``)."""
    metrics = {"n_train": float(result["n_train"])}
    for split, values in result["metrics"].items():
        metrics.update({f"{split}.{metric}": value for metric, value in values.items()})
        metrics.update({f"{split}.majority.{metric}": value for metric, value in result["majority"][split].items()})
    return metrics


@dataclass
class GluePlan:
    """The runs the ``glue`` section asks for, the data they read, and the notice every output carries
    when the data are the embedded sample (None for real GLUE)."""

    runs: list[GlueRun]
    settings: dict
    data: str
    notice: str | None


GLUE_KEYS = ["data", "tasks", "encoders", "seeds", "max_train", "max_dev", "sample", "learning_rate",
             "batch_size", "epochs", "max_length", "warmup_fraction", "weight_decay", "dropout", "pooling", "device"]


def plan_runs(params: dict, sample_dir: str | os.PathLike, models_root: str | os.PathLike = "data/models") -> GluePlan:
    """Check the ``glue`` section and turn it into runs: every encoder x task x seed.

    The embedded sample is always written to ``sample_dir`` (it is tiny), so the stage's outputs do not
    depend on which data it reads; ``glue.data: sample`` then trains with the sample's own learning rate
    and epochs.
    """
    settings = section(params, "glue", GLUE_KEYS)
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
    sample_settings = section({"glue.sample": settings["sample"]}, "glue.sample",
                              ["train", "dev", "learning_rate", "epochs"])
    write_sample(sample_dir, sample_settings["train"], sample_settings["dev"])
    if sample:
        data = str(sample_dir)
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
    encode = section(params, "encode")
    base = {"name": encode["encoder"], "untrained": bool(encode["untrained"]), "seed": int(encode["seed"])}
    device = torch_device(settings["device"])
    runs = [GlueRun(encoder, task, int(seed), data, hyper, settings["max_train"], settings["max_dev"], device)
            for encoder in encoder_choices(settings["encoders"], base, models_root) for task in tasks
            for seed in settings["seeds"]]
    return GluePlan(runs, settings, data, NOTICE if sample else None)
