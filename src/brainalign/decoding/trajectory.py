"""A fine-tuning trajectory: an encoder trained for ``steps`` steps on one objective, a checkpoint every few.

A trajectory run (one trajectory, one seed) is a task of the task store
(``<store>/trajectories/<key>/``), keyed by the base encoder and its files' MD5, the objective and the MD5 of
its data, the settings, the seed, the device and the code. It writes

``step-NNNN.safetensors``
    the encoder's weights after step NNNN (the base encoder is step 0 and is not copied), with its card
    ``step-NNNN.json`` (base encoder, objective, seed, step, loss, dev metrics);
``checkpoint.safetensors``
    the training state at the last kept checkpoint (weights with the head, optimiser, schedule, the torch RNG,
    the history), while the run is unfinished;
``result.json``
    the per-step history (loss, learning rate, dev metrics at each checkpoint), written last.

Which examples a step trains on and which pieces it masks are functions of (seed, step) alone and dropout
draws from the torch RNG saved in the training state, so a run killed at any moment and run again resumes
from its last checkpoint to bitwise-identical checkpoints on a CPU.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from brainalign.decoding.objectives import Objective, TrajectorySettings, make_objective
from brainalign.features.encoders import load_encoder, weight_files
from brainalign.files import atomic_path, md5_file
from brainalign.finetuning.training import Schedule, load_training_state, make_optimizer, save_training_state
from brainalign.runs.code import code_key
from brainalign.runs.spec import StoredTask


def checkpoint_name(step: int) -> str:
    return f"step-{step:04d}"


def step_rows(n_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The examples of step ``step`` (1-based): consecutive slices of seeded per-epoch permutations, so any
    step's batch is known without replaying the ones before it."""
    positions = np.arange((step - 1) * batch_size, step * batch_size)
    epochs, offsets = np.divmod(positions, n_examples)
    permutations = {int(e): np.random.default_rng([seed, 4, int(e)]).permutation(n_examples) for e in np.unique(epochs)}
    return np.array([permutations[int(e)][o] for e, o in zip(epochs, offsets)], dtype=np.int64)


@dataclass(frozen=True)
class TrajectoryRun(StoredTask):
    """One trajectory (``name``, its objective and data) fine-tuned from ``encoder`` with one seed."""

    name: str
    objective: str
    options_json: str
    encoder: str
    inputs_json: str
    settings: TrajectorySettings
    seed: int
    device: str = "cpu"

    namespace = "trajectories"

    @property
    def label(self) -> str:
        return f"trajectory/{self.name}/seed{self.seed}"

    @property
    def options(self) -> dict:
        return json.loads(self.options_json)

    @cached_property
    def spec(self) -> dict:
        return {"objective": self.objective, "options": self.options,
                "encoder": self.encoder, "encoder_md5": {p.name: md5_file(p) for p in weight_files(self.encoder)},
                "inputs": json.loads(self.inputs_json), "settings": asdict(self.settings), "seed": self.seed,
                # Only the CPU is bitwise reproducible; a GPU run is its own task.
                "device": "cpu" if self.device == "cpu" else "cuda", "code": code_key(__name__)}

    def params(self) -> dict:
        return {"trajectory": self.name, "objective": self.objective, **self.options, "encoder": self.encoder,
                "seed": self.seed, "device": self.device, **asdict(self.settings)}

    def tags(self) -> dict[str, str]:
        return {"trajectory": self.name, "objective": self.objective, "trajectory_key": self.key,
                **{f"input_md5.{name}": md5 for name, md5 in json.loads(self.inputs_json).items()}}


def plan_run(name: str, objective: Objective, encoder: str, settings: TrajectorySettings, seed: int,
             device: str = "cpu") -> TrajectoryRun:
    """The task of fine-tuning ``encoder`` on ``objective`` (already built for ``seed``)."""
    options = {k: v for k, v in objective.options.items() if k != "root"}
    return TrajectoryRun(name=name, objective=objective.name, options_json=json.dumps(options, sort_keys=True),
                         encoder=encoder, inputs_json=json.dumps(objective.inputs(), sort_keys=True),
                         settings=settings, seed=seed, device=device)


def train_trajectory(run: TrajectoryRun, objective: Objective, directory: Path,
                     on_step: Callable[[dict], None] | None = None, progress: bool = True) -> dict:
    """Fine-tune, keeping the encoder at every checkpoint step; resume from ``directory``'s training state.

    Returns
    -------
    dict
        ``history`` (one record per step: ``step``, ``loss``, ``lr``; dev metrics ``dev.*`` at step 0 and at
        every checkpoint), ``checkpoints`` (the kept steps), ``seconds``, ``resumed_at_epoch`` (the step it
        resumed after), ``examples_per_second``.
    """
    started = time.perf_counter()
    settings, device = run.settings, run.device
    torch.manual_seed(run.seed)  # dropout
    encoder = load_encoder(run.encoder)
    model = objective.build(encoder.model).to(device)
    schedule = Schedule(epochs=1, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                        warmup_fraction=settings.warmup_fraction, weight_decay=settings.weight_decay)
    optimizer, scheduler = make_optimizer(model, schedule, settings.steps)
    state = directory / "checkpoint.safetensors"
    history: list[dict] = []
    if state.exists():
        history = json.loads(load_training_state(state, model, optimizer, scheduler)[1]["history"])
        for record in history:
            if on_step:
                on_step({**record, "replayed": True})
    else:
        record = {"epoch": 0, "step": 0, **objective.evaluate(model, device)}
        history.append(record)
        if on_step:
            on_step(record)
    done = history[-1]["step"]
    kept = set(settings.checkpoint_steps)
    model.train()
    bar = tqdm(range(done + 1, settings.steps + 1), desc=run.label, leave=False, disable=not progress)
    for step in bar:
        rows = step_rows(objective.n_examples, settings.batch_size, run.seed, step)
        loss = model.loss(objective.batch(rows, step, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        record = {"epoch": step, "step": step, "loss": float(loss.detach()), "lr": float(scheduler.get_last_lr()[0])}
        if step in kept:
            record.update(objective.evaluate(model, device))
            _save_encoder(directory, step, model.encoder, run, record)
            history.append(record)
            save_training_state(state, model, optimizer, scheduler, metadata={"history": json.dumps(history)})
        else:
            history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if on_step:
            on_step(record)
    seconds = time.perf_counter() - started
    trained = settings.steps - done
    return {"history": history, "checkpoints": sorted(kept), "seconds": seconds, "resumed_at_epoch": done,
            "examples_per_second": trained * settings.batch_size / seconds if seconds > 0 else 0.0}


def _save_encoder(directory: Path, step: int, encoder: torch.nn.Module, run: TrajectoryRun, record: dict) -> None:
    name = checkpoint_name(step)
    tensors = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    card = {"trajectory": run.name, "objective": run.objective, "options": run.options, "encoder": run.encoder,
            "seed": run.seed, "step": step, "steps": run.settings.steps, "task_key": run.key,
            "metrics": {k: v for k, v in record.items() if k not in ("epoch",)}}
    with atomic_path(directory / f"{name}.safetensors") as tmp:
        save_file(tensors, tmp, metadata={"card": json.dumps(card, sort_keys=True)})
    with atomic_path(directory / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")


def trainer(objectives: dict[int, Objective], progress: bool = True) -> Callable:
    """The task store's work for trajectory runs (``objectives``: the objective built for each seed)."""
    def work(run: TrajectoryRun, directory: Path, on_epoch: Callable[[dict], None] | None) -> dict:
        return train_trajectory(run, objectives[run.seed], directory, on_epoch, progress)
    return work


def build_objectives(name: str, entry: dict, tokenizer, settings: TrajectorySettings,
                     seeds: list[int]) -> dict[int, Objective]:
    """The objective ``entry`` names (``objective`` plus its data options), built once per seed."""
    options = {k: v for k, v in entry.items() if k != "objective"}
    return {seed: make_objective(str(entry["objective"]), options, tokenizer, settings, seed) for seed in seeds}


def export_trajectory(runs: list[TrajectoryRun], store_root: str | os.PathLike, out: str | os.PathLike) -> dict:
    """``out`` (``data/decoding/trajectories/<name>``): per seed ``seed<s>/step-NNNN.{safetensors,json}``
    hard-linked from the store, ``history.csv`` (every step of every seed) and ``trajectory.json``."""
    import pandas as pd

    from brainalign.files import link_or_copy
    from brainalign.runs.store import TaskStore

    store = TaskStore(store_root)
    rows, seeds = [], {}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for run in runs:
            result = store.read_result(run)
            target = tmp / f"seed{run.seed}"
            target.mkdir()
            for step in result["checkpoints"]:
                for suffix in (".safetensors", ".json"):
                    link_or_copy(store.directory(run) / f"{checkpoint_name(step)}{suffix}",
                                 target / f"{checkpoint_name(step)}{suffix}")
            rows += [{"trajectory": run.name, "objective": run.objective, "seed": run.seed,
                      **{k: v for k, v in r.items() if k not in ("epoch", "replayed")}} for r in result["history"]]
            seeds[str(run.seed)] = {"task_key": run.key, "checkpoints": result["checkpoints"]}
        pd.DataFrame(rows).to_csv(tmp / "history.csv", index=False)
        first = runs[0]
        summary = {"trajectory": first.name, "objective": first.objective, "options": first.options,
                   "encoder": first.encoder, "settings": asdict(first.settings), "seeds": seeds}
        (tmp / "trajectory.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
