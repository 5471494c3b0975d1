"""A simulated probing experiment: the story read in the scanner, its features, and planted truth.

The story (``data/story.txt``) is laid out as :mod:`brainalign.data.simulated` lays it out (runs of TRs of
2 s, a word every 0.5 s, rest and fixations). Its features are the project's own annotations
(:func:`brainalign.probing.annotate.annotate_story`) plus a group ``simulated`` the simulation makes itself:

- ``layer<L>``: a fixed random projection of layer ``L``'s pooled state of each TR's segment (the
  representation the probes read, :func:`brainalign.probing.representations.segment_representations`),
  standardised; every word of the segment carries its segment's value. Probes must find it best at ``L``.
- ``state``: an on/off state that lasts a few segments at a time (a binary feature at the segment level,
  decoded with FReM's classifier).

Each planted pair (feature, region) puts the feature's time course (held for each word, convolved with the
canonical HRF, standardised) into every voxel of the region, with a positive loading per voxel and
participant, at the participant's SNR; every voxel gets AR(1) noise and slow drift. Voxels are labelled with
twelve AAL-named spheres of the seed's regions (left and right inferior frontal, supramarginal, angular and
superior temporal), written as the release writes AAL labels (``colToROInum``, ``ROInumToName``).

The truth (``truth.json``) lists the planted pairs and layers, and for every region and feature the largest
absolute correlation, over the kept segments, between the feature and a feature planted in that region: a
feature correlated with a planted one is legitimately decodable where that one is (``implied``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from brainalign.data.recording import FIXATION, Recording
from brainalign.errors import ConfigError
from brainalign.files import atomic_path, write_json

if TYPE_CHECKING:
    from brainalign.probing.features import StoryFeatures

# Approximate MNI centres (mm) of the seed's twelve AAL regions.
PROBING_REGIONS = {
    "Frontal_Inf_Oper_L": (-48.0, 13.0, 19.0), "Frontal_Inf_Oper_R": (50.0, 15.0, 21.0),
    "Frontal_Inf_Tri_L": (-46.0, 30.0, 14.0), "Frontal_Inf_Tri_R": (50.0, 30.0, 14.0),
    "Frontal_Inf_Orb_L": (-36.0, 31.0, -12.0), "Frontal_Inf_Orb_R": (41.0, 32.0, -12.0),
    "SupraMarginal_L": (-56.0, -34.0, 30.0), "SupraMarginal_R": (58.0, -32.0, 34.0),
    "Angular_L": (-44.0, -61.0, 36.0), "Angular_R": (46.0, -60.0, 39.0),
    "Temporal_Sup_L": (-53.0, -21.0, 7.0), "Temporal_Sup_R": (58.0, -22.0, 7.0),
}
IMPLIED_CORRELATION = 0.3


@dataclass
class ProbingSimulation:
    """params.yaml ``simulate_probing``."""

    seed: int = 0
    subjects: int = 2
    runs: int = 4
    words_per_run: int = 400
    fixations_per_run: int = 2
    resolution_mm: int = 6
    region_radius_mm: float = 10.0
    encoder: str = "minilm"
    layers: list[int] = field(default_factory=lambda: [2, 5])
    planted: list[list[str]] = field(default_factory=lambda: [
        ["simulated/layer2", "Frontal_Inf_Tri_L"], ["simulated/layer5", "Temporal_Sup_L"],
        ["simulated/state", "Angular_L"], ["length/word_length", "SupraMarginal_L"]])
    snr: list[float] = field(default_factory=lambda: [1.0, 1.5])
    noise_autocorrelation: float = 0.5
    drift_amplitude: float = 0.5

    def __post_init__(self) -> None:
        self.planted = [list(p) for p in self.planted]
        for pair in self.planted:
            if len(pair) != 2 or pair[1] not in PROBING_REGIONS:
                raise ConfigError(f"params.yaml: simulate_probing.planted: expected [feature, region] pairs with "
                                  f"regions among {list(PROBING_REGIONS)}, found {pair}")
        if self.subjects < 1 or self.runs < 3:
            raise ConfigError("params.yaml: simulate_probing: expected subjects >= 1 and runs >= 3 "
                              f"(leave-one-run-out inside leave-one-run-out), found {self.subjects}, {self.runs}")
        if len(self.snr) != 2 or not 0 < self.snr[0] <= self.snr[1]:
            raise ConfigError(f"params.yaml: simulate_probing.snr: expected [low, high], found {self.snr}")


def region_labels(coords: np.ndarray, affine: np.ndarray, radius_mm: float) -> np.ndarray:
    """Per voxel the 1-based number of the :data:`PROBING_REGIONS` sphere holding it (the first wins), else 0."""
    mni = np.asarray(coords) @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    label = np.zeros(len(mni), dtype=np.int64)
    for number, centre in enumerate(PROBING_REGIONS.values(), start=1):
        near = np.linalg.norm(mni - np.asarray(centre), axis=1) <= radius_mm
        label[near & (label == 0)] = number
    return label


def state_blocks(n: int, rng: np.random.Generator, shortest: int = 3, longest: int = 8) -> np.ndarray:
    """An on/off sequence of ``n`` segments in blocks of ``shortest`` to ``longest``."""
    out = np.zeros(n)
    position, on = 0, bool(rng.integers(2))
    while position < n:
        length = int(rng.integers(shortest, longest + 1))
        out[position: position + length] = float(on)
        position, on = position + length, not on
    return out


def simulate_probing(settings: ProbingSimulation, progress: bool = True
                     ) -> tuple[list[Recording], StoryFeatures, np.ndarray, dict]:
    """Simulate the experiment: recordings, story features, voxel labels and the truth (module docstring)."""
    from brainalign.data.simulated import (SimulationConfig, _ar1_noise, _drift, brain_geometry,
                                           convolved_features, experiment_layout, story_words)
    from brainalign.features.encoders import load_encoder
    from brainalign.probing.annotate import annotate_story
    from brainalign.probing.features import FeatureGroup, StoryFeatures
    from brainalign.probing.representations import segment_representations
    from brainalign.probing.segments import entry_segments, make_segments

    layout = SimulationConfig(subjects=settings.subjects, meg_subjects=0, runs=settings.runs,
                              words_per_run=settings.words_per_run, fixations_per_run=settings.fixations_per_run,
                              resolution_mm=settings.resolution_mm, seed=settings.seed)
    words, tr_times, tr_runs = experiment_layout(layout, story_words())
    rng = np.random.default_rng([settings.seed, 2024])
    empty = Recording(subject="layout", modality="fmri", responses=np.zeros((len(tr_times), 1)), times=tr_times,
                      runs=tr_runs, words=words)
    of_entry = entry_segments(empty)
    rows = np.unique(of_entry[of_entry >= 0])
    texts = [" ".join(words["word"].to_numpy()[of_entry == row]) for row in rows]
    encoder = load_encoder(settings.encoder)
    n_layers = encoder.n_layers
    bad = [layer for layer in settings.layers if not 1 <= layer <= n_layers]
    if bad:
        raise ConfigError(f"params.yaml: simulate_probing.layers: expected layers 1..{n_layers} of "
                          f"{settings.encoder}, found {bad}")
    pooled = segment_representations(encoder, texts, progress=progress)["embedding"]
    segment_values, names = [], []
    for layer in settings.layers:
        states = pooled[layer - 1].astype(np.float64)
        states = (states - states.mean(0)) / np.where(states.std(0) > 0, states.std(0), 1.0)
        value = states @ rng.standard_normal(states.shape[1])
        segment_values.append((value - value.mean()) / value.std())
        names.append(f"layer{layer}")
    segment_values.append(state_blocks(len(rows), rng))
    names.append("state")
    position = {int(row): i for i, row in enumerate(rows)}
    simulated = np.zeros((len(words), len(names)))
    for entry, row in enumerate(of_entry):
        if row >= 0:
            simulated[entry] = [column[position[int(row)]] for column in segment_values]
    annotated = annotate_story(words["word"].astype(str).tolist())
    features = StoryFeatures(groups=[*annotated.groups, FeatureGroup("simulated", names, simulated)],
                             source="<simulated story features>")
    known = features.names
    unknown = [f for f, _ in settings.planted if f not in known]
    if unknown:
        raise ConfigError(f"params.yaml: simulate_probing.planted: features {unknown} are not among the story's "
                          f"features ({len(known)}, e.g. {known[:6]})")

    story = words["word"].astype(str).to_numpy() != FIXATION
    matrix = features.matrix()
    planted_columns = [known.index(f) for f, _ in settings.planted]
    word_level = matrix[story][:, planted_columns]
    word_level = (word_level - word_level.mean(0)) / np.where(word_level.std(0) > 0, word_level.std(0), 1.0)
    courses = np.zeros((len(tr_times), 0))
    if planted_columns:
        courses = convolved_features(word_level, words["onset"].to_numpy()[story],
                                     words["duration"].to_numpy()[story], tr_times, layout.tr)
        courses = (courses - courses.mean(0)) / courses.std(0)
    geometry = brain_geometry(settings.resolution_mm, settings.region_radius_mm, "brain")
    labels = region_labels(geometry["coords"], geometry["affine"], settings.region_radius_mm)
    region_names = list(PROBING_REGIONS)
    recordings, snrs = [], {}
    n_voxels = len(labels)
    for s in range(1, settings.subjects + 1):
        responses = (_ar1_noise(rng, len(tr_times), n_voxels, settings.noise_autocorrelation)
                     + _drift(rng, tr_times, tr_runs, n_voxels, settings.drift_amplitude))
        snr = float(rng.uniform(*settings.snr))
        for k, (_, region) in enumerate(settings.planted):
            voxels = np.flatnonzero(labels == region_names.index(region) + 1)
            loading = np.abs(rng.normal(1.0, 0.3, voxels.size))
            responses[:, voxels] += math.sqrt(snr) * np.outer(courses[:, k], loading)
        snrs[str(s)] = snr
        recordings.append(Recording(subject=str(s), modality="fmri", responses=responses.astype(np.float32),
                                    times=tr_times, runs=tr_runs, words=words, coords=geometry["coords"],
                                    affine=geometry["affine"], volume_shape=geometry["shape"],
                                    source=f"<simulated participant {s}>"))
    segments = make_segments(recordings[0], matrix, known)
    centred = segments.values - segments.values.mean(0)
    norms = np.linalg.norm(centred, axis=0)
    correlation = (centred.T @ centred) / np.outer(np.where(norms > 0, norms, 1.0), np.where(norms > 0, norms, 1.0))
    implied = {}
    for region in region_names:
        mine = [known.index(f) for f, r in settings.planted if r == region]
        implied[region] = {f: float(np.abs(correlation[j, mine]).max()) if mine else 0.0 for j, f in enumerate(known)}
    truth = {"settings": asdict(settings), "planted": settings.planted,
             "layers": {f"simulated/layer{layer}": layer for layer in settings.layers}, "snr": snrs,
             "regions": region_names, "voxels_per_region": {n: int((labels == i + 1).sum())
                                                            for i, n in enumerate(region_names)},
             "implied_correlation": IMPLIED_CORRELATION, "max_abs_correlation_with_planted": implied}
    return recordings, features, labels, truth


def write_probing_simulation(raw: str | Path, truth_dir: str | Path, settings: ProbingSimulation,
                             progress: bool = True) -> dict:
    """Write ``raw/fmri/subject_N.mat`` (the release's layout), ``raw/story_features.mat`` and
    ``truth_dir/truth.json``; returns the truth."""
    from brainalign.data.hp_fmri import write_hp_fmri
    from brainalign.probing.features import write_story_features

    recordings, features, labels, truth = simulate_probing(settings, progress)
    with atomic_path(raw) as tmp:
        (tmp / "fmri").mkdir(parents=True)
        for recording in recordings:
            write_hp_fmri(recording, tmp / "fmri" / f"subject_{recording.subject}.mat", region_of_voxel=labels,
                          region_names=list(PROBING_REGIONS), voxel_size=float(settings.resolution_mm))
        write_story_features(tmp / "story_features.mat", features)
    Path(truth_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(truth_dir) / "truth.json", truth)
    return truth
