"""Where a trajectory's training data comes from: a release directory the user names, or an embedded sample.

``data: sample`` (GLUE and SQuAD objectives) writes the project's own made-up sample in the release's file
layout into a scratch directory and trains on it; the notice returned says so, and the stage tags every run
with it. A corpus (language-modelling objectives) needs nothing written.
"""

from __future__ import annotations

from pathlib import Path

from brainalign.errors import ConfigError

SQUAD_NOTICE = ("brainalign's embedded SQuAD-2.0-format sample (made-up paragraphs in the release's JSON layout): "
                "these are not SQuAD scores")


def objective_data(entry: dict, scratch: Path, seed: int = 0) -> tuple[dict, str | None]:
    """``entry`` (a ``decoding.trajectories`` item) with ``root``, the directory its objective reads, and the
    notice to attach to its outputs (None for real data)."""
    entry = dict(entry)
    objective = entry["objective"]
    if objective not in ("glue", "squad"):
        return entry, None
    data = entry.get("data", "sample")
    if data != "sample":
        if not Path(str(data)).is_dir():
            raise ConfigError(f"params.yaml: decoding.trajectories.<{objective}>.data: expected `sample` or a "
                              f"directory in the release layout, found {data!r} (no such directory)")
        return {**entry, "root": str(data)}, None
    if objective == "glue":
        from brainalign.nlu.sample import NOTICE, SAMPLE_TASKS, write_sample

        if entry.get("task") not in SAMPLE_TASKS:
            raise ConfigError(f"params.yaml: decoding.trajectories: glue task {entry.get('task')!r} is not in the "
                              f"embedded sample (it has {', '.join(SAMPLE_TASKS)}); point `data` at a GLUE "
                              f"release directory for it")
        root = write_sample(scratch / "glue", seed=seed)
        return {**entry, "root": str(root)}, NOTICE
    from brainalign.nlu.squad import write_sample as write_squad_sample

    write_squad_sample(scratch / "squad", seed=seed)
    return {**entry, "root": str(scratch / "squad")}, SQUAD_NOTICE
