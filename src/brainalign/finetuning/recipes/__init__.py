"""The seed paper's five models, one recipe module each, registered in :data:`RECIPES`.

Importing this package imports every recipe module, so the registry is complete. Adding a model is one
module here with a decorated :class:`~brainalign.finetuning.recipe.Recipe`, a params.yaml section,
and its name in dvc.yaml's ``train`` list.
"""

from brainalign.finetuning.grid import models_settings
from brainalign.finetuning.recipe import RECIPES, Plan, Recipe, recipe
from brainalign.finetuning.recipes import finetuned, joint, meg_transfer, participant_transfer, vanilla  # noqa: F401


def resolve(params: dict, name: str) -> dict:
    """Section ``name`` of params.yaml (``models`` or a recipe's) with its null keys filled by ``models.preset``."""
    models = models_settings(params)
    return models if name == "models" else RECIPES.get(name).settings(params, models["preset"])


__all__ = ["RECIPES", "Plan", "Recipe", "recipe", "resolve"]
