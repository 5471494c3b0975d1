"""Stage encode@<dataset>: tokenise every distinct window once, and run the frozen encoder over it once.

Writes ``data/features/<dataset>/``: ``tokens.npz`` (the windows' word pieces, which every model
trains on), ``<subject>.windows.npy`` (each example's window), ``features.npy`` (the base encoder's
head inputs per window: the ``[CLS]`` output embedding for fMRI; for MEG the output embedding of the
last word's first piece with its length and unigram log-probability) and ``encoder.json``.
"""

import json

from brainalign.cli import begin_stage, exit_stage, guarded, stage_argument

begin_stage()

import mlflow  # noqa: E402
import numpy as np  # noqa: E402

from brainalign import tracking  # noqa: E402
from brainalign.config.params import load_params, section  # noqa: E402
from brainalign.data.prepared import prepared_dataset, read_prepared  # noqa: E402
from brainalign.features.encoders import load_encoder  # noqa: E402
from brainalign.files import atomic_path  # noqa: E402
from brainalign.finetuning.model import BrainModel, head_inputs  # noqa: E402
from brainalign.stimuli.tokens import tokenize_windows  # noqa: E402

KINDS = {"fmri": "cls", "meg": "last_word"}


def main() -> None:
    name = stage_argument("encode")
    settings = section(load_params(), "encode", ["encoder", "untrained", "seed", "batch_size", "max_length"])
    prepared, out = f"data/prepared/{name}", f"data/features/{name}"
    with tracking.stage_run(f"encode@{name}", {"encode": settings}):
        encoder = load_encoder(settings["encoder"], untrained=settings["untrained"], seed=settings["seed"])
        description = prepared_dataset(prepared)
        subjects = [str(s) for s in description["subjects"]]
        texts = {s: read_prepared(prepared, s).examples["text"].tolist() for s in subjects}
        # Participants who read the same text share windows: each distinct window once.
        unique = sorted({t for ts in texts.values() for t in ts})
        tokens = tokenize_windows(encoder.tokenizer, unique, KINDS[description["modality"]], settings["max_length"])
        features = head_inputs(BrainModel(encoder.model, {}), tokens, batch_size=settings["batch_size"],
                               desc=f"features ({settings['encoder']})")
        row = {t: i for i, t in enumerate(unique)}
        with atomic_path(out) as tmp:
            tmp.mkdir(parents=True)
            tokens.save(tmp / "tokens.npz")
            np.save(tmp / "features.npy", features)
            for s in subjects:
                np.save(tmp / f"{s}.windows.npy", np.array([row[t] for t in texts[s]], dtype=np.int64))
            (tmp / "encoder.json").write_text(json.dumps(
                {**settings, "width": encoder.width, "n_layers": encoder.n_layers, "modality": description["modality"],
                 "target": tokens.kind}, indent=2) + "\n")
        mlflow.log_metrics({"distinct_windows": len(unique), "width": encoder.width,
                            "mean_pieces": float(tokens.lengths.mean()), "max_pieces": int(tokens.lengths.max())})


if __name__ == "__main__":
    exit_stage(guarded(main), __file__)
