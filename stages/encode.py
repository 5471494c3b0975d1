"""Stage encode@<dataset>: one forward pass of the frozen encoder over every example; cache the features.

fMRI examples get the window's ``[CLS]`` output embedding; MEG examples (content words) get the output
embedding of the word's first piece with its length and unigram log-probability appended, the inputs of
the seed paper's two heads.
"""

import json
from pathlib import Path

from brainalign.offline import go_offline

go_offline(Path.cwd())

import mlflow  # noqa: E402
import numpy as np  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.cli import guarded, stage_argument  # noqa: E402
from brainalign.encoders import cls_features, last_word_features, load_encoder  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.params import load_params, section  # noqa: E402
from brainalign.prepared import prepared_dataset, read_prepared  # noqa: E402


def main() -> None:
    name = stage_argument("encode")
    settings = section(load_params(), "encode", ["encoder", "untrained", "seed", "layer", "batch_size", "max_length"])
    prepared, out = f"data/prepared/{name}", f"data/features/{name}"
    with tracking.stage_run(f"encode@{name}", {"encode": settings}):
        encoder = load_encoder(settings["encoder"], untrained=settings["untrained"], seed=settings["seed"])
        description = prepared_dataset(prepared)
        subjects = [str(s) for s in description["subjects"]]
        texts = {s: read_prepared(prepared, s).examples["text"].tolist() for s in subjects}
        # Participants who read the same text share windows: encode each distinct window once.
        unique = sorted({t for ts in texts.values() for t in ts})
        extract = last_word_features if description["modality"] == "meg" else cls_features
        features = extract(encoder, unique, batch_size=settings["batch_size"], max_length=settings["max_length"],
                           layer=settings["layer"])
        row = {t: i for i, t in enumerate(unique)}
        with atomic_path(out) as tmp:
            tmp.mkdir(parents=True)
            for s in subjects:
                np.save(tmp / f"{s}.npy", features[[row[t] for t in texts[s]]])
            (tmp / "encoder.json").write_text(json.dumps(
                {**settings, "width": encoder.width, "n_layers": encoder.n_layers, "modality": description["modality"],
                 "feature": extract.__name__}, indent=2) + "\n")
        mlflow.log_metrics({"distinct_windows": len(unique), "width": encoder.width})


if __name__ == "__main__":
    raise SystemExit(guarded(main))
