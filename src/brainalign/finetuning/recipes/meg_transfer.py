"""meg_transfer: fine-tune on every MEG participant at once, then on each fMRI participant from there.

Per held-out run and seed: the MEG model (a head per MEG participant, the seed code's 1/n_k weights)
trains on the MEG words of the other runs, so the held-out run's text is never seen; each fMRI
participant's model then starts from its encoder with a new head (reference section 3). The held-out
MEG predictions are scored too (``data/models/meg_transfer/<meg dataset>``).
"""

from __future__ import annotations

from brainalign.finetuning.grid import Grid
from brainalign.finetuning.recipe import Plan, Recipe, recipe


@recipe("meg_transfer")
class MegTransfer(Recipe):
    name = "meg_transfer"
    keys = ["meg_head_epochs", "meg_full_epochs", "head_epochs", "full_epochs"]
    presets = {"default": {"meg_head_epochs": 10, "meg_full_epochs": 1, "head_epochs": 10, "full_epochs": 1},
               "paper": {"meg_head_epochs": 10, "meg_full_epochs": 20, "head_epochs": 10, "full_epochs": 20}}

    def plan(self, grid: Grid, settings: dict, dataset: str | None = None) -> Plan:
        fmri, meg = grid.models["fmri"], grid.models["meg"]
        tasks = []
        for seed in grid.models["seeds"]:
            for r in grid.runs(fmri):
                source = grid.task("meg_transfer", f"meg_transfer/{meg}/all/run{r}/seed{seed}",
                                   [(meg, s) for s in grid.subjects(meg)], r, seed,
                                   [["head", settings["meg_head_epochs"]], ["full", settings["meg_full_epochs"]]])
                tasks.append(source)
                tasks += [grid.task("meg_transfer", f"meg_transfer/{fmri}/{s}/run{r}/seed{seed}", [(fmri, s)], r,
                                    seed, [["head", settings["head_epochs"]], ["full", settings["full_epochs"]]],
                                    source=source)
                          for s in grid.subjects(fmri)]
        return Plan(tasks)
