"""The ``decoding`` section of params.yaml, checked, with its null keys filled from the preset.

``default`` is small enough for a laptop's ``make run`` (a MiniLM step on 2 CPU cores costs about 0.5 s a
batch of 8 sentence pairs): one seed, 10 steps of 8 examples, a checkpoint every 5, and a learning rate raised to
1e-4 so that 10 steps move the encoder visibly (at the paper's 2e-5 they barely do).
``paper`` is Gauthier & Levy's: 4 seeds, 250 steps, a checkpoint every 5, batches of 32, 2e-5 (SQuAD 3e-5).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from brainalign.config.params import section
from brainalign.decoding.objectives import OBJECTIVES, TrajectorySettings
from brainalign.errors import ConfigError

KEYS = ("preset", "encoder", "data", "experiment", "atlases", "trajectories", "seeds", "steps", "checkpoint_every",
        "learning_rate", "squad_learning_rate", "batch_size", "max_length", "max_train", "max_dev", "layer",
        "pooling", "n_components", "folds", "inner_folds", "alphas", "leaky_pca", "folds_by", "seed", "device")

PRESETS: dict[str, dict[str, Any]] = {
    "default": {"seeds": [0], "steps": 10, "checkpoint_every": 5, "learning_rate": 1e-4,
                "squad_learning_rate": 1e-4, "batch_size": 8},
    "paper": {"seeds": [0, 1, 2, 3], "steps": 250, "checkpoint_every": 5, "learning_rate": 2e-5,
              "squad_learning_rate": 3e-5, "batch_size": 32},
}
FOLDS_BY = ("sentence", "passage")


@dataclass(frozen=True)
class DecoderSettings:
    """The decoder (reference §8): PCA to ``n_components``, ridge with an inner-CV penalty, outer folds."""

    n_components: int = 256
    folds: int = 8
    inner_folds: int = 5
    alphas: tuple[float, ...] = (1e1, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    leaky_pca: bool = False
    folds_by: str = "sentence"
    seed: int = 0


@dataclass(frozen=True)
class DecodingPlan:
    encoder: str
    data: str
    experiment: str
    atlases: list[str] | None
    trajectories: dict[str, dict]
    seeds: list[int]
    training: TrajectorySettings
    squad_learning_rate: float
    layer: int
    pooling: str
    decoder: DecoderSettings
    device: str
    preset: str

    def settings_for(self, name: str) -> TrajectorySettings:
        """The training settings of trajectory ``name`` (SQuAD's own learning rate)."""
        entry = self.trajectories[name]
        if entry["objective"] == "squad":
            return replace(self.training, learning_rate=self.squad_learning_rate)
        return self.training


def decoding_plan(params: dict) -> DecodingPlan:
    """Parse ``params["decoding"]``; every problem is a ConfigError naming the key."""
    values = dict(section(params, "decoding", KEYS))
    preset = values["preset"]
    if preset not in PRESETS:
        raise ConfigError(f"params.yaml: decoding.preset: expected one of {sorted(PRESETS)}, found {preset!r}")
    for key, value in PRESETS[preset].items():
        if values[key] is None:
            values[key] = value
    trajectories = values["trajectories"]
    if not isinstance(trajectories, dict) or not trajectories:
        raise ConfigError(f"params.yaml: decoding.trajectories: expected a mapping of names to "
                          f"{{objective: ..., <data options>}}, found {trajectories!r}")
    for name, entry in trajectories.items():
        if not isinstance(entry, dict) or "objective" not in entry:
            raise ConfigError(f"params.yaml: decoding.trajectories.{name}: expected a mapping with `objective` "
                              f"(one of {', '.join(OBJECTIVES.names())}), found {entry!r}")
        OBJECTIVES.get(entry["objective"])
    if values["folds_by"] not in FOLDS_BY:
        raise ConfigError(f"params.yaml: decoding.folds_by: expected one of {FOLDS_BY}, found {values['folds_by']!r}")
    seeds = values["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"params.yaml: decoding.seeds: expected a list of integers, found {seeds!r}")
    training = TrajectorySettings(steps=int(values["steps"]), checkpoint_every=int(values["checkpoint_every"]),
                                  learning_rate=float(values["learning_rate"]), batch_size=int(values["batch_size"]),
                                  max_length=int(values["max_length"]), max_train=values["max_train"],
                                  max_dev=values["max_dev"])
    decoder = DecoderSettings(n_components=int(values["n_components"]), folds=int(values["folds"]),
                              inner_folds=int(values["inner_folds"]),
                              alphas=tuple(float(a) for a in values["alphas"]), leaky_pca=bool(values["leaky_pca"]),
                              folds_by=values["folds_by"], seed=int(values["seed"]))
    return DecodingPlan(encoder=str(values["encoder"]), data=str(values["data"]), experiment=str(values["experiment"]),
                        atlases=values["atlases"], trajectories=trajectories, seeds=seeds, training=training,
                        squad_learning_rate=float(values["squad_learning_rate"]), layer=int(values["layer"]),
                        pooling=str(values["pooling"]), decoder=decoder, device=str(values["device"]), preset=preset)
