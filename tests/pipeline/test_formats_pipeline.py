"""The same pipeline, unchanged, on every real input format, with a signal planted where it must be found.

One module-scoped directory holds five small datasets, each in one format the pipeline reads:

``hpv5``     the Harry Potter fMRI release (``subject_N.mat``, MATLAB v5), 2 participants, one clock for all
             runs, a fixation entry per run, different voxel sets per participant (as in the release);
``hpv73``    the same recordings written as MATLAB v7.3 (HDF5);
``meg``      the Harry Potter MEG ``.npz``: 2 participants, 306 sensors x 4 time bins;
``regions``  the own-data format with 5 named regions (``responses.tsv``), 4 participants, TR 1.5 s, words at
             irregular onsets (gaps of 0.25-0.6 s, a listening experiment), every run on its own clock from 0 s;
``nifti``    the own-data format as a 4-D NIfTI image and a mask, 2 participants, all runs on one clock, the
             release datasets' words and TRs.

The own-format files are written with the library's ``write_own``, the release files with ``write_hp_fmri``
and ``write_hp_meg``.

Each has 4 runs (the folds are leave-one-run-out). The truth is planted, not learned: the responses of a
few "signal" channels are a random linear read-out of the very features the vanilla model sees (the frozen
MiniLM's window ``[CLS]`` for fMRI, the last word's first piece for MEG), computed here from the windows the
rule of reference section 2 gives (brainalign.stimuli.windows.tr_windows over Recording.story_words()), plus noise;
every other channel is pure noise. ``validate``, ``prepare``, ``encode`` and ``vanilla`` run per dataset
through tests/conftest.py's ``run_stage`` (as ``dvc repro`` runs them), then ``score`` and ``report`` once.

Expected: every stage exits 0; the score table holds every dataset, participant and channel; signal
channels score clearly above chance (k vs k accuracy, here k = 10) and noise channels at chance; the v5
and v7.3 files, which hold identical recordings, give identical prepared data, features and scores; the
regions dataset's examples sit on its 1.5 s TRs and each run's own clock; the words reach the windows
exactly as planted; the report draws the figure each kind of channel calls for.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPOSITORY, run_stage

from brainalign.features.encoders import cls_features, last_word_features, load_encoder
from brainalign.stimuli.lexicon import is_content_word
from brainalign.data.recording import Recording
from brainalign.data.hp_fmri import write_hp_fmri
from brainalign.data.hp_meg import write_hp_meg
from brainalign.data.own import write_own
from brainalign.data.simulated import story_words
from brainalign.metrics.table import voxel_means, wide_scores
from brainalign.stimuli.windows import tr_windows

RUNS = [1, 2, 3, 4]
DROP_START, DROP_END = 5, 3  # prepare.drop_start_trs / drop_end_trs in this test's params.yaml
SPAN, MIN_LEAD = 10.1, 9.6   # prepare.window_span / window_min_lead (the repository's values)
REST = 10.0                  # seconds of rest before a run's first word
NOISE_SD = 0.5               # noise added to the (unit-variance) planted signal
K = 10

# fMRI on a regular grid (hpv5, hpv73, nifti share one layout: same words, same windows)
TR = 2.0
TRS_PER_RUN = 48
# regions: a faster TR, irregular words
REGIONS_TR = 1.5
REGIONS_TRS_PER_RUN = 56
REGION_NAMES = ["L IFG", "L MTG", "L AG", "R V1", "R M1"]
REGION_SIGNAL = [0, 1]       # the planted regions; the other three are noise
REGIONS_SUBJECTS = ["sub-01", "sub-02", "sub-03", "sub-04"]
# voxels: a small volume in MNI space
VOLUME = (6, 7, 6)
AFFINE = np.array([[-6.0, 0, 0, 18.0], [0, 6.0, 0, -60.0], [0, 0, 6.0, -6.0], [0, 0, 0, 1]])
N_SIGNAL_VOXELS = 12
HP_VOXELS = {"1": 64, "2": 56}  # participants of the release have different voxel sets
NIFTI_SUBJECTS = ["s01", "s02"]
NIFTI_VOXELS = 60
# MEG
MEG_SUBJECTS = ["M1", "M2"]
MEG_WORDS_PER_RUN = 72
MEG_SENSORS, MEG_BINS = 306, 4
MEG_SIGNAL_SENSORS = 6       # sensors 0-5, every bin: channels 0 .. 6 * 4 - 1

DATASETS = ["hpv5", "hpv73", "meg", "regions", "nifti"]
EXPECTED_SUBJECTS = {"hpv5": ["1", "2"], "hpv73": ["1", "2"], "meg": MEG_SUBJECTS, "regions": REGIONS_SUBJECTS,
                     "nifti": NIFTI_SUBJECTS}


# ---------------------------------------------------------------------------------------------------------
# Layouts: TR times, runs and words
# ---------------------------------------------------------------------------------------------------------


class Story:
    """Consecutive words of the packaged story, handed out in order."""

    def __init__(self) -> None:
        self.words = story_words()
        self.next = 0

    def take(self, n: int) -> list[str]:
        out = self.words[self.next: self.next + n]
        assert len(out) == n, "the packaged story is too short for the fixtures"
        self.next += n
        return out


def fmri_layout(story: Story, rng: np.random.Generator, tr: float, n_trs: int, one_clock: bool,
                irregular: bool, fixation: bool) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """TR times and runs and the words (with their ``run``) of a 4-run fMRI experiment.

    Words start after ``REST`` seconds and stop 2 s before the run's last TR ends; every 0.5 s, or after
    gaps drawn from 0.25-0.6 s (``irregular``). ``fixation`` replaces one mid-run slot by a ``+`` entry.
    """
    times, runs, rows = [], [], []
    run_length = n_trs * tr
    for run in RUNS:
        offset = (run - 1) * run_length if one_clock else 0.0
        if irregular:
            gaps = rng.uniform(0.25, 0.6, size=int(run_length / 0.25))
            onsets = REST + np.concatenate([[0.0], np.cumsum(gaps)])
            durations = np.append(gaps, 0.5) * 0.8
        else:
            onsets = np.arange(REST, run_length - 2.0, 0.5)
            durations = np.full(onsets.shape, 0.5)
        keep = onsets < run_length - 2.0
        onsets, durations = onsets[keep], durations[keep]
        texts = story.take(len(onsets))
        if fixation:
            texts[len(texts) // 2] = "+"
        rows += [(w, offset + o, d, run) for w, o, d in zip(texts, onsets, durations)]
        times.append(offset + tr * np.arange(n_trs))
        runs.append(np.full(n_trs, run))
    words = pd.DataFrame(rows, columns=["word", "onset", "duration", "run"])
    return np.concatenate(times), np.concatenate(runs), words


def fmri_windows(times: np.ndarray, runs: np.ndarray, words: pd.DataFrame) -> pd.DataFrame:
    """The window of each TR, by the rule prepare uses (on the story words, fixations dropped)."""
    probe = Recording(subject="probe", modality="fmri", responses=np.zeros((len(times), 1)), times=times, runs=runs,
                      words=words)
    return tr_windows(times, runs, probe.story_words(), SPAN, MIN_LEAD)


def meg_layout(story: Story) -> pd.DataFrame:
    """The MEG words as the release loader places them: per run, one every 0.5 s from 0 s."""
    texts = story.take(MEG_WORDS_PER_RUN * len(RUNS))
    blocks = np.repeat(RUNS, MEG_WORDS_PER_RUN)
    onsets = np.tile(np.arange(MEG_WORDS_PER_RUN) * 0.5, len(RUNS))
    return pd.DataFrame({"word": texts, "onset": onsets, "duration": 0.5, "run": blocks})


def meg_windows(words: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The content words (rows) and their windows: the words of the run starting within SPAN of the word's end."""
    content = np.array([is_content_word(w) for w in words["word"]])
    ends = (words["onset"] + words["duration"]).to_numpy()
    windows = tr_windows(ends, words["run"].to_numpy(), words, SPAN, min_lead=0.0)
    rows = np.flatnonzero(content)
    return rows, windows["text"].to_numpy()[rows].tolist()


# ---------------------------------------------------------------------------------------------------------
# Planting the signal
# ---------------------------------------------------------------------------------------------------------


def planted(rng: np.random.Generator, features: np.ndarray, n_rows: int, rows: np.ndarray, n_channels: int,
            signal: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Responses: noise everywhere, plus on the ``signal`` channels at ``rows`` a unit-variance random linear
    read-out of ``features`` (one row per entry of ``rows``); a per-run offset and linear drift on top
    (which prepare's detrending and z-scoring remove)."""
    centred = features - features.mean(0)
    read_out = centred @ rng.standard_normal((features.shape[1], signal.size))
    read_out = (read_out - read_out.mean(0)) / read_out.std(0)
    responses = NOISE_SD * rng.standard_normal((n_rows, n_channels))
    responses[np.ix_(rows, signal)] += read_out
    for run in np.unique(runs):
        at = np.flatnonzero(runs == run)
        ramp = np.linspace(-1.0, 1.0, at.size)[:, None]
        responses[at] += rng.normal(50.0, 5.0, n_channels) + ramp * rng.normal(0.0, 0.5, n_channels)
    return responses


def write_params(root: Path) -> None:
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    entry = {"participants": "all", "runs": list(RUNS)}
    params["datasets"] = {
        "hpv5": {"source": "hp_fmri", "path": "raw/hpv5", **entry, "tr": TR},
        "hpv73": {"source": "hp_fmri", "path": "raw/hpv73", **entry, "tr": TR},
        "meg": {"source": "hp_meg", "path": "raw/meg/hp_meg.npz", **entry, "tr": None},
        "regions": {"source": "own", "path": "raw/regions", **entry, "tr": REGIONS_TR},
        "nifti": {"source": "own", "path": "raw/nifti", **entry, "tr": TR},
    }
    params["prepare"].update(drop_start_trs=DROP_START, drop_end_trs=DROP_END, window_span=SPAN,
                             window_min_lead=MIN_LEAD)
    params["vanilla"].update(epochs=10)
    params["models"].update(learning_rate=3.0e-3, heldout_runs="all")
    params["score"].update(k=K, n_draws=1000)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def features(root: Path, dataset: str, subject: str) -> np.ndarray:
    """The encode stage's features of each example of one participant (features per window, indexed)."""
    folder = root / "data/features" / dataset
    return np.load(folder / "features.npy")[np.load(folder / f"{subject}.windows.npy")]


def build_datasets(root: Path) -> dict:
    """Write the five datasets under ``root/raw``; returns the truth: per dataset and participant, the
    signal channels, plus what the checks compare with."""
    rng = np.random.default_rng(20240611)
    story = Story()
    encoder = load_encoder("minilm")

    # Layouts first, so each distinct window is encoded once.
    grid = fmri_layout(story, rng, TR, TRS_PER_RUN, one_clock=True, irregular=False, fixation=True)
    grid_nofix = (grid[0], grid[1], grid[2][grid[2]["word"] != "+"].reset_index(drop=True))
    listening = fmri_layout(story, rng, REGIONS_TR, REGIONS_TRS_PER_RUN, one_clock=False, irregular=True,
                            fixation=False)
    meg_words = meg_layout(story)
    grid_win, listen_win = fmri_windows(*grid), fmri_windows(*listening)
    meg_rows, meg_texts = meg_windows(meg_words)
    fmri_texts = sorted(set(grid_win.loc[grid_win["valid"], "text"]) | set(listen_win.loc[listen_win["valid"], "text"]))
    fmri_features = dict(zip(fmri_texts, cls_features(encoder, fmri_texts, progress=False)))
    unique_meg = sorted(set(meg_texts))
    meg_features = dict(zip(unique_meg, last_word_features(encoder, unique_meg, progress=False)))

    def window_features(windows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(windows["valid"].to_numpy())
        return rows, np.stack([fmri_features[t] for t in windows["text"].to_numpy()[rows]])

    truth: dict = {name: {} for name in DATASETS}
    volume_voxels = np.argwhere(np.ones(VOLUME, dtype=bool))

    # hpv5 / hpv73: the release, one clock, fixation entries, participant-specific voxel sets.
    times, runs, words = grid
    rows, features = window_features(grid_win)
    release_words = words.drop(columns="run")  # the release's words carry no run: it follows from the clock
    for subject, n_voxels in HP_VOXELS.items():
        coords = volume_voxels[np.sort(rng.choice(len(volume_voxels), n_voxels, replace=False))]
        signal = np.sort(rng.choice(n_voxels, N_SIGNAL_VOXELS, replace=False))
        responses = planted(rng, features, len(times), rows, n_voxels, signal, runs)
        rec = Recording(subject=subject, modality="fmri", responses=responses, times=times, runs=runs,
                        words=release_words, coords=coords, affine=AFFINE, volume_shape=VOLUME)
        write_hp_fmri(rec, root / "raw/hpv5" / f"subject_{subject}.mat")
        write_hp_fmri(rec, root / "raw/hpv73" / f"subject_{subject}.mat", version="7.3")
        for name in ("hpv5", "hpv73"):
            truth[name][subject] = {"signal": signal, "n_channels": n_voxels, "raw": rec}

    # nifti: own format, a 4-D image and a mask, the same grid layout without fixations.
    times, runs, words = grid_nofix
    mask = volume_voxels[np.sort(rng.choice(len(volume_voxels), NIFTI_VOXELS, replace=False))]
    for subject in NIFTI_SUBJECTS:
        signal = np.sort(rng.choice(NIFTI_VOXELS, N_SIGNAL_VOXELS, replace=False))
        responses = planted(rng, features, len(times), rows, NIFTI_VOXELS, signal, runs)
        rec = Recording(subject=subject, modality="fmri", responses=responses, times=times, runs=runs, words=words,
                        coords=mask, affine=AFFINE, volume_shape=VOLUME)
        write_own(rec, root / "raw/nifti" / subject, form="nifti")
        truth["nifti"][subject] = {"signal": signal, "n_channels": NIFTI_VOXELS, "raw": rec}

    # regions: own format, named regions, TR 1.5 s, irregular onsets, every run from 0 s.
    times, runs, words = listening
    rows, features = window_features(listen_win)
    for subject in REGIONS_SUBJECTS:
        signal = np.array(REGION_SIGNAL)
        responses = planted(rng, features, len(times), rows, len(REGION_NAMES), signal, runs)
        rec = Recording(subject=subject, modality="fmri", responses=responses, times=times, runs=runs, words=words,
                        channel_names=list(REGION_NAMES))
        write_own(rec, root / "raw/regions" / subject, form="tsv")
        truth["regions"][subject] = {"signal": signal, "n_channels": len(REGION_NAMES), "raw": rec}

    # meg: the release .npz, one row per word; the content words carry the planted read-out.
    features = np.stack([meg_features[t] for t in meg_texts])[:, :encoder.width]
    signal = np.arange(MEG_SIGNAL_SENSORS * MEG_BINS)  # sensor-major: sensor s, bin b is channel s * bins + b
    recordings = []
    for subject in MEG_SUBJECTS:
        responses = planted(rng, features, len(meg_words), meg_rows, MEG_SENSORS * MEG_BINS, signal,
                            meg_words["run"].to_numpy())
        recordings.append(Recording(subject=subject, modality="meg", responses=responses,
                                    times=meg_words["onset"].to_numpy(), runs=meg_words["run"].to_numpy(),
                                    words=meg_words, extra={"n_sensors": MEG_SENSORS, "n_bins": MEG_BINS}))
        truth["meg"][subject] = {"signal": signal, "n_channels": MEG_SENSORS * MEG_BINS}
    (root / "raw/meg").mkdir(parents=True)
    write_hp_meg(recordings, root / "raw/meg/hp_meg.npz")
    truth["meg_texts"] = meg_texts
    return truth


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> SimpleNamespace:
    """The five datasets, after validate/prepare/encode/vanilla on each, then score and report."""
    root = tmp_path_factory.mktemp("formats")
    started = time.perf_counter()
    truth = build_datasets(root)
    write_params(root)
    timings = {"fixtures": time.perf_counter() - started}
    for name in DATASETS:
        for stage in ("validate", "prepare", "encode", "vanilla"):
            started = time.perf_counter()
            script, args = ("train", ("vanilla", name)) if stage == "vanilla" else (stage, (name,))
            code, stderr = run_stage(root, script, *args)
            timings[f"{stage}@{name}"] = time.perf_counter() - started
            assert code == 0, f"{stage}@{name} exited {code}:\n{stderr[-3000:]}"
    for stage in ("score", "report"):
        started = time.perf_counter()
        code, stderr = run_stage(root, stage)
        timings[stage] = time.perf_counter() - started
        assert code == 0, f"{stage} exited {code}:\n{stderr[-3000:]}"
    table = pd.read_parquet(root / "data/scores/scores.parquet")
    return SimpleNamespace(root=root, truth=truth, table=wide_scores(table), means=voxel_means(table), timings=timings)


# ---------------------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------------------


def test_every_format_reaches_the_score_table(pipeline):
    """Every dataset, participant, fold and channel is scored: regions 5, MEG 306 x bins, voxels per mask."""
    table = pipeline.table
    assert set(table["dataset"]) == set(DATASETS)
    assert set(table["model"]) == {"vanilla"}
    for name in DATASETS:
        rows = table[table["dataset"] == name]
        assert list(dict.fromkeys(rows["subject"])) == EXPECTED_SUBJECTS[name], name
        for subject, group in rows.groupby("subject"):
            expected = pipeline.truth[name][subject]["n_channels"]
            assert sorted(group["heldout_run"].unique()) == RUNS, (name, subject)
            per_fold = group.groupby("fold")["voxel"].agg(["count", "min", "max"])
            assert per_fold["count"].eq(expected).all() and per_fold["min"].eq(0).all(), (name, subject)
            assert per_fold["max"].eq(expected - 1).all(), (name, subject)
            assert np.isfinite(group["accuracy"]).all(), (name, subject)
    channels = table.groupby(["dataset", "subject", "fold"])["voxel"].count().groupby("dataset").unique()
    assert channels["regions"].tolist() == [5] and channels["meg"].tolist() == [306 * 4]
    metrics = json.loads((pipeline.root / "metrics/vanilla.json").read_text())
    assert set(metrics) == set(DATASETS)
    for name in DATASETS:
        assert set(metrics[name]) == set(EXPECTED_SUBJECTS[name]) | {"mean"}


@pytest.mark.parametrize("name", DATASETS)
def test_planted_channels_above_chance_noise_at_chance(pipeline, name):
    """Truth: the planted channels are a linear read-out of the features the head sees; the rest is noise."""
    means = pipeline.means[pipeline.means["dataset"] == name]
    signal_acc, noise_acc = [], []
    for subject, group in means.groupby("subject"):
        accuracy = group.sort_values("voxel")["accuracy"].to_numpy()
        planted_here = np.zeros(accuracy.size, dtype=bool)
        planted_here[pipeline.truth[name][subject]["signal"]] = True
        assert accuracy[planted_here].mean() > 0.6, (subject, accuracy[planted_here])
        signal_acc.append(accuracy[planted_here])
        noise_acc.append(accuracy[~planted_here])
    signal_acc, noise_acc = np.concatenate(signal_acc), np.concatenate(noise_acc)
    assert signal_acc.mean() > 0.7, signal_acc
    assert np.median(signal_acc) > 0.65, signal_acc
    # One noise channel's accuracy on one held-out run of ~35-40 examples spreads with SD ~0.15 (k = 10);
    # voxels and MEG pool hundreds of channel x run values, the regions only 4 participants x 3 x 4 runs.
    tolerance = 0.08 if name == "regions" else 0.05
    assert abs(noise_acc.mean() - 0.5) < tolerance, noise_acc


def normalised(rec: Recording) -> np.ndarray:
    """The responses prepare must keep: each run trimmed, then detrended and z-scored per channel (NaN where
    trimmed)."""
    from scipy.signal import detrend

    out = np.full(rec.responses.shape, np.nan)
    for run in RUNS:
        in_run = np.flatnonzero(rec.runs == run)
        kept = in_run[DROP_START: in_run.size - DROP_END]
        block = detrend(rec.responses[kept].astype(np.float64), axis=0, type="linear")
        out[kept] = (block - block.mean(0)) / block.std(0)
    return out


def test_v5_and_v73_release_files_give_identical_results(pipeline):
    """The two files hold the same recordings: prepared data, features, predictions and scores are equal."""
    root = pipeline.root
    for subject in EXPECTED_SUBJECTS["hpv5"]:
        v5, v73 = root / "data/prepared/hpv5" / subject, root / "data/prepared/hpv73" / subject
        assert np.array_equal(np.load(v5 / "responses.npy"), np.load(v73 / "responses.npy")), subject
        pd.testing.assert_frame_equal(pd.read_parquet(v5 / "examples.parquet"),
                                      pd.read_parquet(v73 / "examples.parquet"))
        assert (v5 / "folds.json").read_text() == (v73 / "folds.json").read_text()
        space5, space73 = np.load(v5 / "space.npz"), np.load(v73 / "space.npz")
        for key in ("coords", "affine", "volume_shape"):
            assert np.array_equal(space5[key], space73[key]), key
        assert np.array_equal(features(root, "hpv5", subject), features(root, "hpv73", subject))
        # What was written is what was read back: the planted responses, trimmed, detrended and z-scored
        # within run (by hand here), at the examples' TRs; the voxels where they were put.
        rec = pipeline.truth["hpv5"][subject]["raw"]
        assert np.array_equal(space5["coords"], rec.coords)
        np.testing.assert_allclose(space5["affine"], AFFINE)
        rows = pd.read_parquet(v5 / "examples.parquet")["row"].to_numpy()
        np.testing.assert_allclose(np.load(v5 / "responses.npy"), normalised(rec)[rows], atol=1e-4)
    table = pipeline.table.drop(columns="dataset")
    v5 = table[pipeline.table["dataset"] == "hpv5"].reset_index(drop=True)
    v73 = table[pipeline.table["dataset"] == "hpv73"].reset_index(drop=True)
    pd.testing.assert_frame_equal(v5, v73, check_exact=True)


def expected_windows(rec: Recording) -> pd.DataFrame:
    """The examples prepare must make of a planted own-format recording, worked out here by hand: the TRs
    kept after trimming whose run has a word at least MIN_LEAD s before them, with the words of that run
    starting in the SPAN s before the TR."""
    rows = []
    for run in RUNS:
        in_run = np.flatnonzero(rec.runs == run)
        run_words = rec.words[(rec.words["run"] == run) & (rec.words["word"] != "+")]
        for row in in_run[DROP_START: in_run.size - DROP_END]:
            t = rec.times[row]
            window = run_words[(run_words["onset"] >= t - SPAN) & (run_words["onset"] < t)]
            if len(window) and window["onset"].min() <= t - MIN_LEAD:
                rows.append((row, t, run, len(window), " ".join(window["word"])))
    return pd.DataFrame(rows, columns=["row", "time", "run", "n_words", "text"])


def test_regions_examples_follow_their_tr_and_each_runs_clock(pipeline):
    """Regions: examples sit on the 1.5 s TRs of trs.tsv, each run from 0 s, and a window counts only the
    words of its own run in the 10.1 s before its TR (expected_windows, from the planted recording)."""
    root = pipeline.root
    for subject in REGIONS_SUBJECTS:
        rec = pipeline.truth["regions"][subject]["raw"]
        trs = pd.read_csv(root / "raw/regions" / subject / "trs.tsv", sep="\t")
        for run in RUNS:  # the fixture as written: each run on its own clock, TR 1.5 s
            onsets = trs.loc[trs["run"] == run, "onset"].to_numpy()
            assert onsets[0] == 0.0 and np.allclose(np.diff(onsets), REGIONS_TR)
        examples = pd.read_parquet(root / "data/prepared/regions" / subject / "examples.parquet")
        np.testing.assert_array_equal(examples["time"].to_numpy(), trs["onset"].to_numpy()[examples["row"]])
        np.testing.assert_array_equal(examples["run"].to_numpy(), trs["run"].to_numpy()[examples["row"]])
        expected = expected_windows(rec)
        assert len(expected) > 4 * 30
        columns = ["row", "time", "run", "n_words"]
        pd.testing.assert_frame_equal(examples[columns].reset_index(drop=True), expected[columns], check_dtype=False)
        # Each run's examples start at the same time on its own clock: the first TR with a full window.
        first = examples.groupby("run")["time"].min()
        assert first.nunique() == 1
        assert first.iloc[0] == pytest.approx(REGIONS_TR * np.ceil((REST + MIN_LEAD) / REGIONS_TR))
        assert json.loads((root / "data/prepared/regions" / subject / "channels.json").read_text()) == REGION_NAMES
        responses = np.load(root / "data/prepared/regions" / subject / "responses.npy")
        assert responses.shape == (len(examples), len(REGION_NAMES))


def test_own_format_windows_hold_the_words_as_planted(pipeline):
    """The words reach the encoder as they were planted, in the own format as in the release format.

    The packaged story has words with quote marks (``"Somebody``, ``forget."``); a quote mark is a character
    of a word, so a window's text is the planted words joined by spaces. The NIfTI dataset has the release
    datasets' words (less the fixations) on the same TRs, so its examples must equal theirs."""
    root = pipeline.root
    for name, subjects in (("regions", REGIONS_SUBJECTS), ("nifti", NIFTI_SUBJECTS)):
        for subject in subjects:
            examples = pd.read_parquet(root / "data/prepared" / name / subject / "examples.parquet")
            expected = expected_windows(pipeline.truth[name][subject]["raw"])
            assert any('"' in text for text in expected["text"])  # the check means something
            assert len(examples) == len(expected)
            bad = np.flatnonzero(examples["text"].to_numpy() != expected["text"].to_numpy())
            assert bad.size == 0, (f"{name}/{subject}: {bad.size} windows differ from the planted words, first: "
                                   f"{examples['text'].iloc[bad[0]][:80]!r} != {expected['text'].iloc[bad[0]][:80]!r}")
    release = pd.read_parquet(root / "data/prepared/hpv5/1/examples.parquet")
    nifti = pd.read_parquet(root / "data/prepared/nifti" / NIFTI_SUBJECTS[0] / "examples.parquet")
    pd.testing.assert_frame_equal(release, nifti)


def test_meg_examples_are_the_content_words_with_their_windows(pipeline):
    """MEG: one example per content word, its window as the fixture computed it; 306 x 4 components."""
    root = pipeline.root
    for subject in MEG_SUBJECTS:
        examples = pd.read_parquet(root / "data/prepared/meg" / subject / "examples.parquet")
        assert examples["text"].tolist() == pipeline.truth["meg_texts"]
        assert all(is_content_word(w) for w in examples["word"])
        assert all(text.split()[-1] == word for text, word in zip(examples["text"], examples["word"]))
        assert np.load(root / "data/prepared/meg" / subject / "responses.npy").shape == (len(examples), 306 * MEG_BINS)
        assert features(root, "meg", subject).shape == (len(examples), 384 + 2)


def test_report_draws_each_kind_of_channel(pipeline):
    """Regions: a bar chart; MEG: a time course over the 4 bins; voxels (NIfTI, release): glass brains."""
    figures = pipeline.root / "reports/figures"
    expected = ["vanilla_regions_regions.png", "vanilla_meg_time_course.png",
                *[f"vanilla_nifti_glass_brain_{s}.png" for s in NIFTI_SUBJECTS], "vanilla_nifti_glass_brain_mean.png",
                *[f"vanilla_hpv5_glass_brain_{s}.png" for s in EXPECTED_SUBJECTS["hpv5"]],
                *[f"vanilla_{name}_accuracy_distribution.png" for name in DATASETS]]
    for name in expected:
        assert (figures / name).stat().st_size > 5_000, name
        assert (figures / name).with_suffix(".csv").exists(), name
    bars = pd.read_csv(figures / "vanilla_regions_regions.csv")
    assert sorted(bars["channel"].unique()) == sorted(REGION_NAMES)
    assert len(bars) == len(REGION_NAMES) * len(REGIONS_SUBJECTS)
    course = pd.read_csv(figures / "vanilla_meg_time_course.csv")
    assert len(course) == MEG_BINS * len(MEG_SUBJECTS)
    # Glass brains of participants whose voxels differ are not averaged; the NIfTI participants share a mask.
    assert not (figures / "vanilla_hpv5_glass_brain_mean.png").exists()
    assert not any(figures.glob("vanilla_meg_glass_brain*")) and not any(figures.glob("vanilla_regions_glass_brain*"))
