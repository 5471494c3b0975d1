"""Reading ``params.yaml``: one section per stage, plus ``datasets``, which several stages read."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from brainalign.errors import ConfigError

DATASET_KEYS = ["source", "path", "participants", "runs", "tr"]


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The whole parameter file as a dict."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no parameter file (run from the repository root)")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, found {type(params).__name__}")
    return params


def section(params: dict[str, Any], name: str, keys: Iterable[str] | None = None,
            path: str = "params.yaml") -> dict[str, Any]:
    """One section, checked: it must be a mapping and, when ``keys`` are given, hold exactly those keys.

    An unknown key is as much an error as a missing one: a typo (``epoch`` for ``epochs``) must not be
    silently ignored while the default runs.
    """
    if name not in params or not isinstance(params[name], dict):
        raise ConfigError(f"{path}: section {name!r}: expected a mapping, found {params.get(name)!r}")
    values = params[name]
    if keys is not None:
        keys = list(keys)
        missing = [k for k in keys if k not in values]
        unknown = [k for k in values if k not in keys]
        if missing or unknown:
            raise ConfigError(f"{path}: section {name!r}: expected keys {keys}, "
                              f"found missing {missing} and unknown {unknown}")
    return values


def field_names(cls: type) -> list[str]:
    """The fields of a dataclass, for :func:`section`'s ``keys``."""
    return [f.name for f in dataclasses.fields(cls)]


def dataset(params: dict[str, Any], name: str, path: str = "params.yaml") -> dict[str, Any]:
    """The settings of dataset ``name`` (``datasets.<name>``), checked for exactly :data:`DATASET_KEYS`."""
    datasets = section(params, "datasets", path=path)
    if name not in datasets:
        raise ConfigError(f"{path}: datasets: expected a dataset named {name!r}, found {sorted(datasets)}")
    return section(datasets, name, DATASET_KEYS, path=f"{path}: datasets")
