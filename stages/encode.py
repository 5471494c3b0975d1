"""Stage encode: one forward pass of the frozen encoder over every example; cache the [CLS] features."""

import json
from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402
import numpy as np  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded  # noqa: E402
from brainalign.encoders import cls_features, load_encoder  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.params import load_params, section  # noqa: E402
from brainalign.prepared import prepared_subjects, read_prepared  # noqa: E402

PREPARED, OUT = "data/prepared", "data/features"


def main() -> None:
    settings = section(load_params(), "encode", ["encoder", "untrained", "seed", "layer", "batch_size", "max_length"])
    with tracking.stage_run("encode", {"encode": settings}):
        encoder = load_encoder(settings["encoder"], untrained=settings["untrained"], seed=settings["seed"])
        subjects = prepared_subjects(PREPARED)
        texts = {s: read_prepared(PREPARED, s).examples["text"].tolist() for s in subjects}
        # Participants who read the same text share windows: encode each distinct window once.
        unique = sorted({t for ts in texts.values() for t in ts})
        features = cls_features(encoder, unique, batch_size=settings["batch_size"],
                                max_length=settings["max_length"], layer=settings["layer"])
        row = {t: i for i, t in enumerate(unique)}
        with atomic_path(OUT) as tmp:
            tmp.mkdir(parents=True)
            for s in subjects:
                np.save(tmp / f"{s}.npy", features[[row[t] for t in texts[s]]])
            (tmp / "encoder.json").write_text(json.dumps(
                {**settings, "width": encoder.width, "n_layers": encoder.n_layers}, indent=2) + "\n")
        mlflow.log_metrics({"distinct_windows": len(unique), "width": encoder.width})


if __name__ == "__main__":
    raise SystemExit(guarded(main))
