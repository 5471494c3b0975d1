"""Peak memory of the fully joint model's training at paper scale, on CPU.

The joint model's heads span every voxel of every fMRI participant and every sensor x bin component of
every MEG participant. At paper scale (reference sections 1 and 3) that is:

- a BERT-base-sized encoder: ``transformers.BertConfig()``'s defaults (12 layers, 768 wide, 110 M
  parameters), built untrained from the config, since no weights can be downloaded here;
- 8 fMRI heads on ``[CLS]``, 40,002 voxels each (the chapter's 3 mm grey-matter mask);
- 8 MEG heads on the last word's first piece plus 2 word properties, 306 x 20 = 6,120 outputs each.

The training data resident as the joint task holds them: the targets of one fold's training examples for
every participant (``--fmri-examples`` windows x 40,002 x 8 and ``--meg-examples`` words x 6,120 x 8,
float32). One full-phase epoch of two optimisation steps (one fMRI batch of 32 windows of 20 words, one
MEG batch of 32) runs through :func:`brainalign.finetuning.model.train_model`: forward, backward and a fused
AdamW step over all parameters, exactly the code the ``joint`` stage runs.

Reported: parameters, the lower bound of parameter memory (weights, gradients and AdamW's two moments:
16 bytes a parameter), the resident targets, and the process's peak resident set (``VmHWM``), against
the 24 GB of the project's machines.

    python perf/joint_memory.py            # paper scale (about a minute on 2 cores)
    python perf/joint_memory.py --small    # a quick check of the script
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from brainalign.data.simulated import story_words  # noqa: E402
from brainalign.features.encoders import load_encoder  # noqa: E402
from brainalign.finetuning.model import Block, BrainModel, Phase, Runtime, train_model  # noqa: E402
from brainalign.finetuning.training import Schedule  # noqa: E402
from brainalign.stimuli.tokens import tokenize_windows  # noqa: E402

GIB = 1024**3


def peak_rss() -> int:
    """The process's peak resident set size in bytes (``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def windows(n: int, words_per_window: int = 20) -> list[str]:
    story = story_words()
    return [" ".join(story[i:i + words_per_window]) for i in range(0, 4 * n, 4)][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fmri-participants", type=int, default=8)
    parser.add_argument("--voxels", type=int, default=40_002)
    parser.add_argument("--meg-participants", type=int, default=8)
    parser.add_argument("--fmri-examples", type=int, default=880, help="training windows of one fold")
    parser.add_argument("--meg-examples", type=int, default=2_140, help="training content words of one fold")
    parser.add_argument("--small", action="store_true", help="MiniLM, 2 + 2 participants, 2,000 voxels")
    args = parser.parse_args()
    if args.small:
        args.fmri_participants, args.meg_participants, args.voxels = 2, 2, 2_000
        args.fmri_examples, args.meg_examples = 64, 64

    from transformers import BertConfig, BertModel

    tokenizer = load_encoder("minilm").tokenizer  # BERT's uncased vocabulary
    torch.manual_seed(0)
    encoder = load_encoder("minilm").model if args.small else BertModel(BertConfig())
    meg_outputs = 306 * 20
    heads = {f"fmri:{i + 1}": ("fmri", args.voxels) for i in range(args.fmri_participants)}
    heads.update({f"meg:M{i + 1}": ("meg", meg_outputs) for i in range(args.meg_participants)})
    model = BrainModel(encoder, heads, init_std=0.02, seed=0)
    n_parameters = sum(p.numel() for p in model.parameters())
    n_head = sum(p.numel() for p in model.heads.parameters())

    rng = np.random.default_rng(0)
    fmri_tokens = tokenize_windows(tokenizer, windows(32), "cls")
    meg_tokens = tokenize_windows(tokenizer, windows(32), "last_word")
    # The fold's whole target arrays stay resident, as in the joint task; the step reads its batch from them.
    fmri_targets = {name: rng.standard_normal((args.fmri_examples, args.voxels), dtype=np.float32)
                    for name, (modality, _) in heads.items() if modality == "fmri"}
    meg_targets = {name: rng.standard_normal((args.meg_examples, meg_outputs), dtype=np.float32)
                   for name, (modality, _) in heads.items() if modality == "meg"}
    resident = sum(y.nbytes for y in fmri_targets.values()) + sum(y.nbytes for y in meg_targets.values())
    blocks = [Block(fmri_tokens, np.arange(32), {k: v[:32] for k, v in fmri_targets.items()}),
              Block(meg_tokens, np.arange(32), {k: v[:32] for k, v in meg_targets.items()})]

    before = peak_rss()
    started = time.perf_counter()
    history = train_model(model, blocks, [Phase("full", 1)], Schedule(batch_size=32), seed=0,
                          runtime=Runtime(progress=False))
    seconds = time.perf_counter() - started
    peak = peak_rss()
    print(f"joint model: {'MiniLM (small check)' if args.small else 'BERT-base-sized encoder (12 x 768)'}, "
          f"{args.fmri_participants} fMRI x {args.voxels:,} voxels, {args.meg_participants} MEG x {meg_outputs:,}")
    print(f"parameters: {n_parameters / 1e6:,.1f} M ({n_head / 1e6:,.1f} M in the heads)")
    print(f"weights + gradients + AdamW moments (16 B a parameter): {16 * n_parameters / GIB:5.2f} GiB")
    print(f"resident training targets of one fold:                  {resident / GIB:5.2f} GiB")
    print(f"peak RSS before training:                               {before / GIB:5.2f} GiB")
    print(f"peak RSS over one epoch of 2 full steps:                {peak / GIB:5.2f} GiB "
          f"({seconds:.1f} s, loss {history[-1]['loss']:.3f})")
    print(f"limit 24 GB ({24e9 / GIB:.1f} GiB): {'well inside' if peak < 0.5 * 24e9 else 'TOO CLOSE'} "
          f"({peak / 24e9:.0%} of it)")


if __name__ == "__main__":
    main()
