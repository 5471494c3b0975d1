"""Benchmark: one fine-tuned model's whole schedule, ours against a plain Hugging Face ``Trainer``.

Both contenders train the packaged MiniLM with a linear fMRI head (zero-initialised, on the ``[CLS]``
output) on participant 1's training windows of the fold that holds out run 1 of the pipeline's prepared
data, through the same schedule: ``--head-epochs`` with the encoder frozen, then ``--full-epochs``
training everything; batch 32, AdamW at 5e-5 with weight decay 0.01 (not on biases and LayerNorm
weights), 10 % linear warm-up then linear decay, over each phase's own steps. They run in the same
process, each starting from a freshly loaded encoder (loading it is not timed).

- brainalign: :func:`brainalign.finetuning.model.train_model`. Timed: reading the ``encode`` stage's files
  (``tokens.npz``, ``1.windows.npy``, ``features.npy``), building the model and the block, training.
  The head phase trains on the cached ``[CLS]`` outputs of the frozen encoder; the full phase pads
  batches of windows of similar length. The one frozen pass that wrote ``features.npy`` is paid once
  per dataset (for all participants, folds and seeds) by the ``encode`` stage and is not counted; its
  cost here is printed below the table for reference.
- HF Trainer: written as a user would: the windows' texts tokenised up front (``truncation=True,
  max_length=128``), a ``torch.utils.data.Dataset`` of input ids, attention masks and label vectors,
  ``DataCollatorWithPadding`` for the pieces (labels stacked beside it), an ``nn.Module`` of encoder +
  ``nn.Linear`` returning a masked MSE, and two ``Trainer`` runs: the first with the encoder's
  parameters frozen (``requires_grad=False``), the second after unfreezing them. Default optimiser
  of the installed version. Timed: tokenisation, the dataset, both ``Trainer`` objects and their
  ``train()``.

Printed per contender: the wall time of the timed region (the ratio is the Trainer's over ours), the
seconds each phase's training took (ours: its epochs' ``seconds``, so the head phase excludes the
model's set-up; the Trainer: each ``train()``'s ``train_runtime``), and the process's CPU time over the
timed region (all threads: a second view when other processes share the cores, though threads
spinning while they wait for a core count too).

Peak memory: a thread samples the process's resident set (``/proc/self/statm``) every 5 ms during
each contender's timed region; reported as the peak minus the resident set just before it started
(freed heap is handed back to the system first, ``malloc_trim``) and as the absolute peak. The final
loss is each one's mean training loss over the batches of the last epoch (MSE on z-scored responses:
about 1 for both; they are not expected to be equal, the data orders differ).

Needs the prepared data and the encode stage's cache: ``make run`` (or ``dvc repro encode@fmri``).

    python perf/finetune.py [--head-epochs 2] [--full-epochs 4] [--order ours-first] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
PREPARED = ROOT / "data" / "prepared" / "fmri"
FEATURES = ROOT / "data" / "features" / "fmri"
SUBJECT = "1"
HELDOUT_RUN = 1
BATCH_SIZE = 32
LEARNING_RATE = 5e-5
WARMUP = 0.1
WEIGHT_DECAY = 0.01
TARGET = 1.5


class PeakRSS:
    """Samples the process's resident set every ``interval`` seconds in a thread, from start to stop."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.before = self.rss()
        self.peak = self.before
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the system, so each contender starts from a low RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def fresh_encoder():
    from brainalign.features.encoders import load_encoder

    return load_encoder("minilm")


def check_inputs() -> None:
    needed = [PREPARED / "dataset.json", PREPARED / SUBJECT / "responses.npy",
              PREPARED / SUBJECT / "examples.parquet", PREPARED / SUBJECT / "folds.json",
              FEATURES / "tokens.npz", FEATURES / f"{SUBJECT}.windows.npy", FEATURES / "features.npy"]
    missing = [str(p.relative_to(ROOT)) for p in needed if not p.exists()]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: run `make run` (or `dvc repro encode@fmri`) first, "
                 f"from {ROOT}")


# ---------------------------------------------------------------------------------------------- ours

def run_ours(train: np.ndarray, responses: np.ndarray, head_epochs: int, full_epochs: int,
             encoder, device: str) -> tuple[float, dict[str, float]]:
    """Our whole schedule from the encode stage's files: the last epoch's training loss, seconds per phase."""
    from brainalign.finetuning.model import Block, BrainModel, Phase, Runtime, train_model
    from brainalign.finetuning.training import Schedule
    from brainalign.stimuli.tokens import read_tokens

    tokens = read_tokens(FEATURES / "tokens.npz")
    windows = np.load(FEATURES / f"{SUBJECT}.windows.npy", allow_pickle=False)
    features = np.load(FEATURES / "features.npy", allow_pickle=False)
    model = BrainModel(encoder.model, {f"fmri:{SUBJECT}": ("fmri", responses.shape[1])}, init_std=0.0, seed=0)
    block = Block(tokens=tokens, windows=windows[train], targets={f"fmri:{SUBJECT}": responses[train]},
                  features=features)
    phases = [Phase("head", head_epochs), Phase("full", full_epochs)]
    schedule = Schedule(batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, warmup_fraction=WARMUP,
                        weight_decay=WEIGHT_DECAY)
    history = train_model(model, [block], phases, schedule, seed=0, runtime=Runtime(device=device, progress=False))
    phase_seconds = {p: sum(r["seconds"] for r in history if r["phase"] == p) for p in ("head", "full")}
    return history[-1]["loss"], phase_seconds


# ------------------------------------------------------------------------------ the Trainer baseline

class EncoderRegressor(nn.Module):
    """A Hugging Face encoder with a linear layer from its [CLS] output to every voxel."""

    def __init__(self, encoder: nn.Module, n_outputs: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_outputs)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        logits = self.head(hidden[:, 0])
        out = {"logits": logits}
        if labels is not None:
            present = ~torch.isnan(labels)
            out["loss"] = ((logits - torch.nan_to_num(labels))[present] ** 2).mean()
        return out


class WindowDataset(torch.utils.data.Dataset):
    def __init__(self, encodings, labels: np.ndarray) -> None:
        self.encodings = encodings
        self.labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {key: values[i] for key, values in self.encodings.items()}
        item["labels"] = self.labels[i]
        return item


class PadAndStack:
    """``DataCollatorWithPadding`` for the word pieces; the float label vectors are stacked beside it."""

    def __init__(self, tokenizer) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict]) -> dict:
        batch = self.pad([{k: v for k, v in f.items() if k != "labels"} for f in features])
        batch["labels"] = torch.stack([f["labels"] for f in features])
        return batch


def run_trainer(texts: list[str], labels: np.ndarray, head_epochs: int, full_epochs: int, encoder,
                device: str, output_dir: str) -> tuple[float, dict[str, float], str]:
    """The same schedule with two ``Trainer`` runs: the last epoch's loss, seconds per phase, the optimiser."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    encodings = encoder.tokenizer(texts, truncation=True, max_length=128)
    dataset = WindowDataset(encodings, labels)
    model = EncoderRegressor(encoder.model, labels.shape[1])
    collator = PadAndStack(encoder.tokenizer)
    loss, optimizer, phase_seconds = math.nan, "?", {"head": 0.0, "full": 0.0}
    for phase, epochs in (("head", head_epochs), ("full", full_epochs)):
        if epochs <= 0:
            continue
        for param in model.encoder.parameters():
            param.requires_grad = phase == "full"
        args = TrainingArguments(
            output_dir=output_dir, num_train_epochs=epochs, per_device_train_batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE, warmup_steps=WARMUP,  # a float below 1: a share of the steps (v5)
            weight_decay=WEIGHT_DECAY, lr_scheduler_type="linear", seed=0, report_to="none",
            save_strategy="no", logging_strategy="epoch", disable_tqdm=True, use_cpu=device == "cpu",
            dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
        trainer.remove_callback(PrinterCallback)  # keeps the table readable; it prints one line an epoch
        phase_seconds[phase] = trainer.train().metrics["train_runtime"]
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        loss = losses[-1] if losses else math.nan
        inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
        fused = bool(inner.defaults.get("fused")) if hasattr(inner, "defaults") else False
        optimizer = f"{args.optim.value if hasattr(args.optim, 'value') else args.optim}" + \
            (f": {type(inner).__name__}{', fused' if fused else ''}" if inner is not None else "")
    return loss, phase_seconds, optimizer


# ---------------------------------------------------------------------------------------------- main

def measure(function, *args):
    """Result, wall seconds, process CPU seconds, peak RSS above the start (MiB), absolute peak RSS (MiB)."""
    release_memory()
    torch.manual_seed(0)
    with PeakRSS() as rss:
        started, cpu = time.perf_counter(), time.process_time()
        result = function(*args)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return result, seconds, cpu, (rss.peak - rss.before) / 2**20, rss.peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head-epochs", type=int, default=2, help="head-only epochs (paper: 10)")
    parser.add_argument("--full-epochs", type=int, default=4, help="full fine-tuning epochs (paper: 20)")
    parser.add_argument("--order", choices=["ours-first", "trainer-first"], default="ours-first")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true",
                        help="1 head + 1 full epoch on the first 64 training windows: checks that the script works")
    args = parser.parse_args()
    if args.quick:
        args.head_epochs, args.full_epochs = 1, 1
    check_inputs()

    from transformers.utils import logging as hf_logging

    from brainalign.data.prepared import read_prepared
    from brainalign.stimuli.tokens import read_tokens

    hf_logging.set_verbosity_error()
    prepared = read_prepared(PREPARED, SUBJECT)
    fold = next((f for f in prepared.folds if f.heldout_run == HELDOUT_RUN), None)
    if fold is None:
        sys.exit(f"participant {SUBJECT} has no fold holding out run {HELDOUT_RUN}")
    train = fold.train[:64] if args.quick else fold.train
    responses = prepared.responses
    texts = prepared.examples["text"].iloc[train].tolist()
    labels = responses[train]
    # Both contenders must see the same windows: the cache's texts are the examples' texts.
    tokens = read_tokens(FEATURES / "tokens.npz")
    windows = np.load(FEATURES / f"{SUBJECT}.windows.npy", allow_pickle=False)
    if len(windows) != len(prepared.examples) or list(tokens.texts[windows[train]]) != texts:
        sys.exit(f"{FEATURES.relative_to(ROOT)} does not match {PREPARED.relative_to(ROOT)}: "
                 "run `dvc repro encode@fmri` again")

    results = {}
    with tempfile.TemporaryDirectory() as output_dir:
        order = ["ours", "trainer"] if args.order == "ours-first" else ["trainer", "ours"]
        for name in order:
            encoder = fresh_encoder()  # not timed: both start from the same pretrained weights
            if name == "ours":
                results[name] = measure(run_ours, train, responses, args.head_epochs, args.full_epochs,
                                        encoder, args.device)
            else:
                results[name] = measure(run_trainer, texts, labels, args.head_epochs, args.full_epochs,
                                        encoder, args.device, output_dir)
            del encoder
            release_memory()

    # For reference: the one frozen pass over every window that the encode stage caches (not counted).
    from brainalign.finetuning.model import BrainModel, Runtime, head_inputs

    encoder = fresh_encoder()
    started = time.perf_counter()
    head_inputs(BrainModel(encoder.model, {}), tokens, batch_size=64, runtime=Runtime(device=args.device,
                                                                                      progress=False))
    cache_seconds = time.perf_counter() - started

    width, layers = encoder.width, encoder.n_layers
    (ours_loss, ours_phases), t_ours, c_ours, m_ours, p_ours = results["ours"]
    (trainer_loss, trainer_phases, optimizer), t_hf, c_hf, m_hf, p_hf = results["trainer"]
    print(f"fine-tuning schedule: {args.head_epochs} head-only + {args.full_epochs} full epochs, "
          f"{len(train)} training windows x {responses.shape[1]:,} voxels, batch {BATCH_SIZE}, "
          f"MiniLM ({layers} x {width}), {torch.get_num_threads()} threads, {args.device}, {args.order}")
    label = f"HF Trainer ({optimizer})"
    column = max(len(label), len("brainalign"))
    print(f"{'':<{column}}  {'wall (s)':>9}  {'head':>6}  {'full':>6}  {'CPU (s)':>8}  {'peak RSS +MiB':>13}  "
          f"{'peak RSS MiB':>12}  {'final loss':>10}")
    for name, seconds, phases, cpu, extra, peak, loss in (
            ("brainalign", t_ours, ours_phases, c_ours, m_ours, p_ours, ours_loss),
            (label, t_hf, trainer_phases, c_hf, m_hf, p_hf, trainer_loss)):
        print(f"{name:<{column}}  {seconds:>9.1f}  {phases['head']:>6.1f}  {phases['full']:>6.1f}  {cpu:>8.1f}  "
              f"{extra:>13.0f}  {peak:>12.0f}  {loss:>10.3f}")
    ratio = t_hf / t_ours
    print(f"speed-up: {ratio:.2f}x (target >= {TARGET}x): {'met' if ratio >= TARGET else 'not met'}")
    print(f"not counted: the encode stage's one frozen pass over all {len(tokens)} windows of the dataset "
          f"(shared by every participant, fold and seed): {cache_seconds:.1f} s")


if __name__ == "__main__":
    main()
