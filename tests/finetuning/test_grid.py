"""The model stages' grids, their transfer wiring and their files (``brainalign.finetuning.grid``), on the session's small
experiment (tests/conftest.py: 2 fMRI + 2 MEG participants, a two-layer BERT, held-out run 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_stage
from safetensors.torch import load_file

from brainalign.finetuning.grid import Grid, grid_from_params
from brainalign.finetuning.recipes import RECIPES, resolve
from brainalign.finetuning.recipes.participant_transfer import most_predictable
from brainalign.runs.store import TaskStore
from brainalign.config.params import load_params
from brainalign.data.prepared import read_prepared
from brainalign.finetuning.tasks import _blocks, _heads, build_model


@pytest.fixture(scope="module")
def ran(small_experiment, tmp_path_factory) -> dict:
    """meg_transfer, joint and participant_transfer run as DVC would run them, into a store of their own."""
    root = small_experiment
    store = tmp_path_factory.mktemp("grid-store")
    os.environ["BRAINALIGN_TASK_STORE"] = str(store)
    try:
        for stage in ("vanilla", "meg_transfer", "joint", "participant_transfer"):
            args = ("fmri",) if stage == "vanilla" else ()
            code, stderr = run_stage(root, "train", stage, *args)
            assert code == 0, f"{stage}: {stderr}"
    finally:
        os.environ.pop("BRAINALIGN_TASK_STORE", None)
    return {"root": root, "store": TaskStore(store)}


def _grid(root: Path) -> Grid:
    grid = grid_from_params(load_params(root / "params.yaml"))
    grid.prepared_root, grid.features_root = root / "data/prepared", root / "data/features"
    return grid


def test_meg_transfer_fmri_models_start_from_the_meg_encoder(ran):
    """Truth: the MEG task's saved encoder weights. Each fMRI task builds its model from them (not from the
    base encoder), and ends with an encoder of its own."""
    root, store = ran["root"], ran["store"]
    grid = _grid(root)
    settings = resolve(load_params(root / "params.yaml"), "meg_transfer")
    tasks = RECIPES.get("meg_transfer").plan(grid, settings, None).tasks
    meg = [t for t in tasks if t.source is None]
    fmri = [t for t in tasks if t.source is not None]
    assert len(meg) == 1 and len(fmri) == 2 and all(t.source == meg[0].id for t in fmri)
    assert {h["dataset"] for h in meg[0].heads} == {"meg"} and len(meg[0].heads) == 2
    meg_weights = load_file(store.directory(meg[0]) / "weights.safetensors")
    base = build_model(meg[0], _heads(meg[0], grid.prepared_root, grid.features_root), store)[0]
    model, is_base = build_model(fmri[0], _heads(fmri[0], grid.prepared_root, grid.features_root), store)
    assert not is_base
    for name, value in model.encoder.state_dict().items():
        assert torch.equal(value, meg_weights[f"encoder.{name}"]), name
    assert any(not torch.equal(v, base.encoder.state_dict()[k]) for k, v in model.encoder.state_dict().items())
    final = load_file(store.directory(fmri[0]) / "weights.safetensors")
    assert any(not torch.equal(final[f"encoder.{k}"], v) for k, v in model.encoder.state_dict().items())


def test_joint_blocks_align_every_participant(ran):
    """Truth: the prepared files. The joint task's fMRI block holds each fMRI participant's training rows at
    the (run, window) of the example, NaN where a participant has no such example; its MEG block likewise."""
    root = ran["root"]
    grid = _grid(root)
    task = RECIPES.get("joint").plan(grid, resolve(load_params(root / "params.yaml"), "joint"), None).tasks[0]
    heads = _heads(task, grid.prepared_root, grid.features_root)
    from brainalign.stimuli.tokens import read_tokens

    tokens = {d: read_tokens(grid.features_root / d / "tokens.npz") for d in ("fmri", "meg")}
    blocks = _blocks(heads, tokens, {"fmri": None, "meg": None})
    assert [b.modality for b in blocks] == ["fmri", "meg"]
    for block in blocks:
        for name, y in block.targets.items():
            dataset, subject = name.split(":")
            data = read_prepared(grid.prepared_root / dataset, subject)
            windows = np.load(grid.features_root / dataset / f"{subject}.windows.npy")
            fold = next(f for f in data.folds if f.heldout_run == 2)
            present = ~np.isnan(y).all(axis=1)
            assert present.sum() == len(fold.train)
            for i in fold.train[:25]:
                row = np.flatnonzero(block.windows == windows[i])
                assert len(row) == 1
                np.testing.assert_array_equal(y[row[0]], data.responses[i])
            assert 2 not in set(data.examples["run"].to_numpy()[fold.train])


def test_joint_and_transfer_predictions_for_every_participant(ran):
    """Every model writes held-out predictions of the right shape for every participant it predicts, with a
    card whose weights path resolves to a safetensors file holding what the card says."""
    root = ran["root"]
    expected = {"joint": {"fmri": ["1", "2"], "meg": ["M1", "M2"]}, "meg_transfer": {"fmri": ["1", "2"], "meg": ["M1", "M2"]},
                "participant_transfer": {"fmri": ["1", "2"]}}
    for model, datasets in expected.items():
        assert sorted(p.name for p in (root / "data/models" / model).iterdir()) == sorted([*datasets, "checkpoints"])
        for dataset, subjects in datasets.items():
            for subject in subjects:
                data = read_prepared(root / "data/prepared" / dataset, subject)
                fold = next(f for f in data.folds if f.heldout_run == 2)
                folder = root / "data/models" / model / dataset / subject / f"fold{fold.index}" / "seed0"
                predictions = np.load(folder / "predictions.npy")
                assert predictions.shape == (len(fold.test), data.responses.shape[1])
                assert np.isfinite(predictions).all() and predictions.std() > 0
                card = json.loads((folder / "card.json").read_text())
                assert card["heldout_run"] == 2 and card["seed"] == 0 and card["subject"] == subject
                weights = load_file(folder / card["weights"])
                assert f"heads.{dataset}:{subject}.linear.weight" in weights
                if card["encoder_trained"]:
                    assert card["encoder_weights"] and any(k.startswith("encoder.") for k in weights)
                else:
                    assert not any(k.startswith("encoder.") for k in weights)
    # Participant-transfer: participant 2's head sits on participant 1's frozen, fine-tuned encoder.
    folder = next((root / "data/models/participant_transfer/fmri/2").glob("fold*/seed0"))
    card = json.loads((folder / "card.json").read_text())
    assert not card["encoder_trained"] and card["encoder_weights"].startswith("checkpoints/participant_transfer")
    source = load_file(root / "data/models/participant_transfer" / card["encoder_weights"])
    assert "heads.fmri:1.linear.weight" in source and "encoder.embeddings.word_embeddings.weight" in source


def test_joint_logs_a_loss_per_head_weighted_by_examples(ran):
    """Truth: the seed code's weights by hand from the example counts: w_k = (1/n_k) / sum_j (1/n_j)."""
    root, store = ran["root"], ran["store"]
    grid = _grid(root)
    task = RECIPES.get("joint").plan(grid, resolve(load_params(root / "params.yaml"), "joint"), None).tasks[0]
    counts = {}
    for head in task.heads:
        data = read_prepared(grid.prepared_root / head["dataset"], head["subject"])
        counts[f"{head['dataset']}:{head['subject']}"] = len(next(f for f in data.folds if f.heldout_run == 2).train)
    from brainalign.finetuning.model import task_weights
    from brainalign.stimuli.tokens import read_tokens

    tokens = {d: read_tokens(grid.features_root / d / "tokens.npz") for d in ("fmri", "meg")}
    weights = task_weights(_blocks(_heads(task, grid.prepared_root, grid.features_root), tokens,
                                   {"fmri": None, "meg": None}))
    total = sum(1 / n for n in counts.values())
    for name, n in counts.items():
        assert weights[name] == pytest.approx((1 / n) / total)
    history = store.read_result(task)["history"]
    for record in history:
        per_head = [record[f"loss.{name}"] for name in counts]
        assert all(np.isfinite(per_head))


def test_most_predictable_ignores_the_held_out_run(tmp_path):
    """Hand-built: A's vanilla predictions are good on run 1 only, B's on runs 2-4 (noise elsewhere). Held
    out run 1, A's one good run may not count: B. Held out run 3: A has one good run of three, B two: B.
    Then B's runs 2 and 3 become noise: held out run 4, A's run 1 beats B's noise: A."""
    from brainalign.data.folds import leave_one_run_out
    from brainalign.data.prepared import PreparedSubject, write_prepared

    rng = np.random.default_rng(0)
    runs = np.repeat([1, 2, 3, 4], 30)
    subjects, predictions = [], {}
    for name, good_runs, quality in (("A", [1], 1.0), ("B", [2, 3, 4], 0.6)):
        responses = rng.standard_normal((len(runs), 20)).astype(np.float32)
        examples = pd.DataFrame({"row": np.arange(len(runs)), "time": np.arange(len(runs), dtype=float),
                                 "run": runs, "n_words": 20, "text": "x"})
        subject = PreparedSubject(subject=name, examples=examples, responses=responses, folds=leave_one_run_out(runs))
        subjects.append(subject)
        for fold in subject.folds:
            y = responses[fold.test]
            noise = rng.standard_normal(y.shape)
            good = fold.heldout_run in good_runs
            predictions[name, fold.index] = (quality * y + (0.5 if good else 50.0) * noise).astype(np.float32)
    write_prepared(subjects, tmp_path / "prepared")
    for (name, fold), p in predictions.items():
        folder = tmp_path / "vanilla" / name / f"fold{fold}" / "seed0"
        folder.mkdir(parents=True)
        np.save(folder / "predictions.npy", p)
    assert most_predictable(tmp_path / "vanilla", tmp_path / "prepared", heldout_run=1) == "B"
    assert most_predictable(tmp_path / "vanilla", tmp_path / "prepared", heldout_run=3) == "B"
    # Without B's good runs A would win: remove B's predictions on runs 2-4 except the held-out one.
    for fold in (1, 2):
        for p in (tmp_path / "vanilla" / "B" / f"fold{fold}" / "seed0").glob("*.npy"):
            np.save(p, rng.standard_normal(np.load(p).shape).astype(np.float32))
    assert most_predictable(tmp_path / "vanilla", tmp_path / "prepared", heldout_run=4) == "A"
