"""finetuned: per fMRI participant, held-out run and seed, head-only epochs then full fine-tuning.

The head epochs read the ``encode`` stage's cached features, as the vanilla model does, and with the same
seed start from the same head and see the examples in the same order; the full epochs then train the
encoder and head together (reference section 3).
"""

from __future__ import annotations

from brainalign.finetuning.grid import Grid
from brainalign.finetuning.recipe import Plan, Recipe, recipe
from brainalign.finetuning.recipes.vanilla import per_participant_tasks


@recipe("finetuned")
class Finetuned(Recipe):
    name = "finetuned"
    keys = ["head_epochs", "full_epochs"]
    presets = {"default": {"head_epochs": 10, "full_epochs": 1}, "paper": {"head_epochs": 10, "full_epochs": 20}}

    def plan(self, grid: Grid, settings: dict, dataset: str | None = None) -> Plan:
        return Plan(per_participant_tasks(grid, "finetuned", grid.models["fmri"],
                                          [["head", settings["head_epochs"]], ["full", settings["full_epochs"]]]))
