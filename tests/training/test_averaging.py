"""The weight average: it follows the weights, is applied only inside its block, and resumes."""

from __future__ import annotations

import torch
from torch import nn

from dermlens.training.averaging import WeightAverage


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_average_lags_behind_the_live_weights_and_is_swapped_in_only_inside_the_block():
    model = _model()
    average = WeightAverage(model, decay=0.9)
    start = model[0].weight.detach().clone()
    for _ in range(50):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        average.update(model)
    live = model[0].weight.detach().clone()
    assert torch.allclose(live, start + 50)
    with average.applied(model):
        averaged = model[0].weight.detach().clone()
    # an EMA of a ramp trails it: strictly between the start and the live weights
    assert (averaged < live).all() and (averaged > start).all()
    assert torch.equal(model[0].weight, live)


def test_zero_decay_is_off():
    model = _model()
    average = WeightAverage(model, decay=0.0)
    before = model[0].weight.detach().clone()
    average.update(model)
    with average.applied(model):
        assert torch.equal(model[0].weight, before)
    assert average.state_dict()["shadow"] == {}


def test_state_round_trip_resumes_the_same_average():
    model = _model()
    average = WeightAverage(model, decay=0.99)
    for _ in range(5):
        with torch.no_grad():
            model[2].bias.add_(0.5)
        average.update(model)
    restored = WeightAverage(_model(), decay=0.99)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 5
    for name, value in average.shadow.items():
        assert torch.equal(restored.shadow[name], value)


def test_only_trainable_parameters_are_averaged():
    model = _model()
    model[0].weight.requires_grad = False
    average = WeightAverage(model, decay=0.9)
    assert "0.weight" not in average.shadow and "0.bias" in average.shadow
