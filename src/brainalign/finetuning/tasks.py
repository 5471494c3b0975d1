"""The experiment grid as independent tasks, each named by everything that determines its result.

A task trains one model for one held-out run and one seed: its heads (participants), the encoder it
starts from (the base encoder, or the result of another task), its phases and optimisation settings,
the device numerics, and the MD5 of every input file. The task's key is the hash of all of that, and
its files live in the task store (:mod:`brainalign.runs.store`) under ``<store>/<model>/<key>/``:

    spec.json                   the task, in full
    checkpoint.safetensors      training state after the last finished epoch (gone once the task is done)
    weights.safetensors         final heads, plus the encoder when training changed it
    predictions/<dataset>/<subject>.npy   held-out predictions, one row per held-out example
    result.json                 history and timings; written last, so its presence means "done"

A finished task is therefore skipped whatever the stage around it does, a task whose inputs changed
gets a new key and is never confused with a stale one, and an interrupted task resumes from its
checkpoint. Tasks write no tracking: the stage that runs them logs to MLflow (one writer per stage
process), so a distributed engine can later run tasks anywhere that sees the store.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from brainalign.data.prepared import PreparedSubject, read_prepared
from brainalign.errors import InputError
from brainalign.features.encoders import load_encoder_spec, weight_files
from brainalign.files import atomic_path, md5_file
from brainalign.finetuning.model import (
    Block,
    BrainModel,
    Phase,
    Runtime,
    head_inputs,
    predict,
    read_checkpoint,
    train_model,
)
from brainalign.finetuning.training import Schedule
from brainalign.runs.code import code_key
from brainalign.runs.spec import spec_key
from brainalign.runs.store import TaskStore, Work
from brainalign.stimuli.tokens import TokenizedWindows, read_tokens


@dataclass
class Task:
    """One training run of the grid.

    Attributes
    ----------
    model : str
        The model (and stage) it belongs to: ``vanilla``, ``finetuned``, ...
    label : str
        A readable name, e.g. ``finetuned/fmri/1/run1/seed0`` (not part of the key).
    encoder : dict
        ``{"name", "untrained", "seed"}`` for the base encoder, or ``{"task": "<model>/<key>"}`` for the
        encoder another task trained.
    heads : list of dict
        ``{"dataset", "subject"}`` per head, each predicting every channel of that participant.
    heldout_run : int
    seed : int
        Fixes the heads' initialisation, the data order and dropout (shared by the models of a pair).
    phases : list of [str, int]
        ``["head", epochs]`` or ``["full", epochs]``.
    optimisation : dict
        :class:`Schedule` fields and ``init_std``.
    runtime : dict
        ``device`` and ``bf16``: they change the numbers.
    inputs : dict of str to str
        MD5 of every file read, by path (filled by :func:`with_inputs`).
    """

    model: str
    label: str
    encoder: dict
    heads: list[dict]
    heldout_run: int
    seed: int
    phases: list[list]
    optimisation: dict
    runtime: dict
    inputs: dict = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.model

    def payload(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "label"}

    @property
    def key(self) -> str:
        return spec_key(self.payload())

    @property
    def id(self) -> str:
        return f"{self.model}/{self.key}"

    @property
    def source(self) -> str | None:
        """The id of the task whose encoder this one starts from."""
        return self.encoder.get("task")

    def params(self) -> dict:
        return {"model": self.model, "encoder": self.encoder, "heads": self.heads, "heldout_run": self.heldout_run,
                "seed": self.seed, "phases": self.phases, **self.optimisation, **self.runtime}

    def tags(self) -> dict[str, str]:
        return {"model": self.model, **{f"input_md5.{path}": digest for path, digest in self.inputs.items()}}


def code_version() -> str:
    """The code key of this module: a hash over every brainalign module that running a task imports."""
    return code_key(__name__)


_MD5: dict[tuple[str, float, int], str] = {}


def _md5(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    if key not in _MD5:
        _MD5[key] = md5_file(path)
    return _MD5[key]


def input_files(task: Task, prepared_root: str | os.PathLike, features_root: str | os.PathLike) -> list[Path]:
    """Every file a task reads (besides the encoder's own files and a source task's weights)."""
    files = []
    for dataset in sorted({h["dataset"] for h in task.heads}):
        features = Path(features_root) / dataset
        files += [features / "tokens.npz", features / "features.npy"]
        for head in task.heads:
            if head["dataset"] == dataset:
                folder = Path(prepared_root) / dataset / head["subject"]
                files += [folder / "responses.npy", folder / "folds.json", features / f"{head['subject']}.windows.npy"]
    return files


def encoder_files(spec: dict) -> list[Path]:
    """The files that hold a base encoder's config and weights (none for an architecture alias)."""
    return weight_files(spec["name"], untrained=bool(spec.get("untrained")))


def with_inputs(task: Task, prepared_root: str | os.PathLike, features_root: str | os.PathLike) -> Task:
    """The task with ``inputs`` filled: the MD5 of every file it reads (the base encoder's weights
    included, so a changed local encoder gives new keys), and of the training code.

    Files are named relative to their roots (``prepared/fmri/1/responses.npy``), so the key depends on
    what the files hold, not on where the working directory is.
    """
    inputs = {}
    roots = {"prepared": Path(prepared_root), "features": Path(features_root)}
    for path in input_files(task, prepared_root, features_root):
        if not path.exists():
            raise InputError(path, path.name, f"an input of task {task.label}", "no such file")
        root_name = next(n for n, r in roots.items() if path.is_relative_to(r))
        inputs[f"{root_name}/{path.relative_to(roots[root_name]).as_posix()}"] = _md5(path)
    if task.source is None:
        for path in encoder_files(task.encoder):
            inputs[f"encoder/{path.name}"] = _md5(path)
    inputs["code"] = code_version()
    task.inputs = inputs
    return task


@dataclass
class _Head:
    name: str
    dataset: str
    subject: str
    data: PreparedSubject
    windows: np.ndarray
    train: np.ndarray
    test: np.ndarray


def head_name(dataset: str, subject: str) -> str:
    return f"{dataset}:{subject}"


def _heads(task: Task, prepared_root: Path, features_root: Path) -> list[_Head]:
    heads = []
    for spec in task.heads:
        dataset, subject = spec["dataset"], str(spec["subject"])
        data = read_prepared(prepared_root / dataset, subject)
        path = features_root / dataset / f"{subject}.windows.npy"
        windows = np.load(path, allow_pickle=False)
        if len(windows) != len(data.examples):
            raise InputError(path, "rows", f"{len(data.examples)} (one per example)", f"{len(windows)}")
        folds = [f for f in data.folds if f.heldout_run == task.heldout_run]
        if not folds:
            raise InputError(prepared_root / dataset / subject / "folds.json", "heldout_run",
                             f"a fold holding out run {task.heldout_run}", f"runs {[f.heldout_run for f in data.folds]}")
        heads.append(_Head(head_name(dataset, subject), dataset, subject, data, windows, folds[0].train, folds[0].test))
    return heads


def _blocks(heads: list[_Head], tokens: dict[str, TokenizedWindows], features: dict[str, np.ndarray | None]) -> list[Block]:
    """One block per dataset: the union of its heads' training examples, keyed by (run, window)."""
    blocks = []
    for dataset in sorted({h.dataset for h in heads}):
        members = [h for h in heads if h.dataset == dataset]
        keys = sorted({(int(h.data.examples["run"].iat[i]), int(h.windows[i])) for h in members for i in h.train})
        position = {k: i for i, k in enumerate(keys)}
        targets = {}
        for h in members:
            y = np.full((len(keys), h.data.responses.shape[1]), np.nan, dtype=np.float32)
            runs = h.data.examples["run"].to_numpy()
            rows = [position[(int(runs[i]), int(h.windows[i]))] for i in h.train]
            y[rows] = h.data.responses[h.train]
            targets[h.name] = y
        blocks.append(Block(tokens=tokens[dataset], windows=np.array([w for _, w in keys], dtype=np.int64),
                            targets=targets, features=features[dataset]))
    return blocks


def build_model(task: Task, heads: list[_Head], store: TaskStore) -> tuple[BrainModel, bool]:
    """The task's initial model and whether its encoder is the base encoder (so cached features apply)."""
    if task.source is None:
        encoder = load_encoder_spec(task.encoder).model
        base = True
    else:
        source_id = task.source
        while True:  # a task that froze its encoder points on to where the encoder was trained
            source = store.read_result(source_id)
            weights = load_file(str(store.directory(source_id) / "weights.safetensors"))
            encoder_state = {k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")}
            if encoder_state or not source.get("encoder_from"):
                break
            source_id = source["encoder_from"]
        encoder = load_encoder_spec(source["base_encoder"]).model
        if encoder_state:
            encoder.load_state_dict(encoder_state)
        base = not encoder_state
    model = BrainModel(encoder, {h.name: (h.data.modality, h.data.responses.shape[1]) for h in heads},
                       init_std=float(task.optimisation["init_std"]), seed=task.seed)
    return model, base


def base_encoder(task: Task, store: TaskStore) -> dict:
    return task.encoder if task.source is None else store.read_result(task.source)["base_encoder"]


def run_task(task: Task, store: str | os.PathLike, prepared_root: str | os.PathLike = "data/prepared",
             features_root: str | os.PathLike = "data/features", on_epoch: Callable[[dict], None] | None = None,
             progress: bool = True, checkpoint_every: float = 30.0) -> dict:
    """Run ``task`` through the store at ``store`` (or resume it, or return its stored result when it is done).

    ``checkpoint_every``: seconds between checkpoints (:func:`~brainalign.finetuning.model.train_model`);
    how often the state is saved changes no result, so it is not part of the task's key.

    Returns
    -------
    dict
        The task's ``result.json``: ``history``, ``seconds``, ``examples_per_second``, ``resumed_at_epoch``
        (epochs found in a checkpoint, 0 for a fresh start), ``base_encoder``, ``encoder_trained``, and
        ``encoder_from`` (the task whose encoder a frozen-encoder task used).
    """
    tasks = TaskStore(store)
    return tasks.run(task, trainer(tasks, prepared_root, features_root, progress, checkpoint_every), on_epoch)


def trainer(store: TaskStore, prepared_root: str | os.PathLike = "data/prepared",
            features_root: str | os.PathLike = "data/features", progress: bool = True,
            checkpoint_every: float = 30.0) -> Work:
    """The store's ``work`` function for brain-model tasks (:func:`train_task` with these settings)."""
    prepared_root, features_root = Path(prepared_root), Path(features_root)

    def work(task: Task, directory: Path, on_epoch: Callable[[dict], None] | None) -> dict:
        return train_task(task, directory, store, prepared_root, features_root, on_epoch, progress, checkpoint_every)

    return work


def train_task(task: Task, directory: Path, store: TaskStore, prepared_root: Path, features_root: Path,
               on_epoch: Callable[[dict], None] | None = None, progress: bool = True,
               checkpoint_every: float = 30.0) -> dict:
    """Train ``task`` (resuming from the checkpoint in ``directory``), write its weights and held-out
    predictions there, and return its result."""
    started = time.perf_counter()
    heads = _heads(task, prepared_root, features_root)
    datasets = sorted({h.dataset for h in heads})
    tokens = {d: read_tokens(features_root / d / "tokens.npz") for d in datasets}
    model, base = build_model(task, heads, store)
    features = {d: np.load(features_root / d / "features.npy", allow_pickle=False) if base else None for d in datasets}
    for d in datasets:
        if features[d] is not None and features[d].shape[0] != len(tokens[d]):
            raise InputError(features_root / d / "features.npy", "rows", f"{len(tokens[d])} (one per window)",
                             f"{features[d].shape[0]}")
    runtime = Runtime(device=task.runtime["device"], bf16=bool(task.runtime["bf16"]), progress=progress)
    checkpoint = directory / "checkpoint.safetensors"
    resumed_at = len(read_checkpoint(checkpoint)[1]["history"]) if checkpoint.exists() else 0
    schedule = Schedule(**{k: task.optimisation[k] for k in ("batch_size", "learning_rate", "warmup_fraction",
                                                             "weight_decay", "decay_all")})
    phases = [Phase(kind, int(epochs)) for kind, epochs in task.phases]
    history = train_model(model, _blocks(heads, tokens, features), phases, schedule, task.seed,
                          checkpoint=checkpoint, runtime=runtime, on_epoch=on_epoch, checkpoint_every=checkpoint_every)
    changed = any(p.train == "full" and p.epochs > 0 for p in phases)
    # A frozen encoder is not saved again: the card names where it comes from.
    state = {k: v for k, v in model.state_dict().items() if changed or not k.startswith("encoder.")}
    with atomic_path(directory / "weights.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
    model.to(runtime.device)
    for h in heads:
        rows = h.windows[h.test]
        if base and not changed:
            inputs = features[h.dataset][rows]
        else:
            inputs = head_inputs(model, tokens[h.dataset], rows, runtime=runtime, desc=f"held-out {h.name}")
        with atomic_path(directory / "predictions" / h.dataset / f"{h.subject}.npy") as tmp:
            np.save(tmp, predict(model, h.name, inputs, runtime=runtime))
    seconds = time.perf_counter() - started
    trained = sum(r["seconds"] for r in history)
    return {"history": history, "seconds": seconds, "resumed_at_epoch": resumed_at,
            "examples_per_second": float(np.mean([r["examples_per_second"] for r in history])) if history else 0.0,
            "training_seconds": trained, "base_encoder": base_encoder(task, store),
            "encoder_trained": changed, "encoder_from": task.source if not changed else None,
            "heads": [h.name for h in heads], "n_parameters": sum(p.numel() for p in model.parameters())}


def read_task_predictions(store: str | os.PathLike, task: Task, dataset: str, subject: str) -> np.ndarray:
    return np.load(TaskStore(store).directory(task) / "predictions" / dataset / f"{subject}.npy", allow_pickle=False)


def torch_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
