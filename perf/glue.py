"""Benchmark: GLUE fine-tuning throughput, ours against a plain Hugging Face ``Trainer``.

All contenders fine-tune the packaged MiniLM with a new classification head on the same training
examples of one task (default: real SST-2 from ``$BRAINALIGN_GLUE_DIR`` or ``../shared/glue``, else the
embedded sample), with BERT's GLUE settings: batch 32, AdamW at 2e-5, weight decay 0.01, 10 % warm-up
then linear decay, max length 128, for ``--epochs``. They run in one process, ours first, each from a
freshly loaded encoder (loading is not timed).

- brainalign: :func:`brainalign.nlu.finetune.finetune` (texts tokenised once, batches padded to their
  own longest example and grouped by length, fused AdamW). Timed: its epochs' training seconds.
- HF Trainer, as run_glue.py runs it by default: texts tokenised with ``padding="max_length"`` (128),
  ``AutoModelForSequenceClassification``, ``Trainer.train()``. Timed: ``train_runtime``.
- HF Trainer with dynamic padding: the same with ``DataCollatorWithPadding``, the fastest a user gets
  from ``Trainer`` (v5 has no ``group_by_length``) without writing a loop.

Printed: training examples per second of each, and the speed-up of ours over each; the last epoch's
mean training loss (they differ: the data orders and the heads' initialisations differ).

    python perf/glue.py [--task SST-2] [--n-train 1000] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from brainalign.offline import go_offline  # noqa: E402

go_offline(ROOT)

from brainalign.features.encoders import load_encoder, resolve_encoder  # noqa: E402
from brainalign.nlu.finetune import GlueSettings, finetune  # noqa: E402
from brainalign.nlu.glue import read_split  # noqa: E402
from brainalign.nlu.sample import write_sample  # noqa: E402


def glue_dir() -> tuple[Path, str]:
    found = Path(os.environ.get("BRAINALIGN_GLUE_DIR", ROOT.parent / "shared" / "glue"))
    if (found / "SST-2" / "train.tsv").exists():
        return found, f"real GLUE ({found})"
    sample = write_sample(Path(tempfile.mkdtemp()) / "glue", n_train=2000, n_dev=100)
    return sample, "the embedded sample (not GLUE)"


def ours(split, settings: GlueSettings) -> tuple[float, float]:
    encoder = load_encoder("minilm")
    result = finetune(encoder, split.task, split, [], settings, seed=0, progress=False)
    seconds = sum(r["seconds"] for r in result.history)
    return len(split) * settings.epochs / seconds, result.history[-1]["loss"]


def trainer(split, settings: GlueSettings, dynamic: bool) -> tuple[float, float]:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = resolve_encoder("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=split.task.n_outputs)
    encoded = tokenizer(split.first, split.second, truncation=True, max_length=settings.max_length,
                        padding=False if dynamic else "max_length")
    examples = [{**{k: v[i] for k, v in encoded.items()}, "labels": int(split.labels[i])} for i in range(len(split))]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(out, per_device_train_batch_size=settings.batch_size,
                                 num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
                                 warmup_steps=settings.warmup_fraction,  # a share below 1 (v5)
                                 weight_decay=settings.weight_decay,
                                 lr_scheduler_type="linear", save_strategy="no", logging_strategy="no",
                                 report_to=[], use_cpu=True, seed=0,
                                 disable_tqdm=True, dataloader_num_workers=0)
        run = Trainer(model=model, args=args, train_dataset=examples,
                      data_collator=DataCollatorWithPadding(tokenizer) if dynamic else default_data_collator)
        output = run.train()
    return len(split) * settings.epochs / output.metrics["train_runtime"], output.training_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="SST-2")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 2))
    root, where = glue_dir()
    split = read_split(root, args.task, "train").subsample(args.n_train, 0)
    settings = GlueSettings(epochs=args.epochs)
    lengths = [len(t) for t in load_encoder("minilm").tokenizer(split.first, split.second, truncation=True,
                                                                    max_length=128)["input_ids"]]
    print(f"GLUE fine-tuning: {args.task} from {where}, {len(split)} training examples x {args.epochs} epoch(s), "
          f"MiniLM (6 x 384), batch 32, lr 2e-5, max length 128; word pieces an example: mean "
          f"{np.mean(lengths):.1f}, max {max(lengths)}; {torch.get_num_threads()} threads, cpu")
    mine, loss = ours(split, settings)
    print(f"{'':44s}{'examples/s':>12s}{'speed-up of ours':>18s}{'last loss':>11s}")
    print(f"{'brainalign':44s}{mine:12.1f}{'':>18s}{loss:11.3f}")
    for name, dynamic in (("HF Trainer (run_glue default: pad to 128)", False),
                          ("HF Trainer (dynamic padding)", True)):
        rate, loss = trainer(split, settings, dynamic)
        print(f"{name:44s}{rate:12.1f}{mine / rate:17.2f}x{loss:11.3f}")


if __name__ == "__main__":
    main()
