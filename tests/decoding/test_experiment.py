"""The decode stage's experiment: cached encodings equal a fresh load of each checkpoint, and the tables agree
with the decoder run by hand."""

from __future__ import annotations

import json

import numpy as np
from experiments import tiny_encoder

from brainalign.data.pereira import read_pereira2018
from brainalign.decoding.decoder import decode
from brainalign.decoding.encodings import checkpoint_encoder, sentence_encodings
from brainalign.decoding.experiment import (decode_participants, decoding_tables, encode_checkpoints,
                                            trajectory_checkpoints)
from brainalign.decoding.objectives import TrajectorySettings
from brainalign.decoding.settings import DecoderSettings
from brainalign.decoding.simulate import DecodingSimulation, simulate_decoding_data
from brainalign.decoding.trajectory import build_objectives, export_trajectory, plan_run, trainer
from brainalign.features.encoders import load_encoder
from brainalign.runs.executors import LocalExecutor
from brainalign.runs.store import TaskStore


def test_experiment_tables_match_the_decoder_run_by_hand(tmp_path):
    encoder = str(tiny_encoder(tmp_path / "bert", hidden=32, layers=2))
    simulate_decoding_data(tmp_path / "raw", tmp_path / "truth",
                           DecodingSimulation(participants=2, voxels=120, encoder=encoder))
    data = read_pereira2018(tmp_path / "raw", atlases=None)
    store = TaskStore(tmp_path / "store")
    settings = TrajectorySettings(steps=4, checkpoint_every=2, batch_size=4, learning_rate=1e-3, max_length=48)
    objectives = build_objectives("lm", {"objective": "lm", "corpus": "story"}, load_encoder(encoder).tokenizer,
                                  settings, [0, 1])
    runs = [plan_run("lm", objectives[s], encoder, settings, s) for s in (0, 1)]
    LocalExecutor(progress=False).run(runs, store, trainer(objectives, progress=False))
    export_trajectory(runs, store.root, tmp_path / "trajectories" / "lm")
    checkpoints = trajectory_checkpoints(tmp_path / "trajectories", ["lm"])
    assert [(c.seed, c.step) for c in checkpoints] == [(-1, 0), (0, 2), (0, 4), (1, 2), (1, 4)]
    sentences = data.stimuli["text"].tolist()
    tasks, encodings = encode_checkpoints(checkpoints, encoder, sentences, -1, "cls", store, progress=False)
    # the one encoder with swapped weights gives what a fresh load of each checkpoint gives
    for checkpoint, values in zip(checkpoints, encodings):
        fresh = sentence_encodings(checkpoint_encoder(encoder, checkpoint.weights), sentences)
        np.testing.assert_allclose(values, fresh, atol=1e-5)
    assert not np.allclose(encodings[0], encodings[2], atol=1e-3)  # the trajectory moved the encoder
    decoder = DecoderSettings(n_components=32)
    decoded = decode_participants(data, encodings, tasks, decoder, store, progress=False)
    tables = decoding_tables(data, checkpoints, encodings, decoded, ["lm"], decoder)
    for subject in data.subjects:
        by_hand = decode(data.responses[:, data.subject_mask(subject)], encodings, n_components=32)
        rows = tables.scores[tables.scores["participant"] == subject].set_index(["seed", "step"])["mar"]
        assert rows.loc[(0, 0)] == rows.loc[(1, 0)] == by_hand[0].mar  # step 0: the pretrained encoder
        assert rows.loc[(1, 4)] == by_hand[4].mar
        ranks = tables.ranks[(tables.ranks["participant"] == subject) & (tables.ranks["seed"] == 0)
                             & (tables.ranks["step"] == 2)]["rank"].to_numpy()
        np.testing.assert_array_equal(ranks, by_hand[1].ranks)
    assert set(tables.rsa.index) == {"pretrained", "lm/seed0", "lm/seed1", *(f"brain/{s}" for s in data.subjects)}
    assert tables.summary["pretrained_mar"] == np.mean([r["mar"][0] for r in decoded.values()])
    assert list(tables.tests["task"]) == ["lm"]
    # a second run reuses every stored task
    again, _ = encode_checkpoints(checkpoints, encoder, sentences, -1, "cls", store, progress=False)
    assert [t.key for t in again] == [t.key for t in tasks]
    assert all(json.loads((store.directory(t) / "result.json").read_text()) for t in again)
