"""The seed paper's optimisation: AdamW with decoupled weight decay, warm-up then linear decay, batch 32.

(reference section 3). The weight decay skips biases and LayerNorm weights, as the seed code meant to;
``decay_all=True`` reproduces the seed code's actual behaviour, which decayed them too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from brainalign.heads import LinearHead


@dataclass
class Schedule:
    """Optimiser and schedule settings."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    decay_all: bool = False


def masked_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the target entries that are not NaN (0 when all are NaN)."""
    present = ~torch.isnan(target)
    diff = torch.where(present, prediction - torch.nan_to_num(target), torch.zeros_like(prediction))
    return (diff**2).sum() / present.sum().clamp(min=1)


def warmup_linear(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Learning-rate multiplier: rises linearly from 0 over the warm-up steps, then falls linearly to 0."""
    warmup = int(warmup_fraction * total_steps)
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def decay_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Parameter groups for AdamW: biases and LayerNorm weights without decay (unless ``decay_all``)."""
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            exempt = name == "bias" or isinstance(module, nn.LayerNorm) or "LayerNorm" in module_name
            (no_decay if exempt and not decay_all else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, schedule: Schedule, total_steps: int) -> tuple[torch.optim.Optimizer,
                                                                                  torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over ``model``'s trainable parameters with the warm-up/linear-decay schedule."""
    optimizer = torch.optim.AdamW(decay_groups(model, schedule.weight_decay, schedule.decay_all),
                                  lr=schedule.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear(step, total_steps, schedule.warmup_fraction))
    return optimizer, scheduler


def fit_head(train_x: np.ndarray, train_y: np.ndarray, schedule: Schedule, seed: int,
             val_x: np.ndarray | None = None, val_y: np.ndarray | None = None,
             init_std: float = 0.02) -> tuple[LinearHead, list[dict]]:
    """Train a linear head on fixed features (the vanilla model: the encoder is frozen).

    Parameters
    ----------
    train_x : ndarray of shape (n, width)
        Features of the training examples (cached encoder outputs).
    train_y : ndarray of shape (n, n_outputs)
        Targets; NaN entries are ignored by the loss.
    schedule : Schedule
    seed : int
        Seeds the head's initialisation and the order of the examples.
    val_x, val_y : ndarray, optional
        Evaluated after each epoch for the history; never used to choose anything.

    Returns
    -------
    head : LinearHead
    history : list of dict
        Per epoch: ``epoch``, ``train_loss`` (mean over batches), ``val_loss`` (if given), ``lr``.
    """
    init = torch.Generator().manual_seed(seed)
    order = torch.Generator().manual_seed(seed + 1)
    x = torch.as_tensor(train_x, dtype=torch.float32)
    y = torch.as_tensor(train_y, dtype=torch.float32)
    head = LinearHead(x.shape[1], y.shape[1], init_std=init_std, generator=init)
    steps_per_epoch = math.ceil(len(x) / schedule.batch_size)
    optimizer, scheduler = make_optimizer(head, schedule, steps_per_epoch * schedule.epochs)
    history = []
    for epoch in range(1, schedule.epochs + 1):
        head.train()
        permutation = torch.randperm(len(x), generator=order)
        losses = []
        for start in range(0, len(x), schedule.batch_size):
            batch = permutation[start:start + schedule.batch_size]
            loss = masked_mse(head(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0]}
        if val_x is not None and val_y is not None:
            record["val_loss"] = float(masked_mse(predict(head, val_x), torch.as_tensor(val_y)).item())
        history.append(record)
    return head, history


@torch.no_grad()
def predict(head: nn.Module, features: np.ndarray, batch_size: int = 1024) -> torch.Tensor:
    """The head's outputs for ``features``, in evaluation mode."""
    head.eval()
    x = torch.as_tensor(features, dtype=torch.float32)
    return torch.cat([head(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else \
        torch.zeros((0, head.linear.out_features))
