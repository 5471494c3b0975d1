"""A listening experiment in the own format: irregular word onsets, a TR of 1.5 s, one long session cut into
blocks labelled as runs, a handful of named regions; the encoding model finds the region that was planted."""

import numpy as np
import pandas as pd

from brainalign.data.own import read_own, write_own
from brainalign.data.prepared import prepare_recording
from brainalign.data.recording import Recording
from brainalign.encoding.experiment import EncodingSettings, encode_layers, low_level_spaces
from brainalign.ridge import backend

TR = 1.5
REGIONS = ["IFG", "pSTS", "ATL", "V1", "M1"]


def listening_recording(seed=0) -> Recording:
    """One session of 4 blocks x 200 TRs on one clock; words at irregular (gamma) intervals. Region pSTS
    responds to the letters heard 3 TRs earlier (plus noise); the others are noise."""
    rng = np.random.default_rng(seed)
    n_per_block, blocks = 200, 4
    times = np.arange(n_per_block * blocks) * TR
    runs = np.repeat(np.arange(1, blocks + 1), n_per_block)
    onsets = np.cumsum(rng.gamma(2.0, 0.2, 3000))
    onsets = onsets[onsets < times[-1]]
    vocabulary = ["a", "the", "harbour", "on", "extraordinary", "it", "was", "remembered", "boats", "of"]
    words = [vocabulary[i] for i in rng.integers(0, len(vocabulary), len(onsets))]
    letters = np.zeros(len(times))
    for word, onset in zip(words, onsets):
        letters[int(onset // TR) + 1 if onset % TR else int(onset // TR)] += len(word)  # the TR after the word
    signal = np.roll(letters, 3)
    signal[:3] = 0
    responses = rng.standard_normal((len(times), len(REGIONS)))
    responses[:, 1] += 3 * (signal - signal.mean()) / signal.std()
    word_table = pd.DataFrame({"word": words, "onset": onsets, "duration": 0.2,
                               "run": np.minimum(onsets // (n_per_block * TR), blocks - 1).astype(int) + 1})
    return Recording(subject="1", modality="fmri", responses=responses.astype(np.float32), times=times, runs=runs,
                     words=word_table, channel_names=REGIONS)


def test_listening_regions_are_encoded_like_any_recording(tmp_path):
    write_own(listening_recording(), tmp_path / "1")
    recording = read_own(tmp_path / "1")  # through the own format, as a user's files would come
    subject = prepare_recording(recording, drop_start=10, drop_end=5, span=6.0, min_lead=1.5)
    settings = EncodingSettings(n_draws=50, measures=("pearson_r",), delays=(1, 2, 3, 4, 5))
    with backend("cpu"):
        scores, significance = encode_layers(subject, low_level_spaces(subject, ["word_length"])["word_length"],
                                             "word_length", settings, progress=False, feature_space="low_level")
    r = scores.groupby("voxel")["value"].mean().to_numpy()
    assert r[1] > 0.6 and np.abs(np.delete(r, 1)).max() < 0.1
    assert significance["significant"].tolist() == [False, True, False, False, False]


def test_banded_ridge_credits_the_planted_space(tmp_path):
    from brainalign.features.layers import random_embedding

    recording = listening_recording()
    subject = prepare_recording(recording, drop_start=10, drop_end=5, span=6.0, min_lead=1.5)
    words = subject.words["word"].tolist()
    unrelated = random_embedding(words, 8)[None]  # one "layer" of a model that knows nothing of the signal
    settings = EncodingSettings(n_draws=50, measures=("pearson_r",), delays=(1, 2, 3, 4, 5), banded=("word_length",))
    with backend("cpu"):
        scores, _ = encode_layers(subject, unrelated, "random-8", settings, progress=False)
    split = scores[scores["measure"] == "r2_split"].groupby(["feature_space", "voxel"])["value"].mean().unstack()
    assert split.loc["word_length", 1] > 0.3 and abs(split.loc["random-8", 1]) < 0.05
    assert set(scores["model"]) == {"random-8", "word_length+random-8"}
