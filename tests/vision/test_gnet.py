"""GNet: readout, loss, training on a planted truth, one participant per batch, model selection, bitwise resume.

Tiny images (48-64 px) and cores a few maps wide keep every training to a second or two on one thread.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from brainalign.errors import ConfigError, InputError
from brainalign.vision import gnet
from brainalign.vision.evaluation import voxel_correlation
from brainalign.vision.gnet import (
    GNetSettings,
    Participant,
    Readout,
    gnet_loss,
    load_gnet,
    log_tanh,
    predict,
    save_gnet,
    train_gnet,
)
from brainalign.vision.networks import load_network

SIZE = 64


def smooth_images(rng: np.random.Generator, n: int, size: int = SIZE, grid: int = 5) -> np.ndarray:
    """Random colour fields smooth over ~size/grid pixels: local features vary from image to image."""
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, grid, grid))).float()
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return fine.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def planted_responses(images: np.ndarray, n_voxels: int, rng: np.random.Generator, noise: float = 0.5) -> np.ndarray:
    """A fixed random conv net (3 -> 4 maps, 5x5, stride 2, ReLU) read through one Gaussian pRF per voxel (random
    centre, width and map), z-scored, plus Gaussian noise of SD ``noise``."""
    generator = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    conv = torch.nn.Conv2d(3, 4, kernel_size=5, stride=2)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.2)
        conv.bias.zero_()
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        maps = torch.relu(conv(x)).numpy()
    h = maps.shape[-1]
    grid = np.arange(h)
    out = np.zeros((len(images), n_voxels))
    for v in range(n_voxels):
        cy, cx = rng.uniform(0.2 * h, 0.8 * h, size=2)
        sigma = rng.uniform(0.08, 0.2) * h
        g = np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / (2 * sigma**2))
        out[:, v] = (maps[:, rng.integers(4)] * g).sum(axis=(1, 2))
    out = (out - out.mean(0)) / out.std(0)
    return (out + noise * rng.standard_normal(out.shape)).astype(np.float32)


class Stop(Exception):
    pass


def stop_after(epoch: int):
    def callback(record: dict) -> None:
        if not record.get("replayed") and record["epoch"] == epoch:
            raise Stop
    return callback


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second", "replayed")} for r in history]


@pytest.fixture(scope="module")
def network():
    return load_network("alexnet", seed=0)


@pytest.fixture(scope="module")
def tiny():
    """Two participants on shared images: 120 and 100 trials of 4 and 3 voxels."""
    rng = np.random.default_rng(7)
    images = smooth_images(rng, 80, size=48)
    participants = [Participant("subj01", rng.integers(0, 80, 120), rng.standard_normal((120, 4)).astype(np.float32)),
                    Participant("subj02", rng.integers(0, 80, 100), rng.standard_normal((100, 3)).astype(np.float32))]
    settings = GNetSettings(image_size=48, widths=(6, 3), epochs=3, batch_size=25, progress=False, device="cpu")
    return images, participants, settings


# --- readout and loss -----------------------------------------------------------------------------------------

def test_pooling_fields_sum_to_one_and_readout_matches_slow_loops():
    """Truth: the definition, written as loops in float64: pooled_vcf = sum_s g_vs m_cs (g a softmax over the
    cells), phi = log(1 + |pooled|) tanh(pooled), prediction = sum_f w_vf phi_vf + b_v."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 4), (2, 2, 3)]
    readout = Readout(shapes, n_voxels=5, generator=generator)
    with torch.no_grad():
        for logits in readout.logits:
            logits.copy_(torch.randn(logits.shape, generator=generator) * 2)
    fields = readout.pooling_fields()
    for field, (_, h, w) in zip(fields, shapes):
        assert field.shape == (5, h * w)
        assert (field > 0).all()
        np.testing.assert_allclose(field.sum(dim=1).detach().numpy(), 1.0, atol=1e-6)
    maps = [torch.randn(2, c, h, w, generator=generator) for c, h, w in shapes]
    got = readout(maps).detach().numpy()
    g = [f.detach().double().numpy() for f in fields]
    m = [x.double().numpy().reshape(2, x.shape[1], -1) for x in maps]
    w = readout.weight.detach().double().numpy()
    b = readout.bias.detach().double().numpy()
    expected = np.zeros((2, 5))
    for n in range(2):
        for v in range(5):
            pooled = []
            for res in range(2):
                for c in range(m[res].shape[1]):
                    pooled.append(sum(g[res][v, s] * m[res][n, c, s] for s in range(m[res].shape[2])))
            expected[n, v] = sum(w[v, f] * math.log(1 + abs(x)) * math.tanh(x) for f, x in enumerate(pooled)) + b[v]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_readout_starts_with_uniform_fields_and_small_seeded_weights():
    """Truth: the seed's initialisation — pooling logits all equal (uniform fields), weights and biases
    N(0, 0.01^2) from the generator, so the same generator seed gives the same readout."""
    a = Readout([(4, 3, 3)], 200, torch.Generator().manual_seed(3))
    b = Readout([(4, 3, 3)], 200, torch.Generator().manual_seed(3))
    np.testing.assert_allclose(a.pooling_fields()[0].detach().numpy(), 1 / 9, rtol=1e-6)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert 0.008 < float(a.weight.detach().std()) < 0.012


def test_log_tanh_hand_values():
    """Truth: log(1 + |x|) tanh(x) by hand (ln 2 x tanh 1 = 0.693147 x 0.761594, ...)."""
    x = torch.tensor([0.0, 1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    expected = [0.0, 0.5278968, -1.0590925, 0.1873724, 1.3794388]
    np.testing.assert_allclose(log_tanh(x).numpy(), expected, atol=1e-6)


def test_loss_matches_a_slow_reference_with_clamped_detached_weights():
    """Truth: loops over voxels with np.corrcoef: c_v = min(max(r_v^2, 0.1), 1), loss = (sum_v c_v sum_n err^2 +
    l1 sum |W|) / V; the gradient treats c_v as a constant: d loss / d prediction = 2 c_v (p - t) / V."""
    rng = np.random.default_rng(1)
    target = rng.standard_normal((8, 3))
    prediction = np.stack([target[:, 0] + 0.1 * rng.standard_normal(8),  # r^2 near 1
                           rng.standard_normal(8),  # r^2 likely below 0.1
                           0.5 * target[:, 2] + rng.standard_normal(8)], axis=1)
    weight = rng.standard_normal((3, 4))
    c = []
    for v in range(3):
        r = np.corrcoef(prediction[:, v], target[:, v])[0, 1]
        c.append(min(max(r * r, 0.1), 1.0))
    assert min(c) == 0.1  # the clamp is exercised
    expected = (sum(c[v] * ((prediction[:, v] - target[:, v]) ** 2).sum() for v in range(3))
                + 0.1 * np.abs(weight).sum()) / 3
    p = torch.tensor(prediction, requires_grad=True)
    loss = gnet_loss(p, torch.tensor(target), torch.tensor(weight), l1=0.1)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-10)
    loss.backward()
    np.testing.assert_allclose(p.grad.numpy(), 2 * np.array(c) * (prediction - target) / 3, rtol=1e-10)


# --- inputs -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage, field", [
    (lambda ps, im: (ps[:1] + [Participant("subj02", ps[1].image_index[:-1], ps[1].responses)], im), "responses"),
    (lambda ps, im: ([Participant("subj01", np.append(ps[0].image_index[:-1], 80), ps[0].responses)] + ps[1:], im),
     "image_index"),
    (lambda ps, im: ([Participant("subj01", ps[0].image_index,
                                  np.where(np.arange(4) == 2, np.nan, ps[0].responses))] + ps[1:], im), "responses"),
    (lambda ps, im: ([Participant("subj01", ps[0].image_index.astype(float), ps[0].responses)] + ps[1:], im),
     "image_index"),
    (lambda ps, im: ([ps[0], Participant("subj01", ps[1].image_index, ps[1].responses)], im), "name"),
    (lambda ps, im: (ps, im.astype(np.float32)), "array"),
    (lambda ps, im: ([Participant("subj01", ps[0].image_index[:3], ps[0].responses[:3])], im), "image_index"),
])
def test_bad_inputs_fail_with_one_message_naming_the_field(tiny, network, damage, field):
    images, participants, settings = tiny
    bad_participants, bad_images = damage(list(participants), images)
    with pytest.raises(InputError) as caught:
        train_gnet(bad_images, bad_participants, settings, network)
    assert caught.value.field == field


def test_bad_settings_and_missing_prefilter_are_config_errors(tiny):
    images, participants, settings = tiny
    for bad in ({"image_size": 30}, {"holdout": 1.0}, {"widths": (0, 4)}, {"batch_size": 0}, {"device": "gpu"},
                {"learning_rate": 0.0}, {"dropout": 1.0}):
        with pytest.raises(ConfigError):
            GNetSettings(**bad)
    with pytest.raises(ConfigError, match="either prefilter"):
        train_gnet(images, participants, settings)


# --- training -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted(network):
    """Two participants with images of their own and 12 and 10 voxels of a planted pRF model: 360 training
    trials each (the last 36 held out for selection) and 120 validation images never trained on. GNet is trained
    on them, left untrained (0 epochs), and trained on responses shuffled across images (the control)."""
    rng = np.random.default_rng(2024)
    images = smooth_images(rng, 960)
    participants, validation = [], []
    for p, n_voxels in enumerate([12, 10]):
        rows = np.arange(480 * p, 480 * (p + 1))
        responses = planted_responses(images[rows], n_voxels, rng)
        participants.append(Participant(f"subj0{p + 1}", rows[:360], responses[:360]))
        validation.append(Participant(f"subj0{p + 1}", rows[360:], responses[360:]))
    settings = GNetSettings(image_size=SIZE, widths=(8, 4), epochs=8, batch_size=30, learning_rate=1e-2,
                            progress=False, device="cpu")
    trained = train_gnet(images, participants, settings, network)
    untrained = train_gnet(images, participants, replace(settings, epochs=0), network)
    shuffled = [Participant(p.name, p.image_index, p.responses[rng.permutation(len(p.responses))])
                for p in participants]
    control = train_gnet(images, shuffled, settings, network)
    return images, participants, validation, shuffled, trained, untrained, control


def median_r(result, images, participants, held_out: bool = False) -> dict[str, float]:
    """Median r over each participant's voxels of its trials (only the held-out last 10 %, if ``held_out``),
    recomputed through predict() (not the training loop's cache)."""
    out = {}
    for p in participants:
        rows = slice(-math.ceil(0.1 * len(p.image_index)), None) if held_out else slice(None)
        predictions = predict(result.model, images[p.image_index[rows]], p.name)
        out[p.name] = float(np.median(voxel_correlation(p.responses[rows], predictions)))
    return out


def test_trained_gnet_predicts_the_planted_truth_far_better_than_controls(planted):
    """Truth: the planted pRF model, on validation images no model was trained on. Trained, GNet's r is high (the
    noise allows about 0.89); untrained, and trained on responses shuffled across images, it is far lower. (A
    control's median r is not 0 exactly: a participant's voxels share image-wide variation, so one arbitrary
    predictor correlates with most of them alike; measured about -0.2.)"""
    images, _, validation, _, trained, untrained, control = planted
    got = median_r(trained, images, validation)
    base = median_r(untrained, images, validation)
    shuffled = median_r(control, images, validation)
    for name in got:
        assert got[name] > 0.6, got
        assert got[name] > base[name] + 0.4, (got, base)
        assert got[name] > shuffled[name] + 0.4, (got, shuffled)
        assert base[name] < 0.3 and shuffled[name] < 0.3, (base, shuffled)
    assert untrained.best_epoch == 0 and untrained.history == []
    assert trained.provenance == "alexnet conv1-conv2, untrained (seed 0)"


def test_model_selection_returns_the_best_held_out_epoch(planted):
    """Truth: the history's held-out scores (the mean over participants of the median r) pick the epoch, and the
    returned weights reproduce that epoch's scores when recomputed through predict() on the held-out trials."""
    images, participants, _, shuffled, trained, _, control = planted
    for result, trials in ((trained, participants), (control, shuffled)):
        scores = [r["holdout_r"] for r in result.history]
        assert len(scores) == 8
        assert result.best_epoch == int(np.argmax(scores)) + 1
        recomputed = median_r(result, images, trials, held_out=True)
        assert np.mean(list(recomputed.values())) == pytest.approx(scores[result.best_epoch - 1], abs=1e-4)
        for name, value in recomputed.items():
            assert value == pytest.approx(result.history[result.best_epoch - 1][f"holdout_r.{name}"], abs=1e-4)


def test_model_selection_keeps_an_earlier_epoch_when_it_scored_better(tiny, network):
    """Truth: the history. On pure-noise responses the held-out score of this seeded run peaks at epoch 1 of 3;
    the returned weights are epoch 1's: their held-out medians, recomputed through predict(), are epoch 1's and
    not the last epoch's."""
    images, participants, settings = tiny
    result = train_gnet(images, participants, settings, network)
    scores = [r["holdout_r"] for r in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1 == 1
    recomputed = median_r(result, images, participants, held_out=True)
    for name, value in recomputed.items():
        assert value == pytest.approx(result.history[0][f"holdout_r.{name}"], abs=1e-4)
        assert value != pytest.approx(result.history[-1][f"holdout_r.{name}"], abs=1e-3)


def test_every_batch_comes_from_one_participants_training_trials(tiny, network, monkeypatch):
    """Truth: the trials themselves. Each loss call's targets are rows of one participant's training trials
    (never held-out ones), its prediction has that participant's voxel count, each training trial appears once
    an epoch in near-equal batches of at most batch_size, and the participants' batches interleave."""
    images, participants, settings = tiny
    calls = []

    def recording(prediction, target, weight, l1):
        calls.append((prediction.shape[1], target.detach().numpy().copy()))
        return gnet_loss(prediction, target, weight, l1)

    monkeypatch.setattr(gnet, "gnet_loss", recording)
    settings = replace(settings, epochs=2)
    train_gnet(images, participants, settings, network)
    where = {}
    for p in participants:
        n_train = len(p.responses) - math.ceil(0.1 * len(p.responses))
        for trial, row in enumerate(p.responses):
            where[row.tobytes()] = (p.name, trial, trial < n_train)
    n_batches = sum(math.ceil((len(p.responses) - math.ceil(0.1 * len(p.responses))) / 25) for p in participants)
    assert len(calls) == 2 * n_batches
    voxels = {p.name: p.responses.shape[1] for p in participants}
    for epoch in range(2):
        seen = {p.name: [] for p in participants}
        sequence = []
        for n_voxels, target in calls[epoch * n_batches:(epoch + 1) * n_batches]:
            owners = [where[row.tobytes()] for row in target]
            names = {name for name, _, _ in owners}
            assert len(names) == 1
            name = names.pop()
            assert voxels[name] == n_voxels
            assert all(is_training for _, _, is_training in owners)
            assert 20 <= len(target) <= 25  # 108 trials in 5 batches, 90 in 4
            seen[name].extend(trial for _, trial, _ in owners)
            sequence.append(name)
        for p in participants:
            n_train = len(p.responses) - math.ceil(0.1 * len(p.responses))
            assert sorted(seen[p.name]) == list(range(n_train))
        switches = sum(a != b for a, b in zip(sequence, sequence[1:]))
        assert switches >= 2, sequence


def test_resume_after_interruption_is_bitwise_identical_and_seeded(tiny, network, tmp_path):
    """Truth: an uninterrupted run. Stopped by on_epoch after epoch 2 of 3 and resumed by a fresh call, the run
    ends with every checkpoint tensor (model, best weights, Adam, generators) and the returned weights equal bit
    for bit, the same history, and the finished epochs replayed. The same seed without checkpoint gives the same
    weights; another seed other weights; a checkpoint of another seed is refused."""
    images, participants, settings = tiny
    reference = train_gnet(images, participants, settings, network, checkpoint=tmp_path / "a.safetensors")
    with pytest.raises(Stop):
        train_gnet(images, participants, settings, network, checkpoint=tmp_path / "b.safetensors",
                   on_epoch=stop_after(2))
    seen = []
    resumed = train_gnet(images, participants, settings, network, checkpoint=tmp_path / "b.safetensors",
                         on_epoch=seen.append)
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert set(a) == set(b) and any(k.startswith("optimizer.") for k in a) and any(k.startswith("best.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert without_timing(resumed.history) == without_timing(reference.history)
    assert resumed.best_epoch == reference.best_epoch
    assert [r["epoch"] for r in seen] == [1, 2, 3] and [r.get("replayed", False) for r in seen] == [True, True, False]
    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as handle:
        assert len(json.loads(handle.metadata()["state"])["history"]) == 3

    again = train_gnet(images, participants, settings, network)
    other = train_gnet(images, participants, replace(settings, seed=1), network)
    state, other_state = reference.model.state_dict(), other.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in again.model.state_dict().items())
    assert not torch.equal(state["core.stem.conv.weight"], other_state["core.stem.conv.weight"])
    with pytest.raises(InputError, match="fingerprint"):
        train_gnet(images, participants, replace(settings, seed=1), network,
                   checkpoint=tmp_path / "a.safetensors")


def test_uncached_front_end_trains_as_the_cached_one(tiny, network):
    """Truth: the cached run. With no room for a cache the pre-filter runs per batch: the same numbers up to
    float rounding."""
    images, participants, settings = tiny
    cached = train_gnet(images, participants, settings, network)
    uncached = train_gnet(images, participants, replace(settings, cache_gb=0.0), network)
    for a, b in zip(cached.history, uncached.history):
        assert b["holdout_r"] == pytest.approx(a["holdout_r"], abs=1e-4)
    np.testing.assert_allclose(predict(uncached.model, images[:10], "subj01"),
                               predict(cached.model, images[:10], "subj01"), atol=1e-4)


def test_save_and_load_round_trip(tiny, network, tmp_path):
    """Truth: the saved model — the loaded one predicts the same numbers bit for bit, with the same readouts,
    settings, history and provenance; a pickled file is refused."""
    images, participants, settings = tiny
    result = train_gnet(images, participants, replace(settings, epochs=1), network)
    save_gnet(tmp_path / "gnet.safetensors", result)
    loaded = load_gnet(tmp_path / "gnet.safetensors")
    for p in participants:
        assert np.array_equal(predict(loaded.model, images, p.name), predict(result.model, images, p.name))
    assert loaded.model.readout_names == ["subj01", "subj02"]
    assert loaded.model.settings == result.model.settings
    assert loaded.history == result.history and loaded.best_epoch == 1 and loaded.provenance == result.provenance
    (tmp_path / "gnet.pt").write_bytes(b"not read")
    with pytest.raises(InputError):
        load_gnet(tmp_path / "gnet.pt")
    with pytest.raises(InputError, match="readout"):
        predict(loaded.model, images[:2], "subj03")


def test_field_learning_rate_moves_the_logits_by_their_own_step_and_resumes_bitwise(tiny, network, tmp_path):
    """Truth, by hand: Adam's first step moves every parameter with a gradient by its group's step size times
    the gradient's sign (m / sqrt(v) = g / |g| after one step, bias-corrected). One batch (batch_size = all the
    training trials, so exactly one step per readout), dropout 0, with ``field_learning_rate`` 0.05: a readout's
    logits move by 0.05, its weights by 1e-3. None is one parameter group (the paper's); a run with the field step
    size resumes bit for bit."""
    images, participants, settings = tiny
    one = [participants[0]]
    base = replace(settings, epochs=1, batch_size=1000, dropout=0.0, field_learning_rate=0.05)
    start = train_gnet(images, one, replace(base, epochs=0), network).model.readouts[0]
    after = train_gnet(images, one, base, network).model.readouts[0]
    moved = (after.logits[0] - start.logits[0]).abs()
    assert torch.allclose(moved[moved > 0], torch.tensor(0.05), rtol=1e-3), moved.max()
    assert (moved > 0).float().mean() > 0.9
    step = (after.weight - start.weight).abs()
    assert torch.allclose(step[step > 0], torch.tensor(1e-3), rtol=1e-2)
    model = train_gnet(images, one, replace(base, epochs=0), network).model
    assert len(gnet._parameter_groups(model, replace(base, field_learning_rate=None))) == \
        len([q for q in model.parameters() if q.requires_grad])
    groups = gnet._parameter_groups(model, base)
    assert [g.get("lr") for g in groups] == [None, 0.05] and len(groups[1]["params"]) == len(model.readouts[0].logits)

    flr = replace(settings, field_learning_rate=0.05)
    reference = train_gnet(images, participants, flr, network, checkpoint=tmp_path / "a.safetensors")
    with pytest.raises(Stop):
        train_gnet(images, participants, flr, network, checkpoint=tmp_path / "b.safetensors", on_epoch=stop_after(2))
    resumed = train_gnet(images, participants, flr, network, checkpoint=tmp_path / "b.safetensors")
    for key, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    with pytest.raises(InputError, match="fingerprint"):
        train_gnet(images, participants, settings, network, checkpoint=tmp_path / "a.safetensors")
    with pytest.raises(ConfigError, match="field_learning_rate"):
        GNetSettings(field_learning_rate=0.0)
