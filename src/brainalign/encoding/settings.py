"""params.yaml's ``encoding`` section, checked, as the features and encoding stages read it."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import pandas as pd

from brainalign.config.params import section
from brainalign.data.prepared import prepared_subjects
from brainalign.encoding.experiment import ENCODING_MEASURES, EncodingSettings
from brainalign.encoding.tasks import Extraction
from brainalign.errors import ConfigError, InputError
from brainalign.features.layers import POOLINGS, parse_feature_model

KEYS = ["models", "low_level", "banded", "context", "pooling", "batch_size", "max_length", "seed", "downsample", "delays",
        "alphas", "n_shifts", "q", "ceiling_bootstraps", "channels", "device", "workers"]
CHANNELS = ("language", "all")


def encoding_section(params: dict) -> dict:
    values = section(params, "encoding", KEYS)
    models = values["models"]
    if not isinstance(models, list) or not models or len(set(map(str, models))) != len(models):
        raise ConfigError(f"params.yaml: encoding.models: expected a list of distinct model names, found {models!r}")
    for model in models:
        parse_feature_model(model)
    for key in ("low_level", "banded"):
        if not isinstance(values[key], list):
            raise ConfigError(f"params.yaml: encoding.{key}: expected a list, found {values[key]!r}")
    if values["pooling"] not in POOLINGS:
        raise ConfigError(f"params.yaml: encoding.pooling: expected one of {POOLINGS}, found {values['pooling']!r}")
    if values["channels"] not in CHANNELS:
        raise ConfigError(f"params.yaml: encoding.channels: expected one of {CHANNELS}, found {values['channels']!r}")
    alphas = values["alphas"]
    if not (isinstance(alphas, list) and len(alphas) == 3 and alphas[0] < alphas[1] and int(alphas[2]) >= 1):
        raise ConfigError(f"params.yaml: encoding.alphas: expected [lowest log10, highest log10, count], "
                          f"found {alphas!r}")
    if not isinstance(values["workers"], int) or values["workers"] < 1:
        raise ConfigError(f"params.yaml: encoding.workers: expected a whole number >= 1, found {values['workers']!r}")
    return values


def extraction_settings(params: dict) -> tuple[list[str], Extraction]:
    """The models and how their features are extracted."""
    values = encoding_section(params)
    return [str(m) for m in values["models"]], Extraction(
        context=int(values["context"]), pooling=values["pooling"], batch_size=int(values["batch_size"]),
        max_length=int(values["max_length"]), seed=int(values["seed"]))


def fit_settings(params: dict, score: dict) -> EncodingSettings:
    """How the encoding stage fits and scores (``score`` is the checked ``score`` section)."""
    values = encoding_section(params)
    low, high, count = values["alphas"]
    return EncodingSettings(delays=tuple(int(d) for d in values["delays"]), downsample=values["downsample"],
                            alphas=np.logspace(float(low), float(high), int(count)), measures=ENCODING_MEASURES,
                            k=int(score["k"]), n_draws=int(score["n_draws"]), score_seed=int(score["seed"]),
                            draws=score["draws"], n_shifts=int(values["n_shifts"]), q=float(values["q"]),
                            banded=tuple(str(b) for b in values["banded"]))


def story_of(prepared_dir: str | os.PathLike, read: Callable) -> pd.DataFrame:
    """The words every participant of a prepared dataset read (one story: features are per text)."""
    subjects = prepared_subjects(prepared_dir)
    first = read(prepared_dir, subjects[0])
    if first.words is None:
        raise InputError(first.source, "words.parquet", "the story's words (re-run the prepare stage)", "none")
    for subject in subjects[1:]:
        other = read(prepared_dir, subject)
        if other.words is None or other.words["word"].tolist() != first.words["word"].tolist():
            raise InputError(other.source, "words", f"the words participant {first.subject} read ({first.source}): "
                             "encoding models read one story per dataset", "a different text")
    return first.words
