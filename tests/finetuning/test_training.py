"""Tests of the optimisation helpers and the linear head (``brainalign.finetuning.training``, ``brainalign.finetuning.heads``)."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from brainalign.finetuning.heads import LinearHead
from brainalign.finetuning.training import (Schedule, decay_groups, make_optimizer, masked_mse,
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
