"""The encoding stages' tasks, for the task store: features of a model over a text, fits of a participant, ceilings.

A feature task is keyed by the model, the text's words and the extraction settings, so datasets that read
the same story share it and adding a model to ``encoding.models`` computes that model only. A fit task is
keyed by the participant's prepared files, the features' task key and the settings; a ceiling task by
every participant's prepared responses. Every key holds the code key of this module's imports.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from brainalign.data.prepared import read_prepared
from brainalign.encoding.experiment import EncodingSettings, encode_layers, low_level_spaces
from brainalign.ridge import backend
from brainalign.features.encoders import named_static, weight_files
from brainalign.features.layers import (
    FeatureModel,
    extract_features,
    is_causal,
    load_feature_model,
    parse_feature_model,
)
from brainalign.files import md5_file
from brainalign.runs.code import code_key
from brainalign.runs.spec import StoredTask

LOW_LEVEL = "low_level"


def words_md5(words: list[str]) -> str:
    return hashlib.md5("\n".join(words).encode("utf-8")).hexdigest()


def _bookkeeping(started: float, n: int) -> dict:
    """What the task tracker logs for every task."""
    seconds = time.perf_counter() - started
    return {"history": [], "seconds": seconds, "resumed_at_epoch": 0,
            "examples_per_second": n / seconds if seconds > 0 else 0.0}


@dataclass(frozen=True)
class Extraction:
    """How features are extracted (params.yaml ``encoding``: context, pooling, batch_size, max_length, seed)."""

    context: int = 20
    pooling: str = "last"
    batch_size: int = 32
    max_length: int = 256
    seed: int = 0


@dataclass(frozen=True)
class FeatureTask(StoredTask):
    """Every layer of one feature model over one text."""

    model: str
    words: tuple[str, ...]
    extraction: Extraction

    namespace = "features"

    @property
    def label(self) -> str:
        return f"features/{self.model}/{len(self.words)} words"

    @cached_property
    def spec(self) -> dict:
        parsed = parse_feature_model(self.model)
        # A local model directory: what its files hold decides the features, not its name.
        files = [] if parsed.is_random else weight_files(parsed.base, parsed.untrained, tokenizer=True)
        return {"model": parsed.spec(self.extraction.seed), "model_md5": {p.name: md5_file(p) for p in files},
                "words_md5": words_md5(list(self.words)), "n_words": len(self.words),
                "extraction": asdict(self.extraction), "code": code_key(__name__)}

    def params(self) -> dict:
        return {"model": self.model, "n_words": len(self.words), **asdict(self.extraction)}

    def tags(self) -> dict[str, str]:
        return {"feature_key": self.key, "model": self.model, "input_md5.words": self.spec["words_md5"]}


def extract(task: FeatureTask, directory: Path, on_epoch: Callable[[dict], None] | None = None,
            progress: bool = True) -> dict:
    """The work of a feature task: ``features.npy`` (n_layers, n_words, width) in ``directory``."""
    started = time.perf_counter()
    parsed = parse_feature_model(task.model)
    loaded = load_feature_model(parsed, seed=task.extraction.seed)
    e = task.extraction
    features = extract_features(loaded, list(task.words), context=e.context, pooling=e.pooling,
                                batch_size=e.batch_size, max_length=e.max_length, out=directory / "features.npy",
                                seed=e.seed, progress=progress)
    return {**describe(parsed, loaded), "n_layers": int(features.shape[0]), "width": int(features.shape[2]),
            **_bookkeeping(started, len(task.words))}


def describe(parsed: FeatureModel, loaded: Any) -> dict:
    """What the report says about a feature model: trained or not, causal or not, where it came from."""
    if parsed.is_random:
        return {"description": f"random embedding, {parsed.random_width} wide (one fixed vector per word type)",
                "feature_space": "random", "causal": False, "trained": False}
    if parsed.is_static:
        return {"description": named_static(parsed.static).description + " (one fixed vector per word)",
                "feature_space": "static", "causal": False, "trained": True}
    from brainalign.features.encoders import named_encoder

    named = named_encoder(parsed.base)
    origin = named.description if named is not None else parsed.base
    return {"description": origin + (" — untrained: fresh weights from its config" if parsed.untrained else ""),
            "feature_space": "contextual", "causal": is_causal(loaded.model.config), "trained": not parsed.untrained}


def prepared_md5(prepared_dir: str | Path, subject: str) -> dict[str, str]:
    """The MD5 of every file of a prepared participant (what a fit reads)."""
    folder = Path(prepared_dir) / subject
    return {f"{subject}/{path.name}": md5_file(path) for path in sorted(folder.iterdir()) if path.is_file()}


@dataclass(frozen=True)
class FitTask(StoredTask):
    """Every layer of one feature model (or one low-level space) fitted to one participant."""

    dataset: str
    prepared: str
    subject: str
    model: str
    features: str  # the feature task's key, or LOW_LEVEL
    settings_json: str  # EncodingSettings as JSON (a frozen dataclass holds no arrays)
    seed: int = 0
    features_file: str = ""  # where the features lie (the features stage's output); not part of the key
    feature_space: str = LOW_LEVEL

    namespace = "encoding"

    @property
    def label(self) -> str:
        return f"encoding/{self.dataset}/{self.model}/participant {self.subject}"

    @cached_property
    def spec(self) -> dict:
        return {"dataset": self.dataset, "subject": self.subject, "model": self.model, "features": self.features,
                "prepared_md5": prepared_md5(self.prepared, self.subject), "settings": json.loads(self.settings_json),
                "seed": self.seed, "code": code_key(__name__)}

    def params(self) -> dict:
        return {"dataset": self.dataset, "subject": self.subject, "model": self.model, "seed": self.seed,
                **json.loads(self.settings_json)}

    def tags(self) -> dict[str, str]:
        return {"encoding_key": self.key, "model": self.model, "subject": self.subject, "dataset": self.dataset,
                **{f"input_md5.data/prepared/{self.dataset}/{k}": v for k, v in self.spec["prepared_md5"].items()}}

    @property
    def encoding_settings(self) -> EncodingSettings:
        values = json.loads(self.settings_json)
        return EncodingSettings(**{**values, "delays": tuple(values["delays"]), "banded": tuple(values["banded"]),
                                   "measures": tuple(values["measures"]), "alphas": np.asarray(values["alphas"])})


def settings_json(settings: EncodingSettings) -> str:
    values = asdict(settings)
    values["alphas"] = [float(a) for a in settings.alphas]
    values["delays"], values["measures"] = list(settings.delays), list(settings.measures)
    values["banded"] = list(settings.banded)
    return json.dumps(values, sort_keys=True)


def fitter(device: str = "cpu", progress: bool = True) -> Callable:
    """The work of fit tasks: ``scores.parquet`` and ``significance.parquet`` in the task's directory."""
    def fit(task: FitTask, directory: Path, on_epoch: Callable[[dict], None] | None = None) -> dict:
        started = time.perf_counter()
        subject = read_prepared(task.prepared, task.subject)
        if task.features == LOW_LEVEL:
            features = low_level_spaces(subject, [task.model])[task.model]
        else:
            features = np.load(task.features_file, mmap_mode="r", allow_pickle=False)
        space = task.feature_space
        with backend(device):
            scores, significance = encode_layers(subject, features, task.model, task.encoding_settings,
                                                 dataset=task.dataset, feature_space=space, seed=task.seed,
                                                 progress=progress)
        scores.to_parquet(directory / "scores.parquet", index=False)
        significance.to_parquet(directory / "significance.parquet", index=False)
        r = scores[scores["measure"] == "pearson_r"].groupby("layer")["value"].mean().fillna(0.0)
        return {"n_layers": int(features.shape[0]), "best_layer": int(r.idxmax()), "best_mean_r": float(r.max()),
                "feature_space": space, **_bookkeeping(started, len(subject.examples) * int(features.shape[0]))}
    return fit


def read_fit(store_root: Path, task: FitTask) -> tuple[pd.DataFrame, pd.DataFrame]:
    directory = store_root / task.id
    return pd.read_parquet(directory / "scores.parquet"), pd.read_parquet(directory / "significance.parquet")
