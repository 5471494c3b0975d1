"""Trained models on disk: safetensors weights, a JSON card saying what they are, held-out predictions.

Layout under a model's directory (``data/models/<model>/``)::

    <subject>/fold<k>/weights.safetensors   the trained parameters (safetensors: nothing is unpickled)
    <subject>/fold<k>/card.json             model, encoder, subject, fold, held-out run, seed, epochs, ...
    <subject>/fold<k>/predictions.npy       predictions for the held-out run's examples (float32)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from brainalign.errors import InputError


def fold_dir(model_dir: str | os.PathLike, subject: str, fold: int) -> Path:
    return Path(model_dir) / subject / f"fold{fold}"


def write_fold(directory: str | os.PathLike, state: dict[str, torch.Tensor], predictions: np.ndarray,
               card: dict) -> None:
    """Write one trained fold into ``directory`` (which the caller makes atomic as a whole)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, directory / "weights.safetensors")
    np.save(directory / "predictions.npy", np.asarray(predictions, dtype=np.float32))
    (directory / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")


def read_card(directory: str | os.PathLike) -> dict:
    path = Path(directory) / "card.json"
    if not path.exists():
        raise InputError(path, "card.json", "the description of a trained fold", "no such file")
    return json.loads(path.read_text())


def read_predictions(directory: str | os.PathLike, n_examples: int, n_channels: int) -> np.ndarray:
    """Held-out predictions of one fold, checked against the shape the prepared data say they must have."""
    path = Path(directory) / "predictions.npy"
    predictions = np.load(path, allow_pickle=False)
    if predictions.shape != (n_examples, n_channels):
        raise InputError(path, "predictions", f"shape ({n_examples}, {n_channels})", f"shape {predictions.shape}")
    return predictions


def read_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    return load_file(Path(directory) / "weights.safetensors")
