"""Benchmark: every layer x feature ridge probe of one representation, ours against one scikit-learn
``RidgeCV`` per (layer, feature), in one process, on the same seeded data.

The straightforward way probes one feature of one layer at a time: per outer fold (one run held out) the
representation is z-scored with the training runs' statistics and the feature centred on their mean, then
``RidgeCV(alphas, fit_intercept=False, scoring="neg_mean_squared_error", cv=<leave-one-training-run-out>)``
chooses the penalty (mean squared error averaged over the inner folds, as himalaya) and predicts the held-out
run. ``brainalign.probing.probes.probe_scores`` solves all features of a layer at once (one ridge, one
decomposition per fold, every feature's penalty from the same inner cross-validation), and the permutation
null rides along as extra target columns. The comparison runs ours in float64; the scores (pooled held-out r2
and r) must agree to rounding and the penalties must be identical.

The data: ``--segments`` segments in ``--runs`` runs; ``--layers`` layers of ``--dim`` dims, each a noisy,
layer-specific mix of 16 latent factors; ``--features`` features, a third continuous linear readouts of the
latents, a third binary (thresholded readouts), a third noise. BLAS runs on ``--threads`` threads for both
(default 1: on a shared 2-core machine more threads spin against other processes).

    python perf/probing.py [--segments 600] [--runs 4] [--layers 6] [--dim 384] [--features 60]
                           [--permutations 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

from brainalign.metrics.variance import pearson_r, r2_score
from brainalign.probing.probes import probe_scores
from brainalign.ridge import ALPHAS, backend, inner_splits, zscore_train


def make_problem(segments: int, runs: int, layers: int, dim: int, features: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    run = np.repeat(np.arange(1, runs + 1), -(-segments // runs))[:segments]
    latent = rng.standard_normal((segments, 16))
    mixes = rng.standard_normal((layers, 16, dim)) * np.linspace(0.2, 1.0, layers)[:, None, None]
    representations = latent @ mixes + rng.standard_normal((layers, segments, dim))
    readouts = latent @ rng.standard_normal((16, features))
    targets = rng.standard_normal((segments, features))
    third = features // 3
    targets[:, :third] += readouts[:, :third]
    targets[:, third:2 * third] = (readouts[:, third:2 * third] + rng.standard_normal((segments, third)) > 1.0)
    return representations.astype(np.float32), targets, run


def reference(representations: np.ndarray, targets: np.ndarray, runs: np.ndarray) -> tuple[np.ndarray, ...]:
    """One RidgeCV per (layer, feature) and outer fold: r2, r (n_layers, n_features) and penalties
    (n_layers, n_folds, n_features)."""
    n_layers, n, _ = representations.shape
    held = np.unique(runs)
    predictions = np.zeros((n_layers, n, targets.shape[1]))
    alphas = np.zeros((n_layers, len(held), targets.shape[1]))
    for layer in range(n_layers):
        x = representations[layer].astype(np.float64)
        for f, run in enumerate(held):
            train, test = np.flatnonzero(runs != run), np.flatnonzero(runs == run)
            mean, scale = zscore_train(x, train)
            x_train, x_test = (x[train] - mean) / scale, (x[test] - mean) / scale
            cv = inner_splits(runs[train])
            for feature in range(targets.shape[1]):
                y_mean = targets[train, feature].mean()
                model = RidgeCV(alphas=ALPHAS, fit_intercept=False, scoring="neg_mean_squared_error", cv=cv)
                model.fit(x_train, targets[train, feature] - y_mean)
                predictions[layer, test, feature] = model.predict(x_test) + y_mean
                alphas[layer, f, feature] = model.alpha_
    r2 = np.stack([r2_score(targets, p) for p in predictions])
    r = np.stack([pearson_r(targets, p) for p in predictions])
    return r2, r, alphas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=600)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    representations, targets, runs = make_problem(args.segments, args.runs, args.layers, args.dim, args.features)
    names = [f"feature/{i}" for i in range(args.features)]
    print(f"probes: {args.layers} layers x {args.segments} segments x {args.dim} dims, {args.features} features, "
          f"{args.runs} runs (outer and inner leave-one-run-out), {len(ALPHAS)} penalties; "
          f"BLAS threads {args.threads}, {os.cpu_count()} CPUs")
    with threadpool_limits(args.threads), backend("cpu"):
        started = time.perf_counter()
        ours = probe_scores(representations, targets, runs, names, n_permutations=0, dtype="float64",
                            progress=False)
        t_ours = time.perf_counter() - started
        started = time.perf_counter()
        r2, r, alphas = reference(representations, targets, runs)
        t_theirs = time.perf_counter() - started
        started = time.perf_counter()
        ours32 = probe_scores(representations, targets, runs, names, n_permutations=0, progress=False)
        t_ours32 = time.perf_counter() - started
        started = time.perf_counter()
        null = probe_scores(representations, targets, runs, names, n_permutations=args.permutations, progress=False)
        t_null = time.perf_counter() - started

    d_r2 = np.abs(ours["r2"].to_numpy() - r2.ravel()).max()
    d_r = np.abs(ours["r"].to_numpy() - r.ravel()).max()
    d_alpha = np.abs(np.log(ours["alpha_median"].to_numpy()) - np.log(np.median(alphas, axis=1).ravel())).max()
    d32 = np.abs(ours32["r2"].to_numpy() - r2.ravel()).max()
    pairs = args.layers * args.features
    print(f"  scikit-learn, one RidgeCV per (layer, feature): {t_theirs:8.2f} s   ({pairs} pairs)")
    print(f"  brainalign probe_scores, float64:               {t_ours:8.2f} s   speed-up {t_theirs / t_ours:6.1f}x   "
          f"max |diff| r2 {d_r2:.1e}, r {d_r:.1e}, log median penalty {d_alpha:.1e}")
    print(f"  brainalign probe_scores, float32 (default):     {t_ours32:8.2f} s   "
          f"speed-up {t_theirs / t_ours32:6.1f}x   max |diff| r2 {d32:.1e}")
    print(f"  brainalign with {args.permutations} permutations (float32):    {t_null:8.2f} s   "
          f"({pairs * (1 + args.permutations)} probes; scikit-learn extrapolated at its rate: "
          f"~{t_theirs * (1 + args.permutations):.0f} s, {t_theirs * (1 + args.permutations) / t_null:.0f}x)")
    significant = null.groupby("layer")["significant"].sum()
    print(f"    significant after BH per layer: {' '.join(str(int(v)) for v in significant)} "
          f"(of {args.features}; {2 * (args.features // 3)} features carry signal)")
    if d_r2 > 1e-5 or d_r > 1e-5 or d_alpha > 1e-9:
        raise SystemExit("probing: scores or penalties differ from scikit-learn's RidgeCV")


if __name__ == "__main__":
    main()
