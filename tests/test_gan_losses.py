"""GAN losses against hand-worked values: BCE with one-sided smoothing, WGAN signs, the gradient penalty."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepfake_detection.gan.losses import (GP_WEIGHT, d_loss_bce, d_loss_wgan, g_loss_bce, g_loss_wgan,
                                           gradient_penalty, interpolate, weighted_bce)


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _bce(logit: float, target: float) -> float:
    p = _sig(logit)
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_one_sided_smoothing_is_bce_with_targets_0_9_and_0_by_hand():
    real, fake = [2.0, -0.5], [0.3, -1.5, 1.0]
    expected = (sum(_bce(x, 0.9) for x in real) / 2) + (sum(_bce(x, 0.0) for x in fake) / 3)
    got = d_loss_bce(torch.tensor(real, dtype=torch.float64), torch.tensor(fake, dtype=torch.float64), real_label=0.9)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_unsmoothed_d_loss_and_g_loss_by_hand():
    real, fake = torch.tensor([[0.0], [1.0]], dtype=torch.float64), torch.tensor([[0.0], [-2.0]], dtype=torch.float64)
    # reals against 1: (log 2 + log(1 + e^-1)) / 2; fakes against 0: (log 2 + log(1 + e^-2)) / 2
    expected_d = (math.log(2) + math.log(1 + math.exp(-1))) / 2 + (math.log(2) + math.log(1 + math.exp(-2))) / 2
    assert d_loss_bce(real, fake).item() == pytest.approx(expected_d, rel=1e-12)
    # generator wants fakes called real: (log 2 + log(1 + e^2)) / 2; never smoothed
    assert g_loss_bce(fake).item() == pytest.approx((math.log(2) + math.log(1 + math.exp(2))) / 2, rel=1e-12)


def test_real_label_outside_0_1_is_refused():
    with pytest.raises(ValueError, match=r"real_label must be in \(0, 1\], got 1.1"):
        d_loss_bce(torch.zeros(1), torch.zeros(1), real_label=1.1)


def test_wgan_losses_signs():
    real, fake = torch.tensor([3.0, 5.0]), torch.tensor([-1.0, 0.0])
    assert d_loss_wgan(real, fake).item() == -4.5        # E[f(fake)] - E[f(real)] = -0.5 - 4
    assert g_loss_wgan(fake).item() == 0.5               # -E[f(fake)]
    # a critic scoring reals higher has the lower loss; a generator whose fakes score higher has the lower loss
    assert d_loss_wgan(real + 1, fake) < d_loss_wgan(real, fake)
    assert g_loss_wgan(fake + 1) < g_loss_wgan(fake)


def test_gradient_penalty_of_a_linear_critic_is_norm_w_minus_1_squared():
    # f(x) = w . x has gradient w at every point: penalty = (||w|| - 1)^2 whatever the interpolates
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=True)).double()
    with torch.no_grad():
        critic[1].weight.copy_(torch.arange(12, dtype=torch.float64).view(1, 12) / 10)
    w_norm = math.sqrt(sum((i / 10) ** 2 for i in range(12)))
    real = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    fake = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx((w_norm - 1) ** 2, rel=1e-12)
    assert gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0), weight=GP_WEIGHT).item() \
        == pytest.approx(10 * (w_norm - 1) ** 2, rel=1e-12)


def test_gradient_penalty_backpropagates_into_the_critic():
    critic = nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))           # ||w|| = 5
    gp = gradient_penalty(critic, torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64))
    gp.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * w / 5
    assert torch.allclose(critic.weight.grad, torch.tensor([[4.8, 0.0, 6.4]], dtype=torch.float64))


def test_interpolates_use_one_eps_per_sample_from_the_generator():
    real, fake = torch.ones(3, 2, 2), torch.zeros(3, 2, 2)
    eps = torch.rand(3, generator=torch.Generator().manual_seed(7))
    x = interpolate(real, fake, torch.Generator().manual_seed(7))
    assert torch.equal(x, eps.view(3, 1, 1).expand(3, 2, 2))


def test_weighted_bce_by_hand():
    logits, targets = torch.tensor([1.0, -1.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    # positive term weighed 3: (3 * log(1 + e^-1) + log(1 + e^-1)) / 2
    expected = (3 * math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-1))) / 2
    assert weighted_bce(logits, targets, 3.0).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"pos_weight must be > 0, got 0.0"):
        weighted_bce(logits, targets, 0.0)
