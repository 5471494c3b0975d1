"""The decoding experiment against the simulation's truth.

The simulated images are a noisy linear function of the *pretrained* encoder's sentence encodings
(:mod:`brainalign.decoding.simulate`). So: the pretrained encoder decodes far below chance; a trajectory that
moves the encoder's sentence space away from the pretrained one (scrambled-word masked LM at a high learning
rate, measured here by linear CKA to the pretrained encodings) decodes monotonically worse on average over
participants; and the files round-trip through the Pereira loader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from experiments import tiny_encoder

from brainalign.benchmarks.simulate import pereira_texts
from brainalign.data.pereira import read_pereira2018
from brainalign.decoding.decoder import chance_mar, decode
from brainalign.decoding.encodings import checkpoint_encoder, sentence_encodings
from brainalign.decoding.objectives import TrajectorySettings
from brainalign.decoding.simulate import DecodingSimulation, simulate_decoding_data
from brainalign.decoding.trajectory import build_objectives, plan_run, train_trajectory
from brainalign.features.encoders import load_encoder


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019), written out."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    return float(np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoding")
    encoder = str(tiny_encoder(root / "bert", hidden=48, layers=2, seed=1))
    settings = DecodingSimulation(participants=3, voxels=300, true_r=(0.3, 0.7), encoder=encoder)
    truth = simulate_decoding_data(root / "raw", root / "truth", settings)
    return root, encoder, settings, truth


def test_simulated_files_read_back_with_their_truth(simulated):
    root, encoder, settings, truth = simulated
    data = read_pereira2018(root / "raw", atlases=None)
    assert data.subjects == sorted(["P01", "M02", "M04"]) and data.n_presentations == 384
    assert data.responses.shape == (384, 3 * 300)
    sentences = data.stimuli["text"].tolist()
    assert sentences == pereira_texts()[0]
    # the truth's encodings are the pretrained encoder's [CLS] states of exactly these sentences
    again = sentence_encodings(checkpoint_encoder(encoder, None), sentences)
    np.testing.assert_allclose(np.load(root / "truth" / "encodings.npy"), again, atol=1e-5)
    assert truth["representation"] == "pretrained" and set(truth["median_true_r"]) == set(data.subjects)


def test_decoding_gets_worse_as_a_trajectory_moves_away_from_the_pretrained_space(simulated, tmp_path):
    root, encoder, _, _ = simulated
    data = read_pereira2018(root / "raw", atlases=None)
    sentences = data.stimuli["text"].tolist()
    settings = TrajectorySettings(steps=30, checkpoint_every=10, batch_size=16, learning_rate=2e-3, max_length=64)
    objectives = build_objectives("lm_scrambled", {"objective": "lm_scrambled", "corpus": "story"},
                                  load_encoder(encoder).tokenizer, settings, [0])
    run = plan_run("lm_scrambled", objectives[0], encoder, settings, 0)
    train_trajectory(run, objectives[0], tmp_path, progress=False)
    encodings = [np.load(root / "truth" / "encodings.npy")] + [
        sentence_encodings(checkpoint_encoder(encoder, str(tmp_path / f"step-{s:04d}.safetensors")), sentences)
        for s in (10, 20, 30)]
    cka = [linear_cka(encodings[0], e) for e in encodings]
    assert cka[0] == pytest.approx(1.0)
    assert all(b < a for a, b in zip(cka, cka[1:])), f"the trajectory did not move away monotonically: {cka}"
    mar = np.mean([[d.mar for d in decode(data.responses[:, data.subject_mask(s)], encodings)]
                   for s in data.subjects], axis=0)
    chance = chance_mar(384)
    assert mar[0] < 0.35 * chance, f"pretrained MAR {mar[0]:.1f} is not far below chance {chance}"
    assert all(b > a for a, b in zip(mar, mar[1:])), f"MAR did not rise along the trajectory: {mar}"


def test_real_pereira_sentences_through_the_simulation_and_the_decoder(tmp_path):
    """The real experiment's 384 sentences (read in place) in the simulated images: they read back in order
    through the release loader, and decode far below chance into the encoder the images follow, at chance
    into a random embedding of the same width."""
    from experiments import real_pereira_texts

    sentences, passages, topics = real_pereira_texts()
    encoder = str(tiny_encoder(tmp_path / "bert", hidden=48, layers=2, seed=2))
    settings = DecodingSimulation(participants=2, voxels=250, true_r=(0.3, 0.7), encoder=encoder)
    simulate_decoding_data(tmp_path / "raw", tmp_path / "truth", settings,
                           texts=(sentences, passages, topics))
    data = read_pereira2018(tmp_path / "raw", atlases=None)
    assert data.stimuli["text"].tolist() == sentences
    truth = np.load(tmp_path / "truth" / "encodings.npy")
    noise = np.random.default_rng(0).standard_normal(truth.shape)
    for subject in data.subjects:
        own, random = decode(data.responses[:, data.subject_mask(subject)], [truth, noise],
                             groups=data.groups)  # passages kept whole
        assert own.mar < 0.35 * chance_mar(384) and own.pairwise_accuracy > 0.85
        assert abs(random.mar - chance_mar(384)) < 20 and abs(random.pairwise_accuracy - 0.5) < 0.06
