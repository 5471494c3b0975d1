"""Parity: brainalign's Brain-Score metrics and ceilings against brainscore-language 2.3.0 itself.

Brain-Score pins numpy < 2, pandas < 3 and transformers < 5, so it runs in a virtual environment of its own,
``.cache/brainscore-venv`` (built here with pip from the package registry when missing; offline otherwise
it must already exist). A small simulated problem (seeded numpy) is written as ``.npy`` files; Brain-Score's
own classes score it in a subprocess of that environment and write their numbers as ``.npy``/JSON (nothing is
pickled); ours score it in this process. Printed, for each of linear_pearsonr, ridge_pearsonr, the
extrapolation ceiling (Blank/Fedorenko's all-subsets form and Pereira's sampled form), Futrell's surprisal
score and its split-half ceiling: Brain-Score's value, ours, the largest absolute difference of the raw
per-split / per-neuroid numbers (target <= 1e-6) and the time of each.

    python perf/brainscore_parity.py [--participants 5] [--neuroids 12] [--passages 40] [--fast]

``--fast`` skips our ``fit="curve_fit"`` ceilings (only the vectorised fit is timed and compared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
VENV = REPOSITORY / ".cache" / "brainscore-venv"
PYTHON = VENV / "bin" / "python"
# torch==2.13.0 is the CPU build on this machine's disk; a bare torch requirement would fetch a CUDA one.
REQUIREMENTS = ["brainscore-language==2.3.0", "torch==2.13.0"]

RUNNER = textwrap.dedent('''
    import json, sys, time, types, warnings
    from pathlib import Path
    import numpy as np
    warnings.filterwarnings("ignore")
    # ceiling_packaging caches with result_caching, which is not a dependency: an identity decorator instead.
    sys.modules["result_caching"] = types.SimpleNamespace(store=lambda **kwargs: (lambda f: f))
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly, DataAssembly
    from brainscore_language.metrics.linear_predictivity.metric import linear_pearsonr, ridge_pearsonr
    from brainscore_language.metrics.pearson_correlation.metric import PearsonCorrelation
    from brainscore_language.benchmarks.blank2014.ceiling import ExtrapolationCeiling
    from brainscore_language.benchmarks.pereira2018 import ceiling_packaging
    from brainscore_language.benchmarks.futrell2018.benchmark import SplitHalvesConsistency

    folder = Path(sys.argv[1])
    load = lambda name: np.load(folder / f"{name}.npy", allow_pickle=False)
    features, responses = load("features"), load("responses")
    stimulus_ids, groups, subjects = load("stimulus_ids"), load("groups"), load("subjects")
    presentation = {"stimulus_id": ("presentation", stimulus_ids), "story": ("presentation", groups)}
    source = NeuroidAssembly(features, dims=["presentation", "neuroid"], coords={**presentation,
        "neuroid_id": ("neuroid", np.arange(features.shape[1])), "layer": ("neuroid", ["x"] * features.shape[1])})
    target = NeuroidAssembly(responses, dims=["presentation", "neuroid"], coords={**presentation,
        "neuroid_id": ("neuroid", np.arange(responses.shape[1])), "subject": ("neuroid", subjects)})
    target.attrs["identifier"] = "parity"
    out, times = {}, {}

    def timed(name, function):
        started = time.perf_counter()
        result = function()
        times[name] = time.perf_counter() - started
        return result

    shuffle = dict(splits=10, train_size=0.9, kfold=False, random_state=1)
    group = dict(split_coord="story", kfold="group", random_state=1234)
    for name, metric in (("linear", linear_pearsonr(crossvalidation_kwargs=shuffle)),
                         ("ridge", ridge_pearsonr(crossvalidation_kwargs=group))):
        score = timed(name, lambda: metric(source, target))
        raw = score.raw.transpose("split", "neuroid").sortby("neuroid_id")
        out[name] = float(score)
        np.save(folder / f"bs_{name}_per_split.npy", raw.values)

    linear = linear_pearsonr(crossvalidation_kwargs=shuffle)
    for name, ceiler in (("ceiling", ExtrapolationCeiling(subject_column="subject")),
                         ("ceiling_pereira", ceiling_packaging.ExtrapolationCeiling(subject_column="subject"))):
        ceiling = timed(name, lambda: ceiler(target, linear))
        per_neuroid = ceiling.raw.sortby("neuroid_id")
        full = np.full(responses.shape[1], np.nan)
        full[per_neuroid["neuroid_id"].values] = per_neuroid.values
        out[name] = float(ceiling)
        np.save(folder / f"bs_{name}_per_neuroid.npy", full)

    rts = load("rts")
    readers = DataAssembly(rts.T, dims=["presentation", "subject"], coords={
        "word_id": ("presentation", np.arange(rts.shape[1])), "subject_id": ("subject", np.arange(rts.shape[0])),
        "reader": ("subject", np.arange(rts.shape[0]))})
    metric = PearsonCorrelation()
    halves = timed("split_half", lambda: SplitHalvesConsistency(10, "subject_id", metric)(readers))
    out["split_half"] = float(halves)
    np.save(folder / "bs_split_half_per_split.npy", halves.raw.values)
    first = load("sentence_first")
    surprisal = DataAssembly(load("surprisal"), dims=["presentation"],
                             coords={"word_id": ("presentation", np.arange(rts.shape[1])),
                                     "position": ("presentation", np.arange(rts.shape[1]))})
    mean_rt = readers.mean("subject")
    out["surprisal"] = float(timed("surprisal", lambda: metric(surprisal[~first], mean_rt[~first])))
    (folder / "bs_results.json").write_text(json.dumps({"values": out, "times": times}))
''')


def ensure_venv() -> None:
    """Build Brain-Score's own environment under .cache/ unless it is there."""
    if PYTHON.exists() and subprocess.run([str(PYTHON), "-c", "import brainscore_language"],
                                          capture_output=True).returncode == 0:
        return
    print(f"building {VENV} (pip: {' '.join(REQUIREMENTS)}; about a minute)", flush=True)
    subprocess.run(["python3.11", "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)


def simulate(folder: Path, n_participants: int, n_neuroids: int, n_passages: int, seed: int = 0) -> dict:
    """Features and several participants' responses sharing a latent signal; per-reader reading times."""
    rng = np.random.default_rng(seed)
    n_rows = n_passages * 5
    latent = rng.standard_normal((n_rows, 8))
    features = latent @ rng.standard_normal((8, 40)) + rng.standard_normal((n_rows, 40))
    blocks, subjects = [], []
    for participant in range(n_participants):
        snr = rng.uniform(0.0, 1.5, n_neuroids)
        blocks.append(latent @ rng.standard_normal((8, n_neuroids)) * snr / np.sqrt(8)
                      + rng.standard_normal((n_rows, n_neuroids)))
        subjects += [participant] * n_neuroids
    # Rows in a shuffled stimulus order: the splits follow the data's row order, not sorted ids.
    arrays = {"features": features, "responses": np.hstack(blocks), "subjects": np.asarray(subjects),
              "stimulus_ids": rng.permutation(n_rows), "groups": np.repeat(np.arange(n_passages), 5)}
    n_readers, n_words = 40, 400
    difficulty = rng.gamma(2.0, 40.0, n_words)
    rts = 300 + difficulty[None, :] + rng.normal(0, 120, (n_readers, n_words))
    rts[rng.random(rts.shape) < 0.1] = np.nan
    arrays.update(rts=rts, surprisal=difficulty / 20 + rng.normal(0, 2, n_words),
                  sentence_first=(np.arange(n_words) % 12) == 0)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return arrays


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=5)
    parser.add_argument("--neuroids", type=int, default=12)
    parser.add_argument("--passages", type=int, default=40)
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPOSITORY / "src"))
    from brainalign.benchmarks.ceilings import brainscore_ceiling
    from brainalign.benchmarks.metrics import (METRICS, linear_pearsonr, split_half_ceiling,
                                               surprisal_score)

    ensure_venv()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(os.environ.get("PARITY_DIR", tmp))
        data = simulate(folder, args.participants, args.neuroids, args.passages)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        (folder / "runner.py").write_text(RUNNER)
        started = time.perf_counter()
        done = subprocess.run([str(PYTHON), str(folder / "runner.py"), str(folder)], env=env,
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"Brain-Score's run failed:\n{done.stderr[-4000:]}")
        subprocess_seconds = time.perf_counter() - started
        bs = json.loads((folder / "bs_results.json").read_text())
        bs_arrays = {name: np.load(folder / f"bs_{name}.npy", allow_pickle=False)
                     for name in ("linear_per_split", "ridge_per_split", "ceiling_per_neuroid",
                                  "ceiling_pereira_per_neuroid", "split_half_per_split")}

    x, y = data["features"], data["responses"]
    keys = dict(stimulus_ids=data["stimulus_ids"], groups=data["groups"])
    rows = []
    for name in ("linear", "ridge"):
        ours, seconds = timed(METRICS.get(f"{name}_pearsonr"), x, y, **keys)
        rows.append((f"{name}_pearsonr", bs["values"][name], ours.score,
                     np.abs(ours.per_split - bs_arrays[f"{name}_per_split"]).max(), bs["times"][name], seconds))

    def metric(source, target, **kw):
        return linear_pearsonr(source, target, **kw)

    variants = {"ceiling": {}, "ceiling_pereira": dict(subsets_per_k=10, heldout_participants=5)}
    fits = ("global",) if args.fast else ("global", "curve_fit")
    for name, extra in variants.items():
        for fit in fits:
            ours, seconds = timed(brainscore_ceiling, y, data["subjects"], metric, **keys, fit=fit,
                                  progress=False, **extra)
            reference = bs_arrays[f"{name}_per_neuroid"]
            rows.append((f"{name} ({fit} fit)", bs["values"][name], ours.value,
                         np.nanmax(np.abs(ours.per_neuroid - reference)), bs["times"][name], seconds))

    (value, per_split), seconds = timed(split_half_ceiling, data["rts"])
    rows.append(("futrell split-half ceiling", bs["values"]["split_half"], value,
                 np.abs(per_split - bs_arrays["split_half_per_split"]).max(), bs["times"]["split_half"], seconds))
    score, seconds = timed(surprisal_score, data["surprisal"], np.nanmean(data["rts"], axis=0), data["sentence_first"])
    rows.append(("futrell surprisal score", bs["values"]["surprisal"], score, abs(score - bs["values"]["surprisal"]),
                 bs["times"]["surprisal"], seconds))

    print(f"simulated: {y.shape[0]} presentations ({args.passages} passages), {args.participants} participants x "
          f"{args.neuroids} neuroids, 40 features; reading times 40 readers x 400 words (10 % NaN)")
    print(f"Brain-Score subprocess {subprocess_seconds:.1f} s in all (imports included)")
    print(f"{'':34s}{'Brain-Score':>12s}{'ours':>12s}{'max |raw diff|':>16s}{'BS time':>10s}{'our time':>10s}"
          f"{'ratio':>8s}")
    for label, theirs, ours, diff, t_bs, t_ours in rows:
        print(f"{label:34s}{theirs:12.6f}{ours:12.6f}{diff:16.2e}{t_bs:9.2f}s{t_ours:9.2f}s{t_bs / t_ours:8.1f}")


if __name__ == "__main__":
    main()
