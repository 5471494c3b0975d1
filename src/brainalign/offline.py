"""The process environment brainalign runs in: offline, no telemetry, caches inside the repository."""

from __future__ import annotations

import os
from pathlib import Path

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}
CACHE_VARIABLES = ("MPLCONFIGDIR", "DVC_SITE_CACHE_DIR")


def go_offline(repository: str | os.PathLike | None = None) -> None:
    """Set the variables that keep libraries off the network and their caches inside ``repository``.

    Values the user already set are kept, so a deliberate override still works.
    """
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if repository is not None:
        root = Path(repository)
        os.environ.setdefault("MPLCONFIGDIR", str(root / ".cache" / "matplotlib"))
        os.environ.setdefault("DVC_SITE_CACHE_DIR", str(root / ".dvc" / "site-cache"))


def offline_environment() -> dict[str, str]:
    """The variables :func:`go_offline` sets, with this process's values: for processes that another shell
    started, such as the workers of a Ray cluster."""
    return {key: os.environ[key] for key in (*OFFLINE_ENVIRONMENT, *CACHE_VARIABLES) if key in os.environ}
