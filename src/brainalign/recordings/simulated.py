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
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import gamma

from brainalign.errors import ConfigError
from brainalign.files import atomic_path, write_json
from brainalign.recordings.base import FIXATION, Recording
from brainalign.recordings.hp_fmri import write_hp_fmri

log = logging.getLogger(__name__)

# Approximate MNI centres (mm) of left-hemisphere language regions (after Fedorenko et al. 2010's parcels).
LANGUAGE_REGIONS = {
    "L_IFGorb": (-47.0, 27.0, -4.0),
    "L_IFG": (-51.0, 15.0, 18.0),
    "L_MFG": (-41.0, 2.0, 47.0),
    "L_AntTemp": (-56.0, -5.0, -13.0),
    "L_PostTemp": (-57.0, -42.0, 6.0),
    "L_AngG": (-45.0, -64.0, 26.0),
}


@dataclass
class SimulationConfig:
    """Parameters of the simulated experiment (the ``simulate`` section of params.yaml)."""

    subjects: int = 3
    runs: int = 4
    words_per_run: int = 400
    word_duration: float = 0.5
    tr: float = 2.0
    rest_start_trs: int = 10
    rest_end_trs: int = 5
    fixations_per_run: int = 2
    resolution_mm: int = 6
    region_radius_mm: float = 12.0
    n_features: int = 12
    encoder: str = "minilm"
    encoder_layer: int = 3
    shared_fraction: float = 0.7
    cls_share: float = 0.5
    snr: list[float] = field(default_factory=lambda: [0.5, 1.0])
    noise_autocorrelation: float = 0.5
    drift_amplitude: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.subjects < 1 or self.runs < 2 or self.words_per_run < 10:
            raise ConfigError("simulate: need subjects >= 1, runs >= 2 and words_per_run >= 10")
        if not 0.0 <= self.cls_share <= 1.0:
            raise ConfigError(f"simulate.cls_share: expected a value in [0, 1], found {self.cls_share}")
        if not 0.0 <= self.shared_fraction <= 1.0:
            raise ConfigError(f"simulate.shared_fraction: expected a value in [0, 1], found {self.shared_fraction}")
        if len(self.snr) != 2 or not 0 < self.snr[0] <= self.snr[1]:
            raise ConfigError(f"simulate.snr: expected [low, high] with 0 < low <= high, found {self.snr}")
        if not 0.0 <= self.noise_autocorrelation < 1.0:
            raise ConfigError("simulate.noise_autocorrelation: expected a value in [0, 1)")


@dataclass
class Truth:
    """What the simulation knows and the recordings do not say."""

    responsive: np.ndarray  # (n_voxels,) bool
    region: np.ndarray  # (n_voxels,) int, 1-based index into region_names, 0 = none
    region_names: list[str]
    snr: dict[str, float]
    signal: dict[str, np.ndarray]  # subject -> (n_trs, n_responsive) noise-free signal, as added
    features: np.ndarray  # (n_trs, n_features) HRF-convolved hidden features


def story_words() -> list[str]:
    """The words of the packaged story, split on white space (punctuation stays on its word)."""
    text = importlib.resources.files("brainalign.recordings").joinpath("story.txt").read_text("utf-8")
    return text.split()


def canonical_hrf(dt: float, length: float = 32.0) -> np.ndarray:
    """SPM's canonical double-gamma HRF sampled every ``dt`` seconds, summing to 1."""
    t = np.arange(0.0, length, dt)
    h = gamma.pdf(t, 6.0) - gamma.pdf(t, 16.0) / 6.0
    return h / h.sum()


def brain_geometry(resolution_mm: int, radius_mm: float) -> dict:
    """Voxels of the MNI152 brain mask at ``resolution_mm`` and which lie in a language region."""
    from nilearn.datasets import load_mni152_brain_mask

    mask = load_mni152_brain_mask(resolution=resolution_mm)
    coords = np.argwhere(np.asarray(mask.get_fdata()) > 0)
    mni = coords @ mask.affine[:3, :3].T + mask.affine[:3, 3]
    region = np.zeros(len(coords), dtype=np.int64)
    for number, centre in enumerate(LANGUAGE_REGIONS.values(), start=1):
        inside = np.linalg.norm(mni - np.asarray(centre), axis=1) <= radius_mm
        region[inside & (region == 0)] = number
    return {"coords": coords, "affine": np.asarray(mask.affine, dtype=np.float64),
            "shape": tuple(int(s) for s in mask.shape), "region": region}


def experiment_layout(config: SimulationConfig, words: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Word onsets (with fixations) and TR times and runs, runs following each other on one clock."""
    needed = config.runs * config.words_per_run
    if needed > len(words):
        raise ConfigError(f"simulate: {config.runs} runs x {config.words_per_run} words needs {needed} words; "
                          f"the story has {len(words)}")
    rows, tr_times, tr_runs = [], [], []
    clock = 0.0
    for run in range(1, config.runs + 1):
        run_words = words[(run - 1) * config.words_per_run: run * config.words_per_run]
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
        n_trs = config.rest_start_trs + math.ceil(len(slots) * config.word_duration / config.tr) + config.rest_end_trs
        tr_times.extend(clock + config.tr * np.arange(n_trs))
        tr_runs.extend([run] * n_trs)
        clock += n_trs * config.tr
    words_df = pd.DataFrame(rows, columns=["word", "onset", "duration"])
    return words_df, np.asarray(tr_times), np.asarray(tr_runs)


def hidden_features(config: SimulationConfig, encoder, words: list[str], rng: np.random.Generator) -> np.ndarray:
    """The word-level part of the hidden feature space: (n_words, n_features), standardised."""
    from wordfreq import word_frequency

    from brainalign.encoders import word_states

    states = word_states(encoder, words, layer=config.encoder_layer)
    states = (states - states.mean(0)) / (states.std(0) + 1e-6)
    width = states.shape[1]
    w1 = rng.standard_normal((width, 64)) / math.sqrt(width)
    w2 = rng.standard_normal((64, config.n_features - 2)) / math.sqrt(64)
    semantic = np.tanh(states @ w1) @ w2
    bare = [re.sub(r"[^\w']", "", w).lower() for w in words]
    length = np.array([len(b) for b in bare], dtype=np.float64)
    log_freq = np.log(np.array([word_frequency(b, "en", minimum=1e-8) if b else 1e-8 for b in bare]))
    return _standardise(np.column_stack([semantic, length, log_freq]))


def window_features(config: SimulationConfig, encoder, words: pd.DataFrame, tr_times: np.ndarray,
                    tr_runs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ``[CLS]``-linear part: a random projection of each TR's window ``[CLS]`` (0 without words)."""
    from brainalign.encoders import cls_features
    from brainalign.recordings.base import assign_runs
    from brainalign.windows import tr_windows

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


def simulate_experiment(config: SimulationConfig) -> tuple[list[Recording], Truth]:
    """Simulate every participant of the experiment.

    Returns
    -------
    recordings : list of Recording
        One per participant, ids ``"1"``, ``"2"``, ...
    truth : Truth
    """
    from brainalign.encoders import load_encoder

    rng = np.random.default_rng(config.seed)
    words_df, tr_times, tr_runs = experiment_layout(config, story_words())
    story = words_df[words_df["word"] != FIXATION].reset_index(drop=True)
    encoder = load_encoder(config.encoder)
    word_part = convolved_features(hidden_features(config, encoder, story["word"].tolist(), rng),
                                   story["onset"].to_numpy(), story["duration"].to_numpy(), tr_times, config.tr)
    cls_part = window_features(config, encoder, story, tr_times, tr_runs, rng)
    features = (math.sqrt(config.cls_share) * cls_part
                + math.sqrt(1 - config.cls_share) * _standardise(word_part))
    geometry = brain_geometry(config.resolution_mm, config.region_radius_mm)
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
    return recordings, truth


def write_simulation(recordings: list[Recording], truth: Truth, config: SimulationConfig,
                     raw_dir: str | os.PathLike, truth_dir: str | os.PathLike) -> None:
    """Write the recordings as ``subject_N.mat`` under ``raw_dir`` and the ground truth under ``truth_dir``.

    Each directory is replaced atomically, so a crash leaves the previous version whole.
    """
    with atomic_path(raw_dir) as tmp:
        tmp.mkdir(parents=True)
        for rec in recordings:
            write_hp_fmri(rec, tmp / f"subject_{rec.subject}.mat", region_of_voxel=truth.region,
                          region_names=truth.region_names, voxel_size=float(config.resolution_mm))
    with atomic_path(truth_dir) as tmp:
        tmp.mkdir(parents=True)
        for rec in recordings:
            np.savez(tmp / f"subject_{rec.subject}.npz", responsive=truth.responsive, region=truth.region,
                     signal=truth.signal[rec.subject], snr=np.float64(truth.snr[rec.subject]),
                     features=truth.features)
        write_json(tmp / "truth.json", {"config": asdict(config), "snr": truth.snr,
                                        "region_names": truth.region_names,
                                        "n_responsive": int(truth.responsive.sum()),
                                        "n_voxels": int(truth.responsive.size)})


def read_truth(truth_dir: str | os.PathLike, subject: str) -> dict[str, np.ndarray]:
    """The ground truth of one simulated participant (arrays only; nothing is unpickled)."""
    with np.load(Path(truth_dir) / f"subject_{subject}.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
