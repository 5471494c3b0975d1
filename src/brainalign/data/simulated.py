"""A simulated reading experiment with known ground truth, written in the real release formats.

The stimulus is an original story (``story.txt``, shipped with the package) shown one word every
``word_duration`` seconds in ``runs`` runs, each opening with ``rest_start_trs`` TRs of rest and closing
with ``rest_end_trs``, with a few ``+`` fixations: the shape of the Harry Potter chapter.

Responses come from a hidden "brain feature space": a fixed random nonlinear transform of the contextual
word states of a pretrained encoder at a middle layer, plus word length and unigram log-frequency. The
features of each word are held for its duration, convolved with the canonical (SPM) HRF and sampled at the
TRs. A share ``cls_share`` of the feature variance is instead a fixed random linear projection of the
encoder's final ``[CLS]`` state for each TR's window of words (the part a linear read-out of ``[CLS]``, the
vanilla model, can recover): ``cls_share = 1`` makes the vanilla model optimal, ``cls_share = 0`` leaves it
almost nothing, and values between leave fine-tuning something to find. Responsive voxels lie in spheres around left-hemisphere language regions of the MNI152 brain mask and
read the features through participant weights ``sqrt(shared) * W_shared + sqrt(1 - shared) * W_own``;
every voxel gets slow drift and AR(1) noise, and responsive voxels carry the signal at the participant's
SNR (signal variance over the AR(1) noise's variance; the drift comes on top and
prepare's detrending removes most of it). The final ``[CLS]`` state of the same encoder can only recover
the ``cls_share`` part of this signal linearly.

MEG participants read the same story: each word's hidden features drive 306 sensors x 20 bins of 25 ms
through a temporal kernel per feature and participant sensor maps (shared and own), plus AR(1) noise, at
a per-participant ``meg_snr``. Recordings are written in the release formats (``subject_N.mat``, the MEG
``.npz``); the ground truth goes beside them in files of its own.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from brainalign.data.atlas import LANGUAGE_REGIONS, language_region_labels
from brainalign.data.hp_fmri import write_hp_fmri
from brainalign.data.recording import FIXATION, Recording
from brainalign.data.sources import SOURCES
from brainalign.errors import ConfigError
from brainalign.files import atomic_path, write_json

log = logging.getLogger(__name__)

# Scale presets: a key left null in params.yaml takes the preset's value. ``paper`` is the chapter's size:
# 5,176 entries (5,164 words and 12 fixations), runs of 340, 352, 279 and 380 TRs (1,351), 8 fMRI and
# 8 MEG participants, the 3 mm grey-matter mask (40,002 voxels).
PRESETS = {
    "default": {"subjects": 3, "meg_subjects": 2, "words_per_run": 240, "rest_end_trs": 5, "fixations_per_run": 2,
                "resolution_mm": 6, "mask": "brain"},
    "paper": {"subjects": 8, "meg_subjects": 8, "words_per_run": [1297, 1345, 1053, 1469],
              "rest_end_trs": [5, 5, 5, 2], "fixations_per_run": 3, "resolution_mm": 3, "mask": "grey_matter"},
}
MASKS = ("brain", "grey_matter")
GREY_MATTER_THRESHOLD = 0.5  # probability in nilearn's MNI152 grey-matter template
MEG_SENSORS, MEG_BINS, MEG_BIN_MS = 306, 20, 25.0


@dataclass
class SimulationConfig:
    """Parameters of the simulated experiment (the ``simulate`` section of params.yaml).

    Keys of :data:`PRESETS` that are None take the value of ``preset``.
    """

    preset: str = "default"
    subjects: int | None = None
    meg_subjects: int | None = None
    runs: int = 4
    words_per_run: int | list[int] | None = None
    word_duration: float = 0.5
    tr: float = 2.0
    rest_start_trs: int = 10
    rest_end_trs: int | list[int] | None = None
    fixations_per_run: int | None = None
    resolution_mm: int | None = None
    mask: str | None = None
    region_radius_mm: float = 12.0
    n_features: int = 12
    encoder: str = "minilm"
    encoder_layer: int = 3
    shared_fraction: float = 0.7
    cls_share: float = 0.5
    snr: list[float] = field(default_factory=lambda: [0.5, 1.0])
    meg_snr: list[float] = field(default_factory=lambda: [0.1, 0.2])
    noise_autocorrelation: float = 0.5
    drift_amplitude: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"simulate.preset: expected one of {list(PRESETS)}, found {self.preset!r}")
        for key, value in PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.subjects < 1 or self.meg_subjects < 0 or self.runs < 2:
            raise ConfigError("simulate: need subjects >= 1, meg_subjects >= 0 and runs >= 2")
        for key in ("words_per_run", "rest_end_trs"):
            value = getattr(self, key)
            if isinstance(value, list) and len(value) != self.runs:
                raise ConfigError(f"simulate.{key}: expected one value or one per run ({self.runs}), found {value}")
        if min(self.per_run("words_per_run")) < 10:
            raise ConfigError(f"simulate.words_per_run: expected at least 10 per run, found {self.words_per_run}")
        if self.mask not in MASKS:
            raise ConfigError(f"simulate.mask: expected one of {MASKS}, found {self.mask!r}")
        if not 0.0 <= self.cls_share <= 1.0:
            raise ConfigError(f"simulate.cls_share: expected a value in [0, 1], found {self.cls_share}")
        if not 0.0 <= self.shared_fraction <= 1.0:
            raise ConfigError(f"simulate.shared_fraction: expected a value in [0, 1], found {self.shared_fraction}")
        for key in ("snr", "meg_snr"):
            value = getattr(self, key)
            if len(value) != 2 or not 0 < value[0] <= value[1]:
                raise ConfigError(f"simulate.{key}: expected [low, high] with 0 < low <= high, found {value}")
        if not 0.0 <= self.noise_autocorrelation < 1.0:
            raise ConfigError("simulate.noise_autocorrelation: expected a value in [0, 1)")

    def per_run(self, key: str) -> list[int]:
        """A setting that may be given once or per run, as one value per run."""
        value = getattr(self, key)
        return [int(v) for v in value] if isinstance(value, list) else [int(value)] * self.runs


@dataclass
class Truth:
    """What the simulation knows and the recordings do not say."""

    responsive: np.ndarray  # (n_voxels,) bool
    region: np.ndarray  # (n_voxels,) int, 1-based index into region_names, 0 = none
    region_names: list[str]
    snr: dict[str, float]
    signal: dict[str, np.ndarray]  # subject -> (n_trs, n_responsive) noise-free signal, as added
    features: np.ndarray  # (n_trs, n_features) HRF-convolved hidden features
    meg: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # subject -> meg_signal's factors


def story_words() -> list[str]:
    """The words of the packaged story, split on white space (punctuation stays on its word)."""
    text = importlib.resources.files("brainalign.data").joinpath("story.txt").read_text("utf-8")
    return text.split()


def canonical_hrf(dt: float, length: float = 32.0) -> np.ndarray:
    """SPM's canonical double-gamma HRF sampled every ``dt`` seconds, summing to 1."""
    # scipy.stats costs about 0.4 s to import, and every stage that reads a dataset imports this module
    # (it registers the simulated source); only simulating needs the HRF.
    from scipy.stats import gamma

    t = np.arange(0.0, length, dt)
    h = gamma.pdf(t, 6.0) - gamma.pdf(t, 16.0) / 6.0
    return h / h.sum()


def brain_geometry(resolution_mm: int, radius_mm: float, mask: str = "brain") -> dict:
    """Voxels of an MNI152 mask at ``resolution_mm`` and which lie in a language region.

    ``mask``: ``brain`` (nilearn's brain mask) or ``grey_matter`` (its grey-matter template above
    :data:`GREY_MATTER_THRESHOLD`, the kind of mask the release's voxels come from).
    """
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_gm_template

    if mask == "grey_matter":
        image = load_mni152_gm_template(resolution=resolution_mm)
        inside = np.asarray(image.get_fdata()) > GREY_MATTER_THRESHOLD
    else:
        image = load_mni152_brain_mask(resolution=resolution_mm)
        inside = np.asarray(image.get_fdata()) > 0
    coords = np.argwhere(inside)
    region = language_region_labels(coords, image.affine, radius_mm)
    return {"coords": coords, "affine": np.asarray(image.affine, dtype=np.float64),
            "shape": tuple(int(s) for s in image.shape), "region": region}


def experiment_layout(config: SimulationConfig, words: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Word onsets (with fixations) and TR times and runs, runs following each other on one clock."""
    per_run = config.per_run("words_per_run")
    if sum(per_run) > len(words):
        raise ConfigError(f"simulate: {config.runs} runs of {config.words_per_run} words need {sum(per_run)} words; "
                          f"the story has {len(words)}")
    bounds = np.concatenate([[0], np.cumsum(per_run)])
    rest_end = config.per_run("rest_end_trs")
    rows, tr_times, tr_runs = [], [], []
    clock = 0.0
    for run in range(1, config.runs + 1):
        run_words = words[bounds[run - 1]: bounds[run]]
        sentence_ends = [i + 1 for i, w in enumerate(run_words[:-1]) if re.search(r"[.!?][\"']?$", w)]
        fixations = set()
        if sentence_ends and config.fixations_per_run:
            picks = np.linspace(0, len(sentence_ends) - 1, config.fixations_per_run + 2)[1:-1]
            fixations = {sentence_ends[int(round(p))] for p in picks}
        slots = []
        for i, word in enumerate(run_words):
            if i in fixations:
                slots.append(FIXATION)
            slots.append(word)
        first = clock + config.rest_start_trs * config.tr
        for j, word in enumerate(slots):
            rows.append((word, first + j * config.word_duration, config.word_duration))
        n_trs = config.rest_start_trs + math.ceil(len(slots) * config.word_duration / config.tr) + rest_end[run - 1]
        tr_times.extend(clock + config.tr * np.arange(n_trs))
        tr_runs.extend([run] * n_trs)
        clock += n_trs * config.tr
    words_df = pd.DataFrame(rows, columns=["word", "onset", "duration"])
    return words_df, np.asarray(tr_times), np.asarray(tr_runs)


def hidden_features(config: SimulationConfig, encoder, words: list[str], rng: np.random.Generator) -> np.ndarray:
    """The word-level part of the hidden feature space: (n_words, n_features), standardised."""
    from brainalign.features.encoders import word_states
    from brainalign.stimuli.lexicon import word_properties

    states = word_states(encoder, words, layer=config.encoder_layer)
    states = (states - states.mean(0)) / (states.std(0) + 1e-6)
    width = states.shape[1]
    w1 = rng.standard_normal((width, 64)) / math.sqrt(width)
    w2 = rng.standard_normal((64, config.n_features - 2)) / math.sqrt(64)
    semantic = np.tanh(states @ w1) @ w2
    return _standardise(np.column_stack([semantic, word_properties(words)]))


def window_features(config: SimulationConfig, encoder, words: pd.DataFrame, tr_times: np.ndarray,
                    tr_runs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ``[CLS]``-linear part: a random projection of each TR's window ``[CLS]`` (0 without words)."""
    from brainalign.data.recording import assign_runs
    from brainalign.features.encoders import cls_features
    from brainalign.stimuli.windows import tr_windows

    if config.cls_share == 0:
        # No [CLS] part: the same draw keeps the random stream (and so the rest) unchanged, without the pass.
        rng.standard_normal((encoder.width, config.n_features))
        return np.zeros((len(tr_times), config.n_features))
    story = words.assign(run=assign_runs(words["onset"].to_numpy(), tr_times, tr_runs))
    windows = tr_windows(tr_times, tr_runs, story)
    has_words = windows["n_words"].to_numpy() > 0
    cls = cls_features(encoder, windows.loc[has_words, "text"].tolist())
    projection = rng.standard_normal((cls.shape[1], config.n_features)) / math.sqrt(cls.shape[1])
    out = np.zeros((len(tr_times), config.n_features))
    out[has_words] = _standardise(cls.astype(np.float64)) @ projection
    return _standardise(out)


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-9)


def convolved_features(word_features: np.ndarray, onsets: np.ndarray, durations: np.ndarray,
                       tr_times: np.ndarray, tr: float, dt: float = 0.1) -> np.ndarray:
    """Features held for each word's duration, convolved with the HRF, sampled at the TR starts."""
    end = tr_times.max() + tr
    grid = np.zeros((int(math.ceil(end / dt)) + 1, word_features.shape[1]))
    for feats, onset, duration in zip(word_features, onsets, durations):
        first, last = int(round(onset / dt)), int(round((onset + duration) / dt))
        grid[first:max(last, first + 1)] += feats
    hrf = canonical_hrf(dt)
    convolved = np.stack([np.convolve(grid[:, j], hrf)[: len(grid)] for j in range(grid.shape[1])], axis=1)
    return convolved[np.rint(tr_times / dt).astype(int)]


def _ar1_noise(rng: np.random.Generator, n: int, m: int, phi: float) -> np.ndarray:
    noise = np.empty((n, m))
    innovations = rng.standard_normal((n, m)) * math.sqrt(1 - phi**2)
    noise[0] = rng.standard_normal(m)
    for t in range(1, n):
        noise[t] = phi * noise[t - 1] + innovations[t]
    return noise


def _drift(rng: np.random.Generator, times: np.ndarray, runs: np.ndarray, m: int, amplitude: float) -> np.ndarray:
    drift = np.zeros((len(times), m))
    for run in np.unique(runs):
        rows = runs == run
        t = times[rows] - times[rows][0]
        span = t[-1] + 1e-9
        slope = rng.standard_normal(m) * amplitude
        slow = rng.standard_normal(m) * amplitude
        drift[rows] = np.outer(t / span - 0.5, slope) + np.outer(np.cos(np.pi * t / span), slow)
    return drift


def simulate_experiment(config: SimulationConfig) -> tuple[list[Recording], list[Recording], Truth]:
    """Simulate every participant of the experiment, fMRI and MEG.

    Returns
    -------
    fmri : list of Recording
        One per fMRI participant, ids ``"1"``, ``"2"``, ...
    meg : list of Recording
        One per MEG participant, ids ``"M1"``, ``"M2"``, ..., reading the same story (no fixations).
    truth : Truth
    """
    from brainalign.features.encoders import load_encoder

    rng = np.random.default_rng(config.seed)
    words_df, tr_times, tr_runs = experiment_layout(config, story_words())
    story = words_df[words_df["word"] != FIXATION].reset_index(drop=True)
    encoder = load_encoder(config.encoder)
    word_level = hidden_features(config, encoder, story["word"].tolist(), rng)
    word_part = convolved_features(word_level, story["onset"].to_numpy(), story["duration"].to_numpy(),
                                   tr_times, config.tr)
    cls_part = window_features(config, encoder, story, tr_times, tr_runs, rng)
    features = (math.sqrt(config.cls_share) * cls_part
                + math.sqrt(1 - config.cls_share) * _standardise(word_part))
    geometry = brain_geometry(config.resolution_mm, config.region_radius_mm, config.mask)
    responsive = geometry["region"] > 0
    n_voxels, n_responsive = len(geometry["coords"]), int(responsive.sum())
    shared = rng.standard_normal((config.n_features, n_responsive))
    recordings, signals, snrs = [], {}, {}
    for s in range(1, config.subjects + 1):
        subject = str(s)
        own = rng.standard_normal((config.n_features, n_responsive))
        weights = math.sqrt(config.shared_fraction) * shared + math.sqrt(1 - config.shared_fraction) * own
        signal = features @ weights
        signal = (signal - signal.mean(0)) / signal.std(0)
        snr = float(rng.uniform(*config.snr))
        noise = _ar1_noise(rng, len(tr_times), n_voxels, config.noise_autocorrelation)
        responses = noise + _drift(rng, tr_times, tr_runs, n_voxels, config.drift_amplitude)
        signals[subject] = (math.sqrt(snr) * signal).astype(np.float32)
        responses[:, responsive] += signals[subject]
        snrs[subject] = snr
        recordings.append(Recording(
            subject=subject, modality="fmri", responses=responses.astype(np.float32), times=tr_times,
            runs=tr_runs, words=words_df, coords=geometry["coords"], affine=geometry["affine"],
            volume_shape=geometry["shape"], source=f"<simulated participant {subject}>"))
    truth = Truth(responsive=responsive, region=geometry["region"], region_names=list(LANGUAGE_REGIONS),
                  snr=snrs, signal=signals, features=features.astype(np.float32))
    # MEG draws from its own stream, so adding MEG participants leaves the fMRI recordings unchanged.
    meg = simulate_meg(config, word_level, story, tr_times, tr_runs, np.random.default_rng([config.seed, 1]), truth)
    return recordings, meg, truth


def meg_kernels(n_features: int, rng: np.random.Generator) -> np.ndarray:
    """A temporal response per feature over the :data:`MEG_BINS` bins: a Gaussian bump peaking 75-400 ms
    after word onset, 40-90 ms wide, of random sign: (n_features, MEG_BINS)."""
    centres = (np.arange(MEG_BINS) + 0.5) * MEG_BIN_MS
    latency = rng.uniform(75.0, 400.0, n_features)
    width = rng.uniform(40.0, 90.0, n_features)
    sign = rng.choice([-1.0, 1.0], n_features)
    return sign[:, None] * np.exp(-0.5 * ((centres[None] - latency[:, None]) / width[:, None]) ** 2)


def meg_signal(factors: dict[str, np.ndarray]) -> np.ndarray:
    """The noise-free MEG signal of a participant from its truth factors: (words, sensors, bins).

    ``signal[w, s, b] = scale * sum_f features[w, f] * spatial[f, s] * kernels[f, b]``.
    """
    return float(factors["scale"]) * np.einsum("wf,fs,fb->wsb", factors["features"], factors["spatial"],
                                               factors["kernels"], optimize=True)


def simulate_meg(config: SimulationConfig, word_level: np.ndarray, story: pd.DataFrame, tr_times: np.ndarray,
                 tr_runs: np.ndarray, rng: np.random.Generator, truth: Truth) -> list[Recording]:
    """MEG participants: each word's hidden features drive 306 sensors x 20 bins through temporal kernels.

    Sensor maps mix a shared and a participant's own component (``shared_fraction``); noise is AR(1)
    over bins with unit variance; the signal is scaled to the participant's ``meg_snr``. The truth
    factors go to ``truth.meg`` (see :func:`meg_signal`).
    """
    if config.meg_subjects == 0:
        return []
    from brainalign.data.recording import assign_runs

    kernels = meg_kernels(config.n_features, rng)
    shared = rng.standard_normal((config.n_features, MEG_SENSORS))
    words = story[["word", "onset", "duration"]].copy()
    runs = assign_runs(words["onset"].to_numpy(), tr_times, tr_runs)
    # The release keeps no onsets: each run's words on the run's own clock, as the MEG loader places them.
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        words.loc[rows, "onset"] = np.arange(rows.size) * config.word_duration
    words = words.assign(run=runs)
    out = []
    for s in range(1, config.meg_subjects + 1):
        subject = f"M{s}"
        own = rng.standard_normal((config.n_features, MEG_SENSORS))
        spatial = math.sqrt(config.shared_fraction) * shared + math.sqrt(1 - config.shared_fraction) * own
        snr = float(rng.uniform(*config.meg_snr))
        factors = {"features": word_level.astype(np.float64), "spatial": spatial, "kernels": kernels, "scale": 1.0}
        raw = meg_signal(factors)
        factors["scale"] = math.sqrt(snr) / float(raw.std())
        noise = _ar1_noise(rng, MEG_BINS, len(words) * MEG_SENSORS, config.noise_autocorrelation)
        data = factors["scale"] * raw + noise.T.reshape(len(words), MEG_SENSORS, MEG_BINS)
        truth.meg[subject] = {**factors, "snr": np.float64(snr), "scale": np.float64(factors["scale"])}
        out.append(Recording(subject=subject, modality="meg", responses=data.reshape(len(words), -1).astype(np.float32),
                             times=words["onset"].to_numpy(), runs=runs, words=words,
                             source=f"<simulated MEG participant {subject}>",
                             extra={"n_sensors": MEG_SENSORS, "n_bins": MEG_BINS}))
    return out


def atlas_labels(coords: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each voxel's region in an atlas, for ``meta.colToROInum``: the nearest of Dosenbach et al.
    (2010)'s 160 regions (shipped with nilearn), as the release labels its voxels with AAL's.

    Returns 1-based region numbers per voxel and the region names.
    """
    from nilearn.datasets import fetch_coords_dosenbach_2010

    atlas = fetch_coords_dosenbach_2010()
    centres = np.asarray(atlas.rois[["x", "y", "z"]], dtype=np.float64)
    mni = coords @ affine[:3, :3].T + affine[:3, 3]
    nearest = np.argmin(((mni[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    return nearest + 1, [str(name) for name in atlas.labels]


def write_simulation(fmri: list[Recording], meg: list[Recording], truth: Truth, config: SimulationConfig,
                     raw_dir: str | os.PathLike, truth_dir: str | os.PathLike) -> None:
    """Write the recordings in release formats under ``raw_dir`` and the ground truth under ``truth_dir``.

    ``raw_dir/fmri/subject_N.mat`` (Harry Potter fMRI release), ``raw_dir/meg/hp_meg.npz`` (the MEG
    layout); ``truth_dir/fmri/subject_N.npz``, ``truth_dir/meg/subject_MN.npz`` and ``truth_dir/truth.json``.
    Each directory is replaced atomically, so a crash leaves the previous version whole.
    """
    from brainalign.data.hp_meg import write_hp_meg

    labels, names = atlas_labels(fmri[0].coords, fmri[0].affine)
    with atomic_path(raw_dir) as tmp:
        (tmp / "fmri").mkdir(parents=True)
        for rec in fmri:
            # Region labels as the release has them (an atlas), never the simulation's language regions:
            # those are the responsive voxels, which belong to the ground truth only (data/truth).
            write_hp_fmri(rec, tmp / "fmri" / f"subject_{rec.subject}.mat", region_of_voxel=labels,
                          region_names=names, voxel_size=float(config.resolution_mm))
        if meg:
            (tmp / "meg").mkdir()
            write_hp_meg(meg, tmp / "meg" / "hp_meg.npz")
    with atomic_path(truth_dir) as tmp:
        (tmp / "fmri").mkdir(parents=True)
        for rec in fmri:
            np.savez(tmp / "fmri" / f"subject_{rec.subject}.npz", responsive=truth.responsive, region=truth.region,
                     signal=truth.signal[rec.subject], snr=np.float64(truth.snr[rec.subject]),
                     features=truth.features)
        if meg:
            (tmp / "meg").mkdir()
            for subject, factors in truth.meg.items():
                np.savez(tmp / "meg" / f"subject_{subject}.npz", **factors)
        write_json(tmp / "truth.json", {"config": asdict(config), "snr": truth.snr,
                                        "meg_snr": {s: float(f["snr"]) for s, f in truth.meg.items()},
                                        "region_names": truth.region_names,
                                        "n_responsive": int(truth.responsive.sum()),
                                        "n_voxels": int(truth.responsive.size)})


def read_truth(truth_dir: str | os.PathLike, subject: str, modality: str = "fmri") -> dict[str, np.ndarray]:
    """The ground truth of one simulated participant (arrays only; nothing is unpickled).

    fMRI: ``responsive``, ``region``, ``signal``, ``snr``, ``features``. MEG: the factors of
    :func:`meg_signal` and ``snr``.
    """
    with np.load(Path(truth_dir) / modality / f"subject_{subject}.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


@SOURCES.register("simulated")
def read_simulated_dataset(path: Path, participants: Sequence[str] | str | None = None) -> list[Recording]:
    """What :func:`write_simulation` wrote: the fMRI directory or the MEG ``.npz``, in the releases' formats."""
    loader = SOURCES.get("hp_meg" if path.suffix == ".npz" else "hp_fmri")
    return loader(path, participants)
