"""participant_transfer: fine-tune on the most predictable participant, then new heads for the others.

Per held-out run and seed: the source participant (``participant_transfer.source``, or ``auto``: the one
the vanilla model predicts best on the other runs) is fine-tuned (head, then full epochs); the other
participants each get a new head on its frozen encoder (reference section 3). The source's own
predictions are written too, under its own id, so every participant is scored.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from brainalign.data.prepared import prepared_subjects, read_prepared
from brainalign.errors import ConfigError
from brainalign.finetuning.grid import Grid
from brainalign.finetuning.recipe import Plan, Recipe, recipe
from brainalign.metrics.variance import pearson_r


@recipe("participant_transfer")
class ParticipantTransfer(Recipe):
    name = "participant_transfer"
    keys = ["source", "source_head_epochs", "source_full_epochs", "head_epochs"]
    presets = {"default": {"source_head_epochs": 2, "source_full_epochs": 1, "head_epochs": 10},
               "paper": {"source_head_epochs": 2, "source_full_epochs": 18, "head_epochs": 10}}

    def plan(self, grid: Grid, settings: dict, dataset: str | None = None,
             models_root: str | os.PathLike = "data/models") -> Plan:
        dataset = grid.models["fmri"]
        subjects = grid.subjects(dataset)
        if settings["source"] == "auto":
            sources = {r: most_predictable(Path(models_root) / "vanilla" / dataset, grid.prepared_root / dataset, r)
                       for r in grid.runs(dataset)}
        elif str(settings["source"]) in subjects:
            sources = {r: str(settings["source"]) for r in grid.runs(dataset)}
        else:
            raise ConfigError(f"params.yaml: participant_transfer.source: expected 'auto' or one of {subjects}, "
                              f"found {settings['source']!r}")
        tasks = []
        for seed in grid.models["seeds"]:
            for r in grid.runs(dataset):
                source = grid.task("participant_transfer",
                                   f"participant_transfer/{dataset}/{sources[r]}/run{r}/seed{seed}/source",
                                   [(dataset, sources[r])], r, seed,
                                   [["head", settings["source_head_epochs"]], ["full", settings["source_full_epochs"]]])
                tasks.append(source)
                tasks += [grid.task("participant_transfer", f"participant_transfer/{dataset}/{s}/run{r}/seed{seed}",
                                    [(dataset, s)], r, seed, [["head", settings["head_epochs"]]], source=source)
                          for s in subjects if s != sources[r]]
        return Plan(tasks, {f"source_for_run{r}": s for r, s in sources.items()})


def most_predictable(vanilla_dir: str | os.PathLike, prepared_dir: str | os.PathLike, heldout_run: int,
                     top_fraction: float = 0.1) -> str:
    """The participant the vanilla model predicts best, judged without the held-out run.

    Per participant: the mean Pearson r of its best ``top_fraction`` of channels, averaged over the
    vanilla model's other held-out runs (every seed), so the run a transfer model is tested on never
    chooses its source.
    """
    scores = {}
    for subject in prepared_subjects(prepared_dir):
        data = read_prepared(prepared_dir, subject)
        values = []
        for fold in data.folds:
            if fold.heldout_run == heldout_run:
                continue
            for seed_dir in sorted((Path(vanilla_dir) / subject / f"fold{fold.index}").glob("seed*")):
                r = np.nan_to_num(pearson_r(data.responses[fold.test],
                                            np.load(seed_dir / "predictions.npy", allow_pickle=False)))
                values.append(np.sort(r)[::-1][: max(1, int(top_fraction * len(r)))].mean())
        if not values:
            raise ConfigError(f"participant_transfer.source: auto needs vanilla predictions under {vanilla_dir}, "
                              f"found none for participant {subject}")
        scores[subject] = float(np.mean(values))
    return max(scores, key=lambda s: (scores[s], s))


