"""Fine-tune an encoder on one GLUE task and predict its dev sets: BERT's recipe, made fast on a CPU.

The classifier is BERT's: dropout and a linear layer on the pooled ``[CLS]`` state (the encoder's pooler
where it has one, the raw ``[CLS]`` state otherwise), cross-entropy for classification and mean squared
error for STS-B. Training is AdamW with warm-up and linear decay (:mod:`brainalign.finetuning.training`).

What makes it fast without changing the recipe: texts are tokenised once; batches are padded to their
own longest example, not to ``max_length``, and grouped by length (examples are shuffled, cut into pools
of 50 batches, sorted by length within a pool, and the batches shuffled again), so little compute goes
to padding; the optimiser is fused. A checkpoint (safetensors: weights, optimiser, both RNG states,
history) is written after every epoch, and a run that finds one continues from it, bitwise equal to an
uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from brainalign.errors import ConfigError
from brainalign.finetuning.training import Schedule, load_training_state, make_optimizer, save_training_state
from brainalign.nlu.glue import GlueSplit, GlueTask

# pooler: BERT's (tanh layer on [CLS]); cls: the raw [CLS] state; mean: the mean over word pieces, the
# sentence vector of sentence-transformers models such as the packaged MiniLM.
POOLINGS = ("pooler", "cls", "mean")
POOL_BATCHES = 50  # batches per length-sorted pool: shuffled enough, and little padding


@dataclass
class GlueSettings:
    """BERT's GLUE fine-tuning settings (Devlin et al. 2019) unless the params say otherwise."""

    learning_rate: float = 2e-5
    batch_size: int = 32
    epochs: int = 3
    max_length: int = 128
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    pooling: str = "pooler"


class SequenceClassifier(nn.Module):
    """An encoder with BERT's classification head: dropout, then a linear layer on the pooled [CLS] state.

    Parameters
    ----------
    encoder : transformers model
        A BERT-family encoder (``AutoModel``); its pooler is used when it has one.
    n_outputs : int
        Classes, or 1 for regression.
    dropout : float
    seed : int
        Seeds the head's initialisation, N(0, 0.02) as BERT's, with zero bias.
    """

    def __init__(self, encoder: nn.Module, n_outputs: int, dropout: float = 0.1, seed: int = 0,
                 pooling: str = "pooler") -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(encoder.config.hidden_size), n_outputs)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.randn(self.classifier.weight.shape, generator=generator) * 0.02)
            self.classifier.bias.zero_()
        if pooling not in POOLINGS:
            raise ConfigError(f"glue.pooling: expected one of {', '.join(POOLINGS)}, found {pooling!r}")
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            pooling = "cls"
        self.pooling = pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        elif self.pooling == "cls":
            pooled = out.last_hidden_state[:, 0]
        else:
            weights = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * weights).sum(1) / weights.sum(1)
        return self.classifier(self.dropout(pooled))


@dataclass
class Encoded:
    """Tokenised examples: one id array (and segment array) per example, unpadded."""

    ids: list[np.ndarray]
    segments: list[np.ndarray]
    pad_id: int

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(i) for i in self.ids])

    def batch(self, rows: np.ndarray, device: str = "cpu") -> dict[str, torch.Tensor]:
        """Rows padded to the batch's longest example."""
        width = max(len(self.ids[r]) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        segments = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            n = len(self.ids[r])
            ids[i, :n], segments[i, :n], mask[i, :n] = self.ids[r], self.segments[r], 1
        return {"input_ids": torch.from_numpy(ids).to(device), "token_type_ids": torch.from_numpy(segments).to(device),
                "attention_mask": torch.from_numpy(mask).to(device)}


def encode_split(tokenizer, split: GlueSplit, max_length: int) -> Encoded:
    """Tokenise a split once: single texts, or pairs truncated longest-first to ``max_length`` pieces."""
    encoded = tokenizer(split.first, split.second, truncation=True, max_length=max_length, padding=False,
                        return_token_type_ids=True)
    return Encoded([np.asarray(i, dtype=np.int64) for i in encoded["input_ids"]],
                   [np.asarray(s, dtype=np.int64) for s in encoded["token_type_ids"]], int(tokenizer.pad_token_id))


def length_grouped_batches(lengths: np.ndarray, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """One epoch's batches: a seeded shuffle, length-sorted within pools of ``POOL_BATCHES`` batches."""
    order = torch.randperm(len(lengths), generator=generator).numpy()
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).numpy()]


@dataclass
class FinetuneResult:
    """Dev predictions per dev split, the training history and the timings."""

    predictions: dict[str, np.ndarray]
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    resumed_at_epoch: int = 0


def _loss(task: GlueTask, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if task.regression:
        return nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
    return nn.functional.cross_entropy(logits.float(), labels)


def finetune(encoder, task: GlueTask, train: GlueSplit, devs: list[GlueSplit], settings: GlueSettings, seed: int,
             checkpoint: str | os.PathLike | None = None, device: str = "cpu",
             on_epoch: Callable[[dict], None] | None = None, progress: bool = True,
             checkpoint_every: float = 30.0) -> FinetuneResult:
    """Fine-tune ``encoder`` (a :class:`~brainalign.features.encoders.Encoder`; its model is trained in place)
    on ``train`` and predict every split of ``devs``.

    Parameters
    ----------
    checkpoint : path, optional
        Written after an epoch once ``checkpoint_every`` seconds have passed since the run started or
        was last saved (a checkpoint holds 12 bytes a parameter: writing one after every few-second
        epoch would cost more than losing the epoch); when it exists the run continues from it
        (``on_epoch`` then also receives the checkpointed epochs, with ``replayed=True``).
    on_epoch : callable, optional
        Called with each epoch's record: ``epoch``, ``loss``, ``lr``, ``seconds``, ``examples_per_second``.

    Returns
    -------
    FinetuneResult
        Dev predictions: class indices, or scores for regression.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model = SequenceClassifier(encoder.model, task.n_outputs, settings.dropout, seed, settings.pooling)
    data = encode_split(encoder.tokenizer, train, settings.max_length)
    # A regression head starting at 0 would spend its first steps only reaching the scores' scale (Adam
    # moves each weight by about the learning rate a step): it learns standardised scores instead, and
    # its predictions are mapped back, which Pearson and Spearman do not see.
    centre, scale = (float(train.labels.mean()), float(train.labels.std()) or 1.0) if task.regression else (0.0, 1.0)
    labels = torch.from_numpy(((train.labels - centre) / scale).astype(np.float32) if task.regression
                              else train.labels.astype(np.int64))
    steps = math.ceil(len(train) / settings.batch_size)
    schedule = Schedule(epochs=settings.epochs, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                        warmup_fraction=settings.warmup_fraction, weight_decay=settings.weight_decay)
    model.to(device)
    optimizer, scheduler = make_optimizer(model, schedule, steps * settings.epochs)
    history: list[dict] = []
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint is not None and checkpoint.exists():
        history = _resume(checkpoint, model, optimizer, scheduler, order)
        for record in history:
            if on_epoch:
                on_epoch({**record, "replayed": True})
    resumed_at = len(history)
    saved_at = time.perf_counter()
    for epoch in range(resumed_at, settings.epochs):
        model.train()
        tic, losses = time.perf_counter(), []
        batches = length_grouped_batches(data.lengths, settings.batch_size, order)
        for rows in tqdm(batches, desc=f"{task.name} epoch {epoch + 1}/{settings.epochs}", leave=False,
                         disable=not progress):
            loss = _loss(task, model(**data.batch(rows, device)), labels[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        seconds = time.perf_counter() - tic
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": float(scheduler.get_last_lr()[0]),
                  "seconds": seconds, "examples_per_second": len(train) / seconds}
        history.append(record)
        due = time.perf_counter() - saved_at >= checkpoint_every
        if checkpoint is not None and epoch + 1 < settings.epochs and due:
            _save(checkpoint, model, optimizer, scheduler, order, history, settings)
            saved_at = time.perf_counter()
        if on_epoch:
            on_epoch(record)
    predictions = {dev.split: centre + scale * predict(model, task, encode_split(encoder.tokenizer, dev,
                                                                                 settings.max_length),
                                                       settings.batch_size * 4, device) if task.regression
                   else predict(model, task, encode_split(encoder.tokenizer, dev, settings.max_length),
                                settings.batch_size * 4, device) for dev in devs}
    return FinetuneResult(predictions, history, time.perf_counter() - started, resumed_at)


@torch.inference_mode()
def predict(model: SequenceClassifier, task: GlueTask, data: Encoded, batch_size: int = 128,
            device: str = "cpu") -> np.ndarray:
    """Class indices (or regression scores) for every example, in the split's order."""
    model.eval()
    order = np.argsort(-data.lengths, kind="stable")
    out = np.empty(len(order), dtype=np.float64 if task.regression else np.int64)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        logits = model(**data.batch(rows, device)).float().cpu()
        out[rows] = logits.squeeze(-1).numpy() if task.regression else logits.argmax(-1).numpy()
    return out


def _save(path: Path, model: nn.Module, optimizer, scheduler, order: torch.Generator, history: list[dict],
          settings: GlueSettings) -> None:
    save_training_state(path, model, optimizer, scheduler, {"rng.order": order.get_state()},
                        {"history": json.dumps(history), "settings": json.dumps(asdict(settings))})


def _resume(path: Path, model: nn.Module, optimizer, scheduler, order: torch.Generator) -> list[dict]:
    tensors, metadata = load_training_state(path, model, optimizer, scheduler)
    order.set_state(tensors["rng.order"])
    return json.loads(metadata["history"])
