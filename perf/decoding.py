"""Benchmark: one decoding sweep (all checkpoints of one task, one participant), ours against the
straightforward scikit-learn pipeline, in one process, on the same seeded data.

The straightforward pipeline decodes one checkpoint at a time, as the original code does: per checkpoint the
image and encoding PCAs (``PCA(256, svd_solver="full")``; per outer fold, or once on all sentences with
``leaky_pca``), centring and row normalisation, then per outer fold ``GridSearchCV(Ridge(fit_intercept=False),
alphas, cv=KFold(5))``, the prediction of the held-out images and the cosine ranks against all sentences.
``brainalign.decoding.decoder.decode`` does all checkpoints in one call. Checks that the ranks and the chosen
penalties are identical, and prints both times and the speed-up, without and with ``leaky_pca``.

The data: 384 sentences; encodings of 11 checkpoints that drift away from the first along a seeded random
trajectory; images a noisy linear map of the first checkpoint's encodings (so the mean rank rises along the
trajectory). BLAS runs on ``--threads`` threads for both (default 1: on a shared 2-core machine OpenBLAS's
threads spin against other processes and an SVD can take 100 times longer).

    python perf/decoding.py [--sentences 384] [--voxels 3000] [--dim 384] [--checkpoints 11] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from threadpoolctl import threadpool_limits

from brainalign.decoding.decoder import ALPHAS, N_COMPONENTS, decode


def unit_space(fit_rows: np.ndarray, all_rows: np.ndarray, n_components: int) -> np.ndarray:
    pca = PCA(n_components=min(n_components, fit_rows.shape[0] - 1, fit_rows.shape[1]), svd_solver="full")
    pca.fit(fit_rows)
    z = pca.transform(all_rows) - pca.transform(fit_rows).mean(axis=0)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def straightforward(images: np.ndarray, encodings: np.ndarray, leaky: bool,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One checkpoint: ranks (1-based) and the penalty chosen per outer fold."""
    n = images.shape[0]
    ranks, alphas = np.zeros(n, dtype=np.int64), []
    if leaky:
        x_all, y_all = unit_space(images, images, N_COMPONENTS), unit_space(encodings, encodings, N_COMPONENTS)
    for train, test in KFold(8, shuffle=True, random_state=seed).split(images):
        if leaky:
            x, y = x_all, y_all
        else:
            x, y = unit_space(images[train], images, N_COMPONENTS), unit_space(encodings[train], encodings,
                                                                                N_COMPONENTS)
        search = GridSearchCV(Ridge(fit_intercept=False), {"alpha": list(ALPHAS)}, cv=KFold(5))
        search.fit(x[train], y[train])
        alphas.append(search.best_params_["alpha"])
        predictions = search.predict(x[test])
        similarities = (predictions / np.linalg.norm(predictions, axis=1, keepdims=True)) @ y.T
        truth = similarities[np.arange(test.size), test]
        ranks[test] = 1 + (similarities > truth[:, None]).sum(axis=1)
    return ranks, np.array(alphas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=384)
    parser.add_argument("--voxels", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--checkpoints", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    start = rng.standard_normal((args.sentences, args.dim))
    # a trajectory: each checkpoint adds a little fresh direction, so later ones share less with the first
    steps = [0.35 * rng.standard_normal((args.sentences, args.dim)) for _ in range(args.checkpoints - 1)]
    encodings = [start + sum(steps[:c], np.zeros_like(start)) for c in range(args.checkpoints)]
    images = start @ rng.standard_normal((args.dim, args.voxels)) + 100.0 * rng.standard_normal(
        (args.sentences, args.voxels))
    images = images.astype(np.float32)

    print(f"decoding sweep: {args.sentences} sentences x {args.voxels} voxels, {args.checkpoints} checkpoints x "
          f"{args.dim} dims, 8 outer x 5 inner folds, {len(ALPHAS)} penalties, {N_COMPONENTS} components; "
          f"BLAS threads {args.threads}, {os.cpu_count()} CPUs")
    failed = False
    with threadpool_limits(args.threads):
        for leaky in (False, True):
            started = time.perf_counter()
            ours = decode(images, encodings, leaky_pca=leaky)
            t_ours = time.perf_counter() - started
            started = time.perf_counter()
            theirs = [straightforward(images.astype(np.float64), y, leaky) for y in encodings]
            t_theirs = time.perf_counter() - started
            same_ranks = all(np.array_equal(o.ranks, r) for o, (r, _) in zip(ours, theirs))
            same_alphas = all(np.array_equal(o.alphas, a) for o, (_, a) in zip(ours, theirs))
            different = sum(int((o.ranks != r).sum()) for o, (r, _) in zip(ours, theirs))
            print(f"  leaky_pca={leaky!s:5}  scikit-learn pipeline {t_theirs:7.2f} s   brainalign {t_ours:6.2f} s   "
                  f"speed-up {t_theirs / t_ours:5.1f}x   identical ranks: {same_ranks} ({different} of "
                  f"{args.sentences * args.checkpoints} differ), identical penalties: {same_alphas}")
            print(f"    MAR along the trajectory: {' '.join(f'{o.mar:.1f}' for o in ours)} "
                  f"(chance {(args.sentences + 1) / 2:.1f})")
            failed |= not (same_ranks and same_alphas)
    if failed:
        raise SystemExit("decoding: ranks or penalties differ from the scikit-learn pipeline")


if __name__ == "__main__":
    main()
