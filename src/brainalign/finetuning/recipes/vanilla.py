"""vanilla: the frozen encoder with a linear head per participant, held-out run and seed.

The heads read the ``encode`` stage's cached features (the encoder never runs again) and train with the
seed paper's optimiser and schedule. Runs once per dataset (``vanilla@fmri``, ``vanilla@meg``).
"""

from __future__ import annotations

from brainalign.finetuning.grid import Grid
from brainalign.finetuning.recipe import Plan, Recipe, recipe
from brainalign.finetuning.tasks import Task


def per_participant_tasks(grid: Grid, model: str, dataset: str, phases: list[list]) -> list[Task]:
    """One task per participant, held-out run and seed (vanilla, finetuned)."""
    return [grid.task(model, f"{model}/{dataset}/{s}/run{r}/seed{seed}", [(dataset, s)], r, seed, phases)
            for seed in grid.models["seeds"] for r in grid.runs(dataset) for s in grid.subjects(dataset)]


@recipe("vanilla")
class Vanilla(Recipe):
    name = "vanilla"
    keys = ["epochs"]
    presets = {"default": {"epochs": 10}, "paper": {"epochs": 10}}
    per_dataset = True

    def plan(self, grid: Grid, settings: dict, dataset: str | None) -> Plan:
        return Plan(per_participant_tasks(grid, "vanilla", dataset, [["head", settings["epochs"]]]))
