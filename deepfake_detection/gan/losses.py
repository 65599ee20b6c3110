"""GAN losses: the BCE game with one-sided label smoothing (seed 002, seed 000), WGAN-GP (seed 002),
and weighted BCE for the hybrid ResNet-34 discriminator-classifier (seed 004).

Discriminators return logits; every sigmoid lives here, inside ``binary_cross_entropy_with_logits``
(log-sum-exp form, stable where ``log(sigmoid(x))`` underflows). Each loss is torch's own
function on the right targets; only the gradient penalty (Gulrajani et al., 2017) has no
torch/library equivalent and is written out.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as nnf

GP_WEIGHT = 10.0   # lambda of Gulrajani et al. 2017, used by every WGAN-GP run of seed 002


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """Discriminator BCE: mean over reals against ``real_label`` plus mean over fakes against 0.

    ``real_label`` < 1 (e.g. 0.9) is one-sided label smoothing (Salimans et al. 2016; Goodfellow
    2016): only the real targets are smoothed; smoothing the fake targets would reward the
    generator for samples the discriminator already rejects.
    """
    if not 0.0 < real_label <= 1.0:
        raise ValueError(f"d_loss_bce: real_label must be in (0, 1], got {real_label}")
    real = nnf.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
    fake = nnf.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def g_loss_bce(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: BCE of D(G(z)) against 1 (never smoothed)."""
    return nnf.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def d_loss_wgan(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic loss E[f(fake)] - E[f(real)]: minimising it widens the critic's real-fake gap."""
    return fake_scores.mean() - real_scores.mean()


def g_loss_wgan(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator loss -E[f(G(z))]: minimising it raises the critic's score of the fakes."""
    return -fake_scores.mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``eps * real + (1 - eps) * fake`` with one eps ~ U(0, 1) per sample, drawn from ``generator``."""
    if real.shape != fake.shape:
        raise ValueError(f"gradient penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    eps = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), generator=generator, dtype=real.dtype,
                     device="cpu").to(real.device)   # drawn on CPU so a CPU generator serves any device
    return eps * real + (1 - eps) * fake


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None, weight: float = 1.0) -> torch.Tensor:
    """``weight * mean((||grad_x critic(x_hat)||_2 - 1)^2)`` at random interpolates x_hat (Gulrajani et al.).

    ``real`` and ``fake`` are detached (the penalty trains the critic only); the graph is kept
    (``create_graph``) so the penalty backpropagates into the critic's parameters. The caller
    passes ``weight=GP_WEIGHT`` (10) or scales the result itself.
    """
    x_hat = interpolate(real.detach(), fake.detach(), generator).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: float | torch.Tensor) -> torch.Tensor:
    """BCE-with-logits whose positive (fake, label 1) terms weigh ``pos_weight`` (seed 004's weighted BCE).

    ``pos_weight`` = n_negative / n_positive balances the classes (torch's own ``pos_weight``).
    """
    pos_weight = torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    if (pos_weight <= 0).any():
        raise ValueError(f"weighted_bce: pos_weight must be > 0, got {pos_weight.tolist()}")
    return nnf.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), pos_weight=pos_weight)
