"""Benchmarks of the vision models, one section each, in one process on seeded data.

Sections (``--sections``, all by default; each adds its own options below):

* ``fwrf``: the fwRF candidate search, ours (:class:`brainalign.vision.fwrf.FwRF`, ``fit``) against the obvious
  per-candidate loop: for each candidate pRF, pool the feature maps, z-score with the fit rows, and for each
  penalty fit ``sklearn.linear_model.Ridge(alpha)`` on the fit rows (all voxels at once) and score the holdout
  rows; keep each voxel's best (candidate, penalty). Ours solves ``--batch`` candidates at once with one
  eigendecomposition per candidate for all penalties; ``refit=False`` is the search alone (plus the chosen
  models' weights and holdout r, which the loop does not compute), the default adds the refit of the chosen
  models on all rows. Agreement: the fraction of voxels with the same (candidate, penalty),
  and the largest difference of the chosen holdout mean squared error; in float64 every differing choice must
  be a tie (losses equal to 1e-9), or the script fails. Data: ``--images`` images, two layers of
  ``--features / 2`` rectified-noise channels at 16 x 16 and 8 x 8, ``--voxels`` voxels each a random read-out of
  the channels under a pRF of the grid plus noise; the grid is every k-th candidate of the default 2,680 so that
  about ``--candidates`` remain; penalties ``logspace(0, 4, 9)`` (the reference's ``logspace(3, 6, 9)`` is scaled
  for NSD's ~27,000 trials and would shrink everything here).

* ``gnet``: GNet training throughput (:func:`brainalign.vision.gnet.train_gnet`) on seeded random data: per
  configuration the setup (training mean image, the pre-filter cache, the model), then per epoch *images/s* (trials
  through core and readout, forward and backward, per second of the training pass) and *trials/s* (training
  trials per second of the whole epoch, held-out scoring included: what sets a run's time). Configurations: the
  pipeline's default (96 px, widths (32, 16); ``--gnet-participants`` x ``--gnet-trials`` training trials over
  ``--gnet-images`` images, ``--gnet-voxels`` voxels each) and the paper's widths (128, 64) on 227-px images
  (``--gnet-paper-trials``, one participant, fewer trials so that it takes about a minute on one CPU thread). On
  CPU always; on CUDA (bf16 autocast, as the pipeline runs it) when torch sees a device, else it says so. Checks:
  every epoch's loss and held-out r are finite.

A new section is a function ``(args) -> bool`` (True when its checks pass) and one that adds its options, listed
in :data:`SECTIONS`. BLAS and torch run on ``--threads`` threads (default 1: on a shared 2-core machine more
threads spin against other processes).

    python perf/vision.py [--sections fwrf gnet] [--threads 1] [--images 800] [--candidates 200] [--features 256]
                          [--voxels 500] [--batch 16] [--gnet-epochs 2] [--gnet-trials 900] [--gnet-images 660]
                          [--gnet-voxels 380] [--gnet-participants 2] [--gnet-paper-trials 200]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from brainalign.vision.fwrf import FwRF, prf_grid, prf_weights

PENALTIES = np.logspace(0, 4, 9)
HOLDOUT = 0.1


def fwrf_problem(images: int, features: int, voxels: int, candidates: int, repeats: int,
                 seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Feature maps, the candidate grid, planted single-trial responses and each trial's image."""
    rng = np.random.default_rng(seed)
    half = features // 2
    maps = {name: (np.maximum(rng.standard_normal((images, half, size, size)), 0)
                   * rng.uniform(0.5, 2.0, (1, half, 1, 1))).astype(np.float32)
            for name, size in (("fine", 16), ("coarse", 8))}
    full = prf_grid()
    grid = full[::-(-len(full) // candidates)]
    truth = rng.choice(len(grid), voxels)
    used, which = np.unique(truth, return_inverse=True)
    signal = np.zeros((images, voxels))
    for values in maps.values():
        weights = prf_weights(grid[used], *values.shape[2:]).reshape(len(used), -1).astype(np.float32)
        pooled = (values.reshape(images * half, -1) @ weights.T).reshape(images, half, len(used))
        pooled = (pooled - pooled.mean(0)) / pooled.std(0)
        readout = rng.standard_normal((voxels, half))
        for v in range(voxels):
            signal[:, v] += pooled[:, :, which[v]] @ readout[v]
    signal /= signal.std(0)
    # every image shown ``repeats`` times, in a random order (NSD's design with 3)
    image_index = np.arange(images) if repeats == 1 else rng.permutation(np.repeat(np.arange(images), repeats))
    return maps, grid, signal[image_index] + rng.standard_normal((len(image_index), voxels)), image_index


def per_candidate_ridge(maps: dict[str, np.ndarray], responses: np.ndarray, image_index: np.ndarray,
                        grid: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The obvious loop: per candidate a design row per trial, and per penalty one scikit-learn ``Ridge``; best
    (candidate, alpha index, holdout mean squared error) per voxel, first minimum in grid order."""
    n_rows, n_voxels = responses.shape
    n_hold = int(np.ceil(HOLDOUT * n_rows))
    fit, hold = slice(0, n_rows - n_hold), slice(n_rows - n_hold, n_rows)
    cells = {name: values.reshape(values.shape[0], values.shape[1], -1).astype(np.float64)
             for name, values in maps.items()}
    weights = {name: prf_weights(grid, *values.shape[2:]).reshape(len(grid), -1) for name, values in maps.items()}
    best = np.full(n_voxels, np.inf)
    candidate = np.zeros(n_voxels, dtype=np.int64)
    alpha = np.zeros(n_voxels, dtype=np.int64)
    for c in range(len(grid)):
        design = np.concatenate([cells[name] @ weights[name][c] for name in maps], axis=1)[image_index]
        mean, std = design[fit].mean(0), design[fit].std(0)
        z = (design - mean) / np.where(std > 0, std, 1.0)
        for i, penalty in enumerate(alphas):
            model = Ridge(alpha=penalty).fit(z[fit], responses[fit])
            loss = ((responses[hold] - model.predict(z[hold])) ** 2).mean(0)
            better = loss < best
            best[better], candidate[better], alpha[better] = loss[better], c, i
    return candidate, alpha, best


def fwrf_search(args: argparse.Namespace) -> bool:
    passed = True
    for repeats in args.repeats:
        maps, grid, responses, image_index = fwrf_problem(args.images, args.features, args.voxels,
                                                          args.candidates, repeats)
        print(f"fwRF candidate search: {args.images} images x {repeats} trial{'s' if repeats > 1 else ''} "
              f"({len(responses)} rows), {args.features} features (2 layers, 16x16 and 8x8), {args.voxels} voxels, "
              f"{len(grid)} candidates (every {-(-2680 // args.candidates)}th of the default grid), "
              f"{len(PENALTIES)} penalties, holdout {HOLDOUT:g}; threads {args.threads}, {os.cpu_count()} CPUs")
        started = time.perf_counter()
        candidate, alpha, loss = per_candidate_ridge(maps, responses, image_index, grid, PENALTIES)
        t_theirs = time.perf_counter() - started
        print(f"  {'scikit-learn, one Ridge per (candidate, penalty)':52s} {t_theirs:7.2f} s   "
              f"({len(grid) * len(PENALTIES)} fits, float64)")
        for dtype, refit in (("float64", False), ("float32", False), ("float32", True)):
            model = FwRF(grid=grid, alphas=PENALTIES, holdout=HOLDOUT, refit=refit, candidate_batch=args.batch,
                         dtype=dtype, progress=False)
            started = time.perf_counter()
            model.fit(maps, responses, image_index)
            t_ours = time.perf_counter() - started
            same = (model.candidate_ == candidate) & (model.alpha_ == PENALTIES[alpha])
            difference = np.abs(model.holdout_loss_ - loss)
            ties = int((~same & (difference <= 1e-9 * loss)).sum())
            label = f"FwRF {dtype}, " + ("search + refit (default)" if refit else "search (refit=False)")
            print(f"  {label:52s} {t_ours:7.2f} s   {t_theirs / t_ours:5.1f}x   same (candidate, penalty) "
                  f"{same.mean():7.2%}{f' ({ties} ties)' if ties else ''}   max |diff| holdout MSE "
                  f"{difference.max():.1e}")
            if dtype == "float64" and ties < (~same).sum():
                passed = False
        print(f"    median holdout r of the chosen models: {np.median(model.holdout_r_):.3f}")
    return passed


def fwrf_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--images", type=int, default=800)
    group.add_argument("--repeats", type=int, nargs="+", default=[1, 3],
                       help="trials per image, one problem each (NSD shows every image 3 times)")
    group.add_argument("--candidates", type=int, default=200, help="about this many of the default grid")
    group.add_argument("--features", type=int, default=256, help="channels over both layers")
    group.add_argument("--voxels", type=int, default=500)
    group.add_argument("--batch", type=int, default=16, help="FwRF candidate_batch")


def gnet_problem(n_images: int, size: int, participants: int, trials: int, voxels: int,
                 seed: int = 0) -> tuple[np.ndarray, list]:
    """Seeded uint8 images and per participant ``trials`` random trials over them with random responses."""
    from brainalign.vision.gnet import Participant

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_images, size, size, 3), dtype=np.uint8)
    return images, [Participant(f"subj{p + 1:02d}", rng.integers(0, n_images, trials),
                                rng.standard_normal((trials, voxels)).astype(np.float32))
                    for p in range(participants)]


def gnet_throughput(args: argparse.Namespace) -> bool:
    from brainalign.vision.gnet import GNetSettings, train_gnet
    from brainalign.vision.networks import load_network

    configurations = [
        ("default: 96 px, widths (32, 16)", 96, (32, 16), args.gnet_participants, args.gnet_trials, args.gnet_images),
        ("paper: 227 px, widths (128, 64)", 227, (128, 64), 1, args.gnet_paper_trials,
         max(2, args.gnet_paper_trials // 3)),
    ]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"GNet training throughput: {args.gnet_epochs} epochs, batch 100, {args.gnet_voxels} voxels a readout, "
          f"random images and responses; threads {args.threads}, {os.cpu_count()} CPUs")
    if "cuda" not in devices:
        print("  CUDA: not measured (torch sees no CUDA device)")
    passed = True
    network = load_network("alexnet")
    for device in devices:
        for label, size, widths, participants, trials, n_images in configurations:
            images, readouts = gnet_problem(n_images, size, participants, trials, args.gnet_voxels)
            settings = GNetSettings(image_size=size, widths=widths, epochs=args.gnet_epochs, device=device,
                                    progress=False)
            started = time.perf_counter()
            result = train_gnet(images, readouts, settings, prefilter=network)
            total = time.perf_counter() - started
            epochs = result.history
            setup = total - sum(r["seconds"] for r in epochs)
            n_train = sum(len(p.image_index) - int(np.ceil(0.1 * len(p.image_index))) for p in readouts)
            images_per_second = [r["images_per_second"] for r in epochs]
            trials_per_second = [n_train / r["seconds"] for r in epochs]
            print(f"  {device:4s} {label:34s} {participants} x {trials} trials, {n_images} images: setup "
                  f"{setup:5.1f} s, epoch {np.mean([r['seconds'] for r in epochs]):6.1f} s, "
                  f"{np.mean(images_per_second):7.1f} images/s, {np.mean(trials_per_second):7.1f} trials/s "
                  f"(best epoch of {len(epochs)}: {max(images_per_second):.1f} images/s)")
            if not all(np.isfinite(r["loss"]) and np.isfinite(r["holdout_r"]) for r in epochs):
                print("    FAILED: a loss or held-out r is not finite")
                passed = False
    return passed


def gnet_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--gnet-epochs", type=int, default=2)
    group.add_argument("--gnet-participants", type=int, default=2)
    group.add_argument("--gnet-trials", type=int, default=1000,
                       help="trials per participant at the default settings (the default twin's training trials: "
                            "900 with 300 own images; the pipeline's 200 own images give 600)")
    group.add_argument("--gnet-images", type=int, default=660, help="distinct images at the default settings")
    group.add_argument("--gnet-voxels", type=int, default=380)
    group.add_argument("--gnet-paper-trials", type=int, default=200,
                       help="trials of the one participant at the paper's widths and 227 px")


@dataclass
class Section:
    """One benchmark: ``run(args)`` prints its table and returns whether its checks passed."""

    name: str
    add_arguments: Callable[[argparse._ArgumentGroup], None]
    run: Callable[[argparse.Namespace], bool]


SECTIONS = [
    Section("fwrf", fwrf_arguments, fwrf_search),
    Section("gnet", gnet_arguments, gnet_throughput),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [section.name for section in SECTIONS]
    parser.add_argument("--sections", nargs="+", choices=names, default=names)
    parser.add_argument("--threads", type=int, default=1)
    for section in SECTIONS:
        section.add_arguments(parser.add_argument_group(section.name))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    failed = []
    with threadpool_limits(args.threads):
        for section in SECTIONS:
            if section.name in args.sections and not section.run(args):
                failed.append(section.name)
    if failed:
        raise SystemExit(f"vision perf: checks failed in {', '.join(failed)}")


if __name__ == "__main__":
    main()
