"""Benchmark: loading a paper-scale participant (1,351 TRs x 40,002 voxels) and the paper-scale MEG file.

A participant with the chapter's layout (the ``paper`` preset: 5,176 word entries, runs of 340, 352, 279
and 380 TRs, the 3 mm grey-matter mask) is written as ``subject_1.mat`` in MATLAB v5 and v7.3, and eight
MEG participants as the release's ``.npz``. Each is then read by our loader (validation of every field,
conversion to a :class:`Recording`) and by the bare library call underneath (``scipy.io.loadmat``;
``h5py`` reading the data, the times and each word's three elements; ``numpy.load``), in the same
process; the ratio is ours over the bare call. Target: under 5 s for one fMRI
participant.

    python perf/load.py [--meg-subjects 8] [--directory DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def best_of(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def fmri_participant():
    from brainalign.data.recording import Recording
    from brainalign.data.simulated import SimulationConfig, brain_geometry, experiment_layout, story_words

    config = SimulationConfig(preset="paper")
    words, times, runs = experiment_layout(config, story_words())
    geometry = brain_geometry(config.resolution_mm, config.region_radius_mm, config.mask)
    rng = np.random.default_rng(0)
    responses = rng.standard_normal((len(times), len(geometry["coords"])), dtype=np.float32)
    return Recording(subject="1", modality="fmri", responses=responses, times=times, runs=runs, words=words,
                     coords=geometry["coords"], affine=geometry["affine"], volume_shape=geometry["shape"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meg-subjects", type=int, default=8)
    parser.add_argument("--directory", default=None, help="where to write the files (default: a temporary one)")
    args = parser.parse_args()

    import h5py
    import scipy.io

    from brainalign.data.hp_fmri import read_hp_fmri, write_hp_fmri
    from brainalign.data.hp_meg import read_hp_meg, write_hp_meg
    from brainalign.data.recording import Recording

    with tempfile.TemporaryDirectory(dir=args.directory) as folder:
        folder = Path(folder)
        rec = fmri_participant()
        print(f"fMRI participant: {rec.responses.shape[0]} TRs x {rec.n_channels} voxels, "
              f"{len(rec.words)} word entries, runs {np.bincount(rec.runs)[1:].tolist()}")
        rows = []
        for version in ("5", "7.3"):
            path = folder / f"v{version}" / "subject_1.mat"
            path.parent.mkdir()
            write_hp_fmri(rec, path, version=version)
            if version == "5":
                bare = best_of(lambda: scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True))
                what = "scipy.io.loadmat"
            else:
                def read_all():
                    with h5py.File(path, "r") as handle:
                        out = {name: handle[name][()] for name in ("data", "time")}
                        words = handle["words"]
                        out["words"] = [[handle[r][()] for r in np.asarray(words[f][()]).reshape(-1)]
                                        for f in ("text", "start", "length")]
                        return out
                bare = best_of(read_all)
                what = "h5py: data, time and every word element"
            ours = best_of(lambda: read_hp_fmri(path))
            loaded = read_hp_fmri(path)
            assert np.array_equal(loaded.responses, rec.responses) and loaded.words["word"].equals(rec.words["word"])
            rows.append((f"subject_1.mat v{version} ({path.stat().st_size / 2**20:.0f} MiB)", ours, what, bare))

        if args.meg_subjects:
            n_words = int((rec.words["word"] != "+").sum())
            story = rec.story_words()
            words = story.assign(onset=story.groupby("run").cumcount() * 0.5)
            rng = np.random.default_rng(1)
            megs = [Recording(subject=f"M{s}", modality="meg",
                              responses=rng.standard_normal((n_words, 306 * 20), dtype=np.float32),
                              times=words["onset"].to_numpy(), runs=words["run"].to_numpy(), words=words,
                              extra={"n_sensors": 306, "n_bins": 20})
                    for s in range(1, args.meg_subjects + 1)]
            path = folder / "hp_meg.npz"
            write_hp_meg(megs, path)
            del megs

            def bare_npz():
                with np.load(path, allow_pickle=False) as archive:
                    return {name: archive[name] for name in archive.files}
            bare = best_of(bare_npz, repeats=2)
            ours = best_of(lambda: read_hp_meg(path), repeats=2)
            rows.append((f"hp_meg.npz, {args.meg_subjects} x {n_words} words x 306 x 20 "
                         f"({path.stat().st_size / 2**20:.0f} MiB)", ours, "numpy.load", bare))

    print(f"{'file':<58} {'ours (s)':>9} {'bare (s)':>9} {'ratio':>6}  bare call")
    for name, ours, what, bare in rows:
        print(f"{name:<58} {ours:>9.2f} {bare:>9.2f} {ours / bare:>6.2f}  {what}")
    worst = max(ours for name, ours, _, _ in rows if name.startswith("subject_1"))
    print(f"slowest fMRI participant load: {worst:.2f} s (target < 5 s): {'met' if worst < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
