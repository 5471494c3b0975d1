"""joint: one encoder with a head for every MEG and every fMRI participant, per held-out run and seed.

Batches hold fMRI windows or MEG words; each head's loss is weighted by the seed code's 1/n_k task
weights (reference section 3). Held-out predictions go to ``data/models/joint/<dataset>/...`` for both
datasets.
"""

from __future__ import annotations

from brainalign.finetuning.grid import Grid
from brainalign.finetuning.recipe import Plan, Recipe, recipe


@recipe("joint")
class Joint(Recipe):
    name = "joint"
    keys = ["head_epochs", "full_epochs"]
    presets = {"default": {"head_epochs": 10, "full_epochs": 1}, "paper": {"head_epochs": 10, "full_epochs": 50}}

    def plan(self, grid: Grid, settings: dict, dataset: str | None = None) -> Plan:
        fmri, meg = grid.models["fmri"], grid.models["meg"]
        heads = [(meg, s) for s in grid.subjects(meg)] + [(fmri, s) for s in grid.subjects(fmri)]
        return Plan([grid.task("joint", f"joint/all/run{r}/seed{seed}", heads, r, seed,
                               [["head", settings["head_epochs"]], ["full", settings["full_epochs"]]])
                     for seed in grid.models["seeds"] for r in grid.runs(fmri)])
