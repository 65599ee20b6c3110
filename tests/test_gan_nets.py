"""GAN builders: every registered net builds; shapes, pixel ranges, logits; parameter counts by hand;
one optimizer step of each generator/discriminator pair with its loss changes both networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepfake_detection.gan import losses as L
from deepfake_detection.gan.nets import (GAN_PIXELS, create_gan_net, gan_net_info, list_gan_nets,
                                         register_gan_net, to_net_pixels, to_uint8)
from deepfake_detection.model_specs import NORMALIZATIONS

LAST_ACTIVATION = {"half": nn.Tanh, "unit": nn.Sigmoid}


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_registry_lists_every_builder_by_kind():
    assert list_gan_nets("generator") == ["dcgan224_generator", "dcgan64_generator", "hybrid_generator"]
    assert list_gan_nets("discriminator") == ["dcgan224_discriminator", "dcgan64_discriminator",
                                              "hybrid_resnet34_discriminator"]
    assert set(GAN_PIXELS) <= set(NORMALIZATIONS)
    assert gan_net_info("hybrid_resnet34_discriminator").weights == "resnet34"
    assert [gan_net_info(n).weights for n in list_gan_nets()].count(None) == 5


@pytest.mark.parametrize("name", list_gan_nets())
def test_every_registered_net_builds_at_its_default_size(name):
    torch.manual_seed(0)
    info = gan_net_info(name)
    net = create_gan_net(name).eval()
    with torch.no_grad():
        if info.kind == "generator":
            out = net(torch.randn(2, net.z_dim))
            assert out.shape == (2, 3, info.default_size, info.default_size)
            last = [m for m in net.modules() if not list(m.children())][-1]
            assert isinstance(last, LAST_ACTIVATION[info.pixels])
            low = -1.0 if info.pixels == "half" else 0.0
            assert low <= out.min().item() and out.max().item() <= 1.0
        else:
            x = torch.rand(2, 3, info.default_size, info.default_size)
            out = net(x * 2 - 1 if info.pixels == "half" else x)
            assert out.shape == (2, 1) and torch.isfinite(out).all()


def test_dcgan64_generator_layers_and_parameter_count():
    g = create_gan_net("dcgan64_generator", z_dim=100)
    sides = []
    x = torch.randn(2, 100)
    for m in g.body:
        x = m(x)
        if isinstance(m, nn.ConvTranspose2d):
            sides.append((m.in_channels, m.out_channels, m.kernel_size, m.stride, x.shape[-1]))
    assert sides == [(128, 64, (5, 5), (2, 2), 16), (64, 32, (5, 5), (2, 2), 32), (32, 3, (5, 5), (2, 2), 64)]
    dense, bn1d = 100 * 8 * 8 * 128, 2 * 8 * 8 * 128                    # Dense without bias, its BN
    convs = 128 * 64 * 25 + 64 * 32 * 25 + 32 * 3 * 25                   # three 5x5 ConvT, no biases
    bn2d = 2 * 64 + 2 * 32
    assert _n_params(g) == dense + bn1d + convs + bn2d == 1_094_176


def test_dcgan64_discriminator_parameter_counts_batch_and_critic():
    convs = 3 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 1 * 16
    d = create_gan_net("dcgan64_discriminator")
    # biases on conv 1 and 5 only; BN (weight + bias) on convs 2-4
    assert _n_params(d) == convs + 64 + 1 + 2 * (128 + 256 + 512) == 2_765_633
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3
    critic = create_gan_net("dcgan64_discriminator", norm="none")
    assert _n_params(critic) == convs + 64 + 128 + 256 + 512 + 1 == 2_764_737
    assert not any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())
    with pytest.raises(ValueError, match=r"norm 'layer' is not 'batch' or 'none'"):
        create_gan_net("dcgan64_discriminator", norm="layer")


def test_dcgan224_channels_follow_the_report_and_width():
    g = create_gan_net("dcgan224_generator")
    convs = [(m.in_channels, m.out_channels) for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convs == [(100, 1024), (1024, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    d = create_gan_net("dcgan224_discriminator")
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 64, 4), (64, 128, 4), (128, 256, 4), (256, 512, 4), (512, 1024, 4), (1024, 1, 7)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 4       # all but the first and last
    small = create_gan_net("dcgan224_generator", width=8, size=64)          # base 4: 4 -> 8 -> 16 -> 32 -> 64
    convs = [(m.in_channels, m.out_channels) for m in small.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convs == [(100, 64), (64, 32), (32, 16), (16, 8), (8, 3)]
    assert small(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"size 100 must be 7 \* 2\^k or 4 \* 2\^k"):
        create_gan_net("dcgan224_discriminator", size=100)


def test_pixels_in_and_out_by_hand():
    u8 = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(to_net_pixels(u8, "half"), torch.tensor([-1.0, -0.6, 1.0]))
    assert torch.allclose(to_net_pixels(u8, "unit"), torch.tensor([0.0, 0.2, 1.0]))
    for pixels in GAN_PIXELS:
        assert torch.equal(to_uint8(to_net_pixels(u8, pixels), pixels), u8)     # exact round trip
    # out-of-range values clamp; halves round to even as torch.round does
    assert to_uint8(torch.tensor([-1.5, 0.0, 2.0]), "half").tolist() == [0, 128, 255]
    assert to_uint8(torch.tensor([-0.1, 0.5, 1.1]), "unit").tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match=r"expected uint8 images, got torch.float32"):
        to_net_pixels(torch.zeros(1), "half")


def test_generator_refuses_latents_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"expects latents of shape \(N, 100\), got \(2, 100, 1, 1\)"):
        create_gan_net("dcgan64_generator")(torch.randn(2, 100, 1, 1))


def test_unknown_names_kwargs_and_weights_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown GAN net builder 'nope'; registered: \["):
        create_gan_net("nope")
    with pytest.raises(ValueError, match=r"GAN net builder 'dcgan64_generator': bad kwargs \['depth'\]"):
        create_gan_net("dcgan64_generator", depth=3)
    with pytest.raises(ValueError, match=r"'dcgan64_generator' has no pretrained weights"):
        create_gan_net("dcgan64_generator", weights_file=tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"kind 'critic' is not one of \('generator', 'discriminator'\)"):
        register_gan_net(kind="critic", pixels="half", default_size=64)(lambda: None)


def test_hybrid_discriminator_loads_resnet34_weights(tmp_path):
    from torchvision.models import resnet34

    state = resnet34(weights=None).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.125)
    torch.save(state, tmp_path / "resnet34.pth")
    d = create_gan_net("hybrid_resnet34_discriminator", weights_file=tmp_path / "resnet34.pth")
    assert torch.equal(d.backbone[0].weight, state["conv1.weight"])
    assert [type(m).__name__ for m in (d.attention, d.head[-1])] == ["SqueezeExcitation", "Linear"]


# ------------------------------------------------------------------ one training step of each variant


def _bce_step(d, real, fake, real_label=1.0):
    return L.d_loss_bce(d(real), d(fake), real_label), lambda f: L.g_loss_bce(d(f))


def _wgan_step(d, real, fake):
    gp = L.gradient_penalty(d, real, fake, torch.Generator().manual_seed(1), weight=L.GP_WEIGHT)
    return L.d_loss_wgan(d(real), d(fake)) + gp, lambda f: L.g_loss_wgan(d(f))


def _hybrid_step(d, real, fake):
    # seed 004: the discriminator-classifier sees real faces (0) and fakes (1), weighted BCE; G wants "real"
    logits, targets = d(torch.cat([real, fake])), torch.cat([torch.zeros(len(real), 1), torch.ones(len(fake), 1)])
    return L.weighted_bce(logits, targets, 0.5), lambda f: L.weighted_bce(d(f), torch.zeros(len(f), 1), 0.5)


PAIRS = {
    "dcgan_baseline": ("dcgan64_generator", {}, "dcgan64_discriminator", {}, _bce_step, 64),
    "dcgan_label_smoothing": ("dcgan64_generator", {}, "dcgan64_discriminator", {},
                              lambda d, r, f: _bce_step(d, r, f, real_label=0.9), 64),
    "wgan_gp": ("dcgan64_generator", {}, "dcgan64_discriminator", {"norm": "none"}, _wgan_step, 64),
    "dcgan224_anomaly_demo": ("dcgan224_generator", {"width": 8, "size": 56},
                              "dcgan224_discriminator", {"width": 8, "size": 56}, _bce_step, 56),
    "hybrid_resnet34_gan": ("hybrid_generator", {"width": 8}, "hybrid_resnet34_discriminator", {}, _hybrid_step, 64),
}


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _changed(model: nn.Module, before: dict) -> list[str]:
    return [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]


@pytest.mark.parametrize("variant", sorted(PAIRS))
def test_one_training_step_updates_d_then_g(variant):
    g_name, g_kw, d_name, d_kw, step, side = PAIRS[variant]
    torch.manual_seed(0)
    g, d = create_gan_net(g_name, **g_kw).train(), create_gan_net(d_name, **d_kw).train()
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-4), torch.optim.Adam(d.parameters(), 1e-4)
    low = -1.0 if gan_net_info(d_name).pixels == "half" else 0.0
    real = torch.rand(4, 3, side, side) * (1 - low) + low
    z = torch.randn(4, g.z_dim)

    g_before, d_before = _snapshot(g), _snapshot(d)
    d_loss, _ = step(d, real, g(z).detach())
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    # the critic's output bias cancels in E[f(fake)] - E[f(real)] and has no gradient wrt x: it never moves
    constant = ["8.bias"] if variant == "wgan_gp" else []
    assert _changed(g, g_before) == []
    assert _changed(d, d_before) == [k for k, _ in d.named_parameters() if k not in constant]

    d_after = _snapshot(d)
    _, g_loss_of = step(d, real, g(z).detach())
    g_loss = g_loss_of(g(z))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    assert _changed(g, g_before) == [k for k, _ in g.named_parameters()] and _changed(d, d_after) == []
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)


def test_hybrid_generator_sizes_follow_the_pyramid():
    z = torch.randn(2, 8)
    for size, chans in ((64, [32, 16, 8, 4]), (32, [16, 8, 4])):
        g = create_gan_net("hybrid_generator", z_dim=8, width=4, size=size).eval()
        assert g(z).shape == (2, 3, size, size)
        convt = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
        assert [m.out_channels for m in convt] == chans + [3]
    with pytest.raises(ValueError, match="size 56 must be 4 \\* 2\\^k"):
        create_gan_net("hybrid_generator", size=56)
