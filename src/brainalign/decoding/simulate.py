"""Simulated Pereira 2018 images for decoding, in the release's format, with their truth.

The 384 sentences are the Brain-Score twin's (:func:`brainalign.benchmarks.simulate.pereira_texts`: the
project's story, 96 passages of 4, 24 topics), or any given list (the real experiment's). Every participant's
image of a sentence is a noisy linear function of the *pretrained* encoder's sentence encoding (the decoder's
own ``encoder``, ``layer`` and ``pooling``): the encodings are standardised, each responsive voxel is a random
linear combination of them (a share of the weights common to all participants), mixed with independent noise at
a drawn correlation ``true_r`` between signal and response; the other voxels are noise. The files are written
by :func:`brainalign.data.pereira.write_pereira` (the layout the Pereira loader reads), all voxels inside the
release's atlases so that ``atlases: null`` (every voxel, as Gauthier & Levy decoded) keeps them all.

What the truth says: decoding into the pretrained encoder's space is far better than chance, and a checkpoint
decodes worse the further its encodings move from the pretrained ones (``truth/encodings.npy`` holds the
pretrained encodings, so a test can measure how far a checkpoint moved).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainalign.benchmarks.simulate import PEREIRA_PARTICIPANTS, pereira_texts
from brainalign.data.pereira import write_pereira
from brainalign.decoding.encodings import checkpoint_encoder, sentence_encodings
from brainalign.files import atomic_path, write_json


@dataclass(frozen=True)
class DecodingSimulation:
    """params.yaml ``simulate_decoding`` (with the decoder's ``encoder``, ``layer``, ``pooling``)."""

    seed: int = 0
    participants: int = 5
    voxels: int = 600
    responsive_fraction: float = 0.6
    true_r: tuple[float, float] = (0.1, 0.35)
    shared_fraction: float = 0.7
    encoder: str = "minilm"
    layer: int = -1
    pooling: str = "cls"
    max_length: int = 128


def simulate_images(encodings: np.ndarray, settings: DecodingSimulation, rng: np.random.Generator
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per participant: images (n_sentences, voxels) float32, z-scored per voxel, and each voxel's true
    correlation of signal and response (0 for noise voxels)."""
    z = np.asarray(encodings, dtype=np.float64)
    z = (z - z.mean(0)) / np.where(z.std(0) > 0, z.std(0), 1.0)
    n, width = z.shape
    shared = rng.standard_normal((width, settings.voxels))
    images, truths = [], []
    for _ in range(settings.participants):
        own = rng.standard_normal((width, settings.voxels))
        weights = np.sqrt(settings.shared_fraction) * shared + np.sqrt(1 - settings.shared_fraction) * own
        signal = z @ weights
        signal = (signal - signal.mean(0)) / signal.std(0)
        responsive = rng.random(settings.voxels) < settings.responsive_fraction
        r = np.where(responsive, rng.uniform(*settings.true_r, settings.voxels), 0.0)
        response = r * signal + np.sqrt(1 - r ** 2) * rng.standard_normal((n, settings.voxels))
        response = (response - response.mean(0)) / response.std(0)
        images.append(response.astype(np.float32))
        truths.append(r)
    return images, truths


def simulate_decoding_data(raw: str | Path, truth: str | Path, settings: DecodingSimulation,
                           texts: tuple[list[str], np.ndarray, np.ndarray] | None = None,
                           progress: bool = True) -> dict:
    """Write ``raw/<participant>/examples_384sentences.mat`` and ``truth/`` (``truth.json``, ``voxels.csv``,
    ``encodings.npy``); returns the truth."""
    raw, truth = Path(raw), Path(truth)
    sentences, passages, topics = texts if texts is not None else pereira_texts()
    encoder = checkpoint_encoder(settings.encoder, None)
    encodings = sentence_encodings(encoder, list(sentences), settings.layer, settings.pooling,
                                   max_length=settings.max_length)
    rng = np.random.default_rng([settings.seed, 2019])
    images, truths = simulate_images(encodings, settings, rng)
    shape = (16, 16, 16)
    bounds = np.linspace(0, settings.voxels, 5).astype(int)
    atlases = ("languageLH", "languageRH", "MD", "DMN")
    columns = {atlas: [part + 1 for part in np.array_split(np.arange(bounds[i], bounds[i + 1]), 2)]
               for i, atlas in enumerate(atlases)}
    n_passages, n_topics = int(np.max(passages)), int(np.max(topics))
    participants = list(PEREIRA_PARTICIPANTS[: settings.participants])
    with atomic_path(raw) as tmp:
        for participant, image in zip(participants, images):
            coords = np.column_stack(np.unravel_index(rng.choice(np.prod(shape), settings.voxels, replace=False),
                                                      shape))
            write_pereira(tmp, participant, image, sentences, passages,
                          [f"passage {p}" for p in range(1, n_passages + 1)], topics,
                          [f"topic {t}" for t in range(1, n_topics + 1)], columns, shape, coords)
    summary = {"encoder": settings.encoder, "layer": settings.layer, "pooling": settings.pooling,
               "participants": participants, "n_sentences": len(sentences), "voxels": settings.voxels,
               "median_true_r": {p: float(np.median(r[r > 0])) for p, r in zip(participants, truths)},
               "representation": "pretrained",
               "expected": "decoding into the pretrained encoder's space is far below chance MAR; a checkpoint "
                           "decodes worse the further its encodings move from truth/encodings.npy"}
    truth.mkdir(parents=True, exist_ok=True)
    with atomic_path(truth / "encodings.npy") as tmp:
        np.save(tmp, encodings)
    import pandas as pd

    with atomic_path(truth / "voxels.csv") as tmp:
        pd.DataFrame([{"subject": p, "column": j + 1, "true_r": float(r[j])}
                      for p, r in zip(participants, truths) for j in range(settings.voxels)]).to_csv(tmp, index=False)
    write_json(truth / "truth.json", summary)
    return summary
