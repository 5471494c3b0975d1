"""An encoder with linear brain heads, trained in phases, checkpointed as it goes, resumable bitwise.

The seed paper's models (reference section 3) differ only in which heads sit on the encoder and in their
phases: a *head* phase trains the heads alone with the encoder frozen, a *full* phase trains everything.
A head phase never runs the frozen encoder more than once: its head inputs are computed in one pass
(or read from the ``encode`` stage's cache) and the heads train on them.

Several heads train together with the seed code's task weights ``w_k = (1/n_k) / sum_j (1/n_j)``,
``n_k`` the examples carrying data for head ``k``; the loss of a head is the mean squared error over its
non-NaN targets. A batch holds examples of one modality (``[CLS]`` windows for fMRI, last-word windows
for MEG); batches of all modalities are shuffled together.

Checkpoints hold everything the rest of the run depends on -- parameters, optimiser and schedule state,
the random generators, the history -- in one safetensors file (the state as JSON in its metadata),
replaced atomically after an epoch once ``checkpoint_every`` seconds have passed since the last one: a
checkpoint holds 12 bytes a parameter (weights and Adam's two moments), and writing one after every
few-second epoch would cost more than a kill ever loses. Resuming from it gives the same final weights,
bit for bit on CPU, as a run never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from brainalign.finetuning.heads import LinearHead
from brainalign.finetuning.training import (
    Schedule,
    make_optimizer,
    masked_mse,
    optimizer_tensors,
    restore_optimizer,
    scheduler_state,
)
from brainalign.stimuli.tokens import TokenizedWindows, length_batches

PHASES = ("head", "full")


@dataclass
class Block:
    """The examples of one modality and every head's targets on them.

    Attributes
    ----------
    tokens : TokenizedWindows
        The dataset's windows; ``windows`` indexes them.
    windows : ndarray of int, shape (n,)
        The window of each example.
    targets : dict of str to ndarray of shape (n, n_outputs)
        Per head; NaN rows where a head has no data for an example.
    features : ndarray, optional
        Precomputed head inputs of every window of ``tokens`` for the initial encoder (the ``encode``
        stage's cache), used by head phases before any full phase has changed the encoder.
    """

    tokens: TokenizedWindows
    windows: np.ndarray
    targets: dict[str, np.ndarray]
    features: np.ndarray | None = None

    @property
    def modality(self) -> str:
        return "meg" if self.tokens.kind == "last_word" else "fmri"


@dataclass
class Phase:
    """``epochs`` epochs training the heads alone (``"head"``) or everything (``"full"``)."""

    train: str
    epochs: int

    def __post_init__(self) -> None:
        if self.train not in PHASES:
            raise ValueError(f"phase: expected one of {PHASES}, found {self.train!r}")


@dataclass
class Runtime:
    """Where and how to compute: ``device`` (cpu, cuda), bf16 autocast, CPU threads, progress bars."""

    device: str = "cpu"
    bf16: bool = False
    threads: int | None = None
    progress: bool = True


class BrainModel(nn.Module):
    """A transformer encoder with one linear head per participant.

    fMRI heads read the ``[CLS]`` output embedding; MEG heads read the output embedding of the window's
    last word's first piece with the word's length and log-probability appended.

    Parameters
    ----------
    encoder : nn.Module
        A Hugging Face encoder (its output's ``last_hidden_state`` is read).
    heads : dict of str to (modality, n_outputs)
    init_std : float
        Head weights start from N(0, init_std).
    seed : int
        Each head's initialisation is drawn from a generator seeded by ``seed`` and the head's name, so
        a participant's head starts from the same weights in every model with that seed.
    """

    def __init__(self, encoder: nn.Module, heads: dict[str, tuple[str, int]], init_std: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.modalities = {name: modality for name, (modality, _) in heads.items()}
        width = int(encoder.config.hidden_size)
        self.heads = nn.ModuleDict()
        for name, (modality, n_outputs) in sorted(heads.items()):
            generator = torch.Generator().manual_seed(head_seed(seed, name))
            self.heads[name] = LinearHead(width + (2 if modality == "meg" else 0), n_outputs, init_std, generator)

    def head_inputs(self, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        """What the heads read for a batch of windows: ``[CLS]``, or last word's first piece + properties."""
        hidden = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        states = hidden[torch.arange(len(hidden), device=hidden.device), batch["target"]]
        if kind == "last_word":
            states = torch.cat([states, batch["properties"].to(states.dtype)], dim=1)
        return states.float()


def head_seed(seed: int, name: str) -> int:
    """A generator seed for head ``name`` under model seed ``seed``."""
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63)


def _to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def head_inputs(model: BrainModel, tokens: TokenizedWindows, rows: np.ndarray | None = None,
                batch_size: int = 64, runtime: Runtime | None = None, desc: str = "head inputs") -> np.ndarray:
    """One pass of the encoder (evaluation mode) over windows ``rows`` (all by default): (n, head width)."""
    runtime = runtime or Runtime()
    rows = np.arange(len(tokens)) if rows is None else np.asarray(rows)
    width = int(model.encoder.config.hidden_size) + (2 if tokens.kind == "last_word" else 0)
    out = np.zeros((len(rows), width), dtype=np.float32)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    for index in tqdm(length_batches(tokens.lengths[rows], batch_size), desc=desc,
                      disable=not runtime.progress or len(rows) < 4 * batch_size):
        with torch.autocast(runtime.device.split(":")[0], dtype=torch.bfloat16, enabled=runtime.bf16):
            out[index] = model.head_inputs(_to(tokens.batch(rows[index]), runtime.device), tokens.kind).cpu().numpy()
    for module, training in modes.items():  # exactly as before, module by module
        module.train(training)
    return out


def task_weights(blocks: list[Block]) -> dict[str, float]:
    """The seed code's weights: ``w_k = (1/n_k) / sum_j (1/n_j)``, ``n_k`` examples with data for head k."""
    counts: dict[str, int] = {}
    for block in blocks:
        for name, y in block.targets.items():
            counts[name] = counts.get(name, 0) + int((~np.isnan(y)).any(axis=1).sum())
    inverse = {name: 1.0 / n for name, n in counts.items() if n > 0}
    total = sum(inverse.values())
    return {name: inverse.get(name, 0.0) / total for name in counts}


@dataclass
class TrainingState:
    """Where a run is: the phase, the epochs done in it, and the history so far."""

    phase: int = 0
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    encoder_changed: bool = False


def _save_checkpoint(path: Path, model: BrainModel, optimizer, scheduler, order: torch.Generator,
                     state: TrainingState) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
               if state.encoder_changed or not k.startswith("encoder.")}
    optimizer_state, param_groups = optimizer_tensors(optimizer)
    tensors.update(optimizer_state)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.order"] = order.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {"state": json.dumps({"phase": state.phase, "epoch": state.epoch, "history": state.history,
                                     "encoder_changed": state.encoder_changed,
                                     "param_groups": param_groups, "scheduler": scheduler_state(scheduler)})}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the JSON state of a training checkpoint."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return load_file(str(path)), json.loads(metadata["state"])


def train_model(model: BrainModel, blocks: list[Block], phases: list[Phase], schedule: Schedule, seed: int,
                checkpoint: str | os.PathLike | None = None, runtime: Runtime | None = None,
                on_epoch: Callable[[dict], None] | None = None, checkpoint_every: float = 30.0) -> list[dict]:
    """Train ``model`` through ``phases``, resuming from ``checkpoint`` when it exists.

    Parameters
    ----------
    model : BrainModel
        Its heads' names are the keys of the blocks' ``targets``.
    blocks : list of Block
        Training examples, one block per modality.
    phases : list of Phase
        Each phase has its own optimiser and warm-up/linear-decay schedule over its own steps.
    schedule : Schedule
        Batch size, learning rate, warm-up share, weight decay (its ``epochs`` is unused: phases say).
    seed : int
        Seeds the data order and dropout.
    checkpoint : path, optional
        Written after an epoch once ``checkpoint_every`` seconds have passed since the run started or last
        wrote it (never after the last epoch: the caller saves the trained model); read first if present,
        and the run continues from it.
    on_epoch : callable, optional
        Called with each epoch's record (also for epochs replayed from a checkpoint: ``replayed=True``).
    checkpoint_every : float
        Seconds of training a kill may cost at most (plus the epoch under way); 0 checkpoints every epoch.

    Returns
    -------
    list of dict
        Per epoch: ``phase``, ``epoch`` (counted over all phases), ``loss`` and ``loss.<head>`` (training,
        mean over batches), ``lr`` (at the epoch's end), ``seconds``, ``examples_per_second``.
    """
    runtime = runtime or Runtime()
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    checkpoint = Path(checkpoint) if checkpoint else None
    weights = task_weights(blocks)
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    state = TrainingState()
    saved: tuple[dict, dict] | None = None
    if checkpoint is not None and checkpoint.exists():
        tensors, meta = read_checkpoint(checkpoint)
        state = TrainingState(phase=meta["phase"], epoch=meta["epoch"], history=meta["history"],
                              encoder_changed=meta["encoder_changed"])
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")},
                              strict=False)
        torch.set_rng_state(tensors["rng.torch"])
        order.set_state(tensors["rng.order"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        saved = (tensors, meta)
        if on_epoch:
            for record in state.history:
                on_epoch({**record, "replayed": True})
    model.to(runtime.device)
    n_examples = sum(len(b.windows) for b in blocks)
    # The epoch after which the caller saves the trained model: no checkpoint is written there.
    final = max(((p, phase.epochs) for p, phase in enumerate(phases) if phase.epochs > 0), default=None)
    saved_at = time.perf_counter()
    for p, phase in enumerate(phases):
        if p < state.phase or (p == state.phase and state.epoch >= phase.epochs):
            continue
        full = phase.train == "full"
        for param in model.encoder.parameters():
            param.requires_grad_(full)
        steps = sum(math.ceil(len(b.windows) / schedule.batch_size) for b in blocks)
        optimizer, scheduler = make_optimizer(model, schedule, steps * phase.epochs)
        if saved is not None and p == saved[1]["phase"] and saved[1]["epoch"] > 0:
            tensors, meta = saved
            restore_optimizer(optimizer, scheduler, tensors, meta["param_groups"], meta["scheduler"])
        saved = None
        features = None
        if not full:
            # The frozen encoder runs once; the heads then train on its outputs.
            features = [block.features[block.windows] if block.features is not None and not state.encoder_changed
                        else head_inputs(model, block.tokens, block.windows, runtime=runtime)
                        for block in blocks]
        start = state.epoch if p == state.phase else 0
        state.phase, state.epoch = p, start
        for epoch in range(start, phase.epochs):
            record = _epoch(model, blocks, features, optimizer, scheduler, order, weights, schedule, runtime,
                            desc=f"{phase.train} epoch {epoch + 1}/{phase.epochs}")
            record.update({"phase": phase.train, "epoch": len(state.history) + 1,
                           "examples_per_second": n_examples / record["seconds"]})
            state.epoch = epoch + 1
            state.encoder_changed = state.encoder_changed or full
            state.history.append(record)
            due = time.perf_counter() - saved_at >= checkpoint_every
            if checkpoint is not None and due and (p, epoch + 1) != final:
                _save_checkpoint(checkpoint, model, optimizer, scheduler, order, state)
                saved_at = time.perf_counter()
            if on_epoch:
                on_epoch(record)
        state.phase, state.epoch = p + 1, 0
    for param in model.encoder.parameters():
        param.requires_grad_(True)
    return state.history


def _epoch(model: BrainModel, blocks: list[Block], features: list[np.ndarray] | None, optimizer, scheduler,
           order: torch.Generator, weights: dict[str, float], schedule: Schedule, runtime: Runtime,
           desc: str) -> dict:
    started = time.perf_counter()
    full = features is None
    model.train(full)
    batches = []
    for b, block in enumerate(blocks):
        if full:
            batches.extend((b, rows) for rows in length_batches(block.tokens.lengths[block.windows],
                                                                schedule.batch_size, order))
        else:
            permutation = torch.randperm(len(block.windows), generator=order).numpy()
            batches.extend((b, permutation[i:i + schedule.batch_size])
                           for i in range(0, len(permutation), schedule.batch_size))
    if len(blocks) > 1:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=order).numpy()]
    totals: dict[str, list[float]] = {}
    for b, rows in tqdm(batches, desc=desc, leave=False, disable=not runtime.progress or not full):
        block = blocks[b]
        if full:
            with torch.autocast(runtime.device.split(":")[0], dtype=torch.bfloat16, enabled=runtime.bf16):
                x = model.head_inputs(_to(block.tokens.batch(block.windows[rows]), runtime.device),
                                      block.tokens.kind)
        else:
            x = torch.from_numpy(features[b][rows]).to(runtime.device)
        loss = torch.zeros((), device=runtime.device)
        for name, y in block.targets.items():
            task_loss = masked_mse(model.heads[name](x), torch.from_numpy(y[rows]).to(runtime.device))
            loss = loss + weights[name] * task_loss
            totals.setdefault(f"loss.{name}", []).append(float(task_loss.detach()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        totals.setdefault("loss", []).append(float(loss.detach()))
    record = {k: float(np.mean(v)) for k, v in totals.items()}
    record.update({"lr": float(scheduler.get_last_lr()[0]), "seconds": time.perf_counter() - started})
    return record


@torch.no_grad()
def predict(model: BrainModel, head: str, inputs: np.ndarray, batch_size: int = 1024,
            runtime: Runtime | None = None) -> np.ndarray:
    """Head ``head``'s outputs for precomputed head inputs, in evaluation mode: (n, n_outputs) float32."""
    runtime = runtime or Runtime()
    model.eval()
    linear = model.heads[head]
    out = [linear(torch.from_numpy(inputs[i:i + batch_size]).to(runtime.device)).float().cpu().numpy()
           for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, linear.linear.out_features), dtype=np.float32)
