"""Tests of the optimisation helpers and the linear head (``brainalign.training``, ``brainalign.heads``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from brainalign.heads import LinearHead
from brainalign.training import (Schedule, decay_groups, fit_head, make_optimizer, masked_mse, predict,
                                 warmup_linear)


@pytest.mark.parametrize("step,expected", [(0, 0.0), (1, 0.1), (5, 0.5), (10, 1.0), (55, 0.5), (91, 0.1),
                                           (100, 0.0), (120, 0.0)])
def test_warmup_linear_hand_values(step, expected):
    """Truth: by hand for 100 steps, 10 % warm-up (10 steps): rise step/10, then fall (100 - step)/90."""
    assert warmup_linear(step, 100, 0.1) == pytest.approx(expected, abs=1e-12)


def test_warmup_linear_without_warmup():
    """Truth: by hand — no warm-up starts at 1 and falls linearly to 0 at the last step."""
    assert warmup_linear(0, 40, 0.0) == 1.0
    assert warmup_linear(10, 40, 0.0) == pytest.approx(0.75)
    assert warmup_linear(40, 40, 0.0) == 0.0


def test_masked_mse_hand_worked():
    """Truth: by hand: pred [[1,2],[3,4]], target [[1,nan],[5,nan]] -> ((1-1)^2 + (3-5)^2) / 2 = 2;
    the gradient is 2 (p - y) / 2 on present entries ([[0, 0], [-2, 0]]) and 0 (not NaN) elsewhere."""
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = torch.tensor([[1.0, float("nan")], [5.0, float("nan")]])
    loss = masked_mse(pred, target)
    assert loss.item() == 2.0
    loss.backward()
    torch.testing.assert_close(pred.grad, torch.tensor([[0.0, 0.0], [-2.0, 0.0]]))


def test_masked_mse_all_nan_and_no_nan():
    """Truth: all-NaN targets give 0 (documented); without NaN it is the plain mean of squares by hand."""
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = masked_mse(pred, torch.full((2, 2), float("nan")))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    # (1-0)^2 + (2-0)^2 + (3-1)^2 + (4-1)^2 = 1 + 4 + 4 + 9 = 18, / 4 = 4.5
    assert masked_mse(pred, torch.tensor([[0.0, 0.0], [1.0, 1.0]])).item() == 4.5


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.frozen = nn.Linear(4, 2)
        self.frozen.weight.requires_grad_(False)

    def forward(self, x):
        return self.frozen(self.norm(self.linear(x)))


def ids(params):
    return {id(p) for p in params}


def test_decay_groups_split():
    """Truth: by hand — only Linear weights decay; biases and LayerNorm parameters do not; frozen ones are
    left out."""
    model = Tiny()
    decay, no_decay = decay_groups(model, weight_decay=0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert ids(decay["params"]) == {id(model.linear.weight)}
    assert ids(no_decay["params"]) == {id(model.linear.bias), id(model.norm.weight), id(model.norm.bias),
                                       id(model.frozen.bias)}
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 4


def test_decay_groups_decay_all():
    """Truth: by hand — decay_all puts every trainable parameter in the decay group."""
    model = Tiny()
    decay, no_decay = decay_groups(model, weight_decay=0.01, decay_all=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert ids(decay["params"]) == ids(trainable) and len(decay["params"]) == 5
    assert no_decay["params"] == []


def test_decay_groups_hf_style_layernorm_name():
    """Truth: by hand — a submodule named ``LayerNorm`` (Hugging Face naming) is exempt even if it is not
    an ``nn.LayerNorm`` instance."""

    class Norm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4))

    model = nn.Module()
    model.dense = nn.Linear(4, 4)
    model.LayerNorm = Norm()
    decay, no_decay = decay_groups(model, weight_decay=0.01)
    assert ids(decay["params"]) == {id(model.dense.weight)}
    assert ids(no_decay["params"]) == {id(model.dense.bias), id(model.LayerNorm.weight)}


def test_make_optimizer_schedule_hand_values():
    """Truth: lr after n scheduler steps = learning_rate * hand-worked multiplier (100 steps, 10 % warm-up)."""
    model = Tiny()
    schedule = Schedule(learning_rate=0.2, warmup_fraction=0.1, weight_decay=0.03)
    optimizer, scheduler = make_optimizer(model, schedule, total_steps=100)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.03, 0.0]
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999) and optimizer.param_groups[0]["eps"] == 1e-8
    expected = {0: 0.0, 3: 0.06, 5: 0.1, 10: 0.2, 55: 0.1, 82: 0.04, 100: 0.0}
    seen = {}
    for n in range(101):
        if n in expected:
            seen[n] = [g["lr"] for g in optimizer.param_groups]
        optimizer.step()
        scheduler.step()
    for n, lr in expected.items():
        assert seen[n] == pytest.approx([lr, lr], abs=1e-12), n


def planted_problem(seed=0, n_train=400, n_test=200, width=16, n_out=4, noise=0.05):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((width, n_out))
    b = rng.standard_normal(n_out)
    x_train = rng.standard_normal((n_train, width)).astype(np.float32)
    x_test = rng.standard_normal((n_test, width)).astype(np.float32)
    y_train = (x_train @ w + b + noise * rng.standard_normal((n_train, n_out))).astype(np.float32)
    y_test = (x_test @ w + b + noise * rng.standard_normal((n_test, n_out))).astype(np.float32)
    return x_train, y_train, x_test, y_test, w, b


@pytest.fixture(scope="module")
def planted_fit():
    x_train, y_train, x_test, y_test, w, b = planted_problem()
    schedule = Schedule(epochs=30, learning_rate=1e-2)
    head, history = fit_head(x_train, y_train, schedule, seed=3, val_x=x_test, val_y=y_test, init_std=0.0)
    return head, history, (x_train, y_train, x_test, y_test, w, b), schedule


def test_fit_head_recovers_planted_map(planted_fit):
    """Truth: planted linear map Y = X W + b + small noise; held-out predictions correlate > 0.95 per output
    and the learned weights point the way of the planted W (cosine > 0.95)."""
    head, _, (_, _, x_test, y_test, w, b), _ = planted_fit
    pred = predict(head, x_test).numpy()
    assert pred.shape == y_test.shape
    for j in range(y_test.shape[1]):
        r = np.corrcoef(pred[:, j], y_test[:, j])[0, 1]
        assert r > 0.95, (j, r)
    # Weight recovery: 390 Adam steps at lr <= 1e-2 shrink the weights a little, so compare directions.
    learned = head.linear.weight.detach().numpy().T.astype(np.float64).ravel()
    cosine = learned @ w.ravel() / (np.linalg.norm(learned) * np.linalg.norm(w))
    assert cosine > 0.95, cosine


def test_fit_head_history(planted_fit):
    """Truth: one record per epoch numbered 1..epochs; train loss falls; the last lr is 0 (the linear decay
    ends at the last step); the last val_loss equals the numpy MSE of the final head on the validation set."""
    head, history, (_, _, x_test, y_test, _, _), schedule = planted_fit
    assert [r["epoch"] for r in history] == list(range(1, schedule.epochs + 1))
    assert history[-1]["train_loss"] < 0.1 * history[0]["train_loss"]
    assert history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    # lr after epoch e = 1e-2 * multiplier(13 e) for 13 steps per epoch, 390 steps, 39 warm-up steps.
    steps = math.ceil(400 / 32)
    assert steps == 13
    assert history[0]["lr"] == pytest.approx(1e-2 * 13 / 39)
    assert history[14]["lr"] == pytest.approx(1e-2 * (390 - 15 * 13) / (390 - 39))
    W = head.linear.weight.detach().numpy().astype(np.float64)
    B = head.linear.bias.detach().numpy().astype(np.float64)
    mse = np.mean((x_test.astype(np.float64) @ W.T + B - y_test) ** 2)
    assert history[-1]["val_loss"] == pytest.approx(mse, rel=1e-4)


def test_fit_head_ignores_nan_targets():
    """Truth: planted map with 30 % of targets replaced by NaN (and a +1e6 outlier never seen because it is
    NaN-masked): the fit still recovers the map (correlation > 0.95) and the loss stays finite."""
    x_train, y_train, x_test, y_test, _, _ = planted_problem(seed=1)
    rng = np.random.default_rng(11)
    y_nan = y_train.copy()
    y_nan[rng.random(y_nan.shape) < 0.3] = np.nan
    head, history = fit_head(x_train, y_nan, Schedule(epochs=30, learning_rate=1e-2), seed=0, init_std=0.0)
    assert all(math.isfinite(r["train_loss"]) for r in history)
    pred = predict(head, x_test).numpy()
    for j in range(y_test.shape[1]):
        assert np.corrcoef(pred[:, j], y_test[:, j])[0, 1] > 0.95


def test_fit_head_seed_determinism():
    """Truth: same seed -> bitwise identical weights; another seed (other example order) -> different."""
    x_train, y_train, *_ = planted_problem(seed=2, n_train=100)
    schedule = Schedule(epochs=3, learning_rate=1e-2)
    h1, hist1 = fit_head(x_train, y_train, schedule, seed=5, init_std=0.0)
    h2, hist2 = fit_head(x_train, y_train, schedule, seed=5, init_std=0.0)
    h3, _ = fit_head(x_train, y_train, schedule, seed=6, init_std=0.0)
    assert torch.equal(h1.linear.weight, h2.linear.weight)
    assert torch.equal(h1.linear.bias, h2.linear.bias)
    assert hist1 == hist2
    assert not torch.equal(h1.linear.weight, h3.linear.weight)


def test_predict_matches_numpy_linear_map():
    """Truth: predict is x W^T + b computed in numpy, independent of the batch size; empty input gives an
    empty (0, n_outputs) result."""
    head = LinearHead(5, 3, init_std=1.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        head.linear.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32)
    W = head.linear.weight.detach().numpy().astype(np.float64)
    expected = x.astype(np.float64) @ W.T + np.array([0.5, -1.0, 2.0])
    for batch_size in (1, 7, 1024):
        got = predict(head, x, batch_size=batch_size).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert tuple(predict(head, np.zeros((0, 5), dtype=np.float32)).shape) == (0, 3)


def test_linear_head_init():
    """Truth: init_std = 0 gives zero weights and biases; a seeded generator makes two heads identical and
    another seed different; with init_std 0.02 the sample std of 65536 weights is 0.02 within 2 %."""
    zero = LinearHead(8, 5, init_std=0.0)
    assert torch.count_nonzero(zero.linear.weight).item() == 0
    assert torch.count_nonzero(zero.linear.bias).item() == 0
    a = LinearHead(256, 256, generator=torch.Generator().manual_seed(1))
    b = LinearHead(256, 256, generator=torch.Generator().manual_seed(1))
    c = LinearHead(256, 256, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.linear.weight, b.linear.weight)
    assert not torch.equal(a.linear.weight, c.linear.weight)
    assert torch.count_nonzero(a.linear.bias).item() == 0
    assert abs(a.linear.weight.std().item() - 0.02) < 0.02 * 0.02
    assert abs(a.linear.weight.mean().item()) < 0.001
    assert a(torch.zeros(2, 256)).shape == (2, 256)
