"""Stage participant_transfer: fine-tune on the most predictable participant, then new heads for the others.

Per held-out run and seed: the source participant (``participant_transfer.source``, or ``auto``: the one
the vanilla model predicts best on the other runs) is fine-tuned (head, then full epochs); the other
participants each get a new head on its frozen encoder (reference section 3). The source's own
predictions are written too, under its own id, so every participant is scored.
"""

from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.errors import ConfigError  # noqa: E402
from brainalign.finetuning.grid import (export, grid_from_params, heldout_summary, most_predictable,  # noqa: E402
                             participant_transfer_tasks, resolve)
from brainalign.config.params import load_params  # noqa: E402


def main() -> None:
    params = load_params()
    grid, settings = grid_from_params(params), resolve(params, "participant_transfer")
    dataset = grid.models["fmri"]
    with tracking.stage_run("participant_transfer", {"models": grid.models, "participant_transfer": settings}):
        subjects = grid.subjects(dataset)
        if settings["source"] == "auto":
            sources = {r: most_predictable(f"data/models/vanilla/{dataset}", grid.prepared_root / dataset, r)
                       for r in grid.runs(dataset)}
        elif str(settings["source"]) in subjects:
            sources = {r: str(settings["source"]) for r in grid.runs(dataset)}
        else:
            raise ConfigError(f"params.yaml: participant_transfer.source: expected 'auto' or one of {subjects}, "
                              f"found {settings['source']!r}")
        mlflow.log_params({f"source_for_run{r}": s for r, s in sources.items()})
        store = tracking.task_store()
        tasks = participant_transfer_tasks(grid, settings, sources)
        tracking.run_tasks(tasks, store, summarise=lambda task: heldout_summary(task, store, grid))
        export(tasks, store, "data/models/participant_transfer")


if __name__ == "__main__":
    raise SystemExit(guarded(main))
