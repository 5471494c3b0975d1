"""What a model of the seed paper is to the pipeline: a recipe that turns settings into a grid of tasks.

A recipe names its params.yaml section and keys, the values its null keys take in each preset, whether
it runs once per dataset (``vanilla@fmri``, ``vanilla@meg``) or once (``train@finetuned``), and how it
plans its tasks. Recipes register by name in :data:`RECIPES` (``@recipe(name)``); each lives in its own module of
:mod:`brainalign.finetuning.recipes`, and ``stages/train.py`` runs any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from brainalign.config.params import section
from brainalign.errors import ConfigError
from brainalign.finetuning.grid import MODELS_PRESETS, Grid
from brainalign.finetuning.tasks import Task
from brainalign.registry import Registry


@dataclass
class Plan:
    """A recipe's tasks, and what it decided on the way (logged with the stage's run)."""

    tasks: list[Task]
    notes: dict[str, Any] = field(default_factory=dict)


class Recipe:
    """A model: its params section, presets and task grid. Subclasses set the class attributes and
    :meth:`plan`."""

    name: ClassVar[str]
    keys: ClassVar[list[str]]
    presets: ClassVar[dict[str, dict[str, Any]]]
    per_dataset: ClassVar[bool] = False

    def settings(self, params: dict, preset: str) -> dict:
        """Section ``name`` of params.yaml with its null keys filled from ``preset``."""
        if preset not in MODELS_PRESETS:
            raise ConfigError(f"params.yaml: models.preset: expected one of {sorted(MODELS_PRESETS)}, found {preset!r}")
        values = dict(section(params, self.name, self.keys))
        for key, value in values.items():
            if value is None:
                if key not in self.presets.get(preset, {}):
                    raise ConfigError(f"params.yaml: {self.name}.{key}: null, and preset {preset!r} has no value for it")
                values[key] = self.presets[preset][key]
        for key, value in values.items():
            if key.endswith("epochs") and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"params.yaml: {self.name}.{key}: expected a whole number >= 0, found {value!r}")
        return values

    def stage(self, dataset: str | None) -> str:
        """The DVC stage that runs this recipe (on ``dataset`` when it runs per dataset)."""
        return f"{self.name}@{dataset}" if self.per_dataset else f"train@{self.name}"

    def output(self, dataset: str | None, models_root: str | Path = "data/models") -> Path:
        return Path(models_root) / self.name / dataset if self.per_dataset else Path(models_root) / self.name

    def plan(self, grid: Grid, settings: dict, dataset: str | None) -> Plan:
        raise NotImplementedError


RECIPES: Registry[Recipe] = Registry("model recipe", "the model (stages/train.py's first argument)")


def recipe(name: str) -> Callable[[type[Recipe]], type[Recipe]]:
    """A class decorator: registers an instance of the recipe class under ``name`` (its ``name``)."""
    def add(cls: type[Recipe]) -> type[Recipe]:
        if cls.name != name:
            raise ValueError(f"recipe {cls.__name__}: registered as {name!r} but named {cls.name!r}")
        RECIPES.register(name)(cls())
        return cls
    return add
