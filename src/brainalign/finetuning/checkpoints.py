"""Trained models on disk, as the model stages export them (``brainalign.finetuning.grid.export``).

Layout under a model's directory for one dataset (``data/models/<model>/<dataset>/``)::

    <subject>/fold<k>/seed<s>/predictions.npy   predictions for the held-out run's examples (float32)
    <subject>/fold<k>/seed<s>/card.json         model, encoder, participants, held-out run, seed, phases, and
                                                ``weights``: the safetensors checkpoint, relative to this folder
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from brainalign.errors import InputError


def fold_dir(model_dir: str | os.PathLike, subject: str, fold: int, seed: int | None = None) -> Path:
    """The folder of one participant's held-out run (and seed) under a model's dataset directory."""
    folder = Path(model_dir) / subject / f"fold{fold}"
    return folder if seed is None else folder / f"seed{seed}"


def seeds(model_dir: str | os.PathLike, subject: str, fold: int) -> list[int]:
    """The seeds trained for one participant and held-out run."""
    return sorted(int(p.name[4:]) for p in fold_dir(model_dir, subject, fold).glob("seed*") if p.name[4:].isdigit())


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


def read_weights(directory: str | os.PathLike) -> dict:
    """The checkpoint a card points to, as tensors (safetensors: nothing is unpickled)."""
    from safetensors.torch import load_file  # torch only where weights are read: scoring needs none

    card = read_card(directory)
    return load_file(Path(directory) / card["weights"])


def model_cards(model_dir: str | os.PathLike) -> list[dict]:
    """The cards of a model's exported checkpoints (``data/models/<model>/checkpoints/*.json``)."""
    folder = Path(model_dir) / "checkpoints"
    cards = []
    for path in sorted(folder.glob("*.json")):
        card = json.loads(path.read_text())
        card["path"] = str(path)
        cards.append(card)
    return cards
