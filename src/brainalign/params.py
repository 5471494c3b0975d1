"""Reading ``params.yaml``: one section per stage, plus the shared ``dataset`` section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from brainalign.errors import ConfigError


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """The whole parameter file as a dict."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no parameter file (run from the repository root)")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, found {type(params).__name__}")
    return params


def section(params: dict[str, Any], name: str, path: str = "params.yaml") -> dict[str, Any]:
    """One section, with a clear error when it is missing."""
    if name not in params or not isinstance(params[name], dict):
        raise ConfigError(f"{path}: section {name!r}: expected a mapping, found {params.get(name)!r}")
    return params[name]
