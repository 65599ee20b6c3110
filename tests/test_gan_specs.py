"""gan_specs (ast, no torch) agrees with the live GAN registry; its errors name the key."""

from __future__ import annotations

import inspect
import subprocess
import sys

from deepfake_detection.gan.nets import _GAN_NETS, gan_net_info, list_gan_nets
from deepfake_detection.gan_specs import check_gan_net, gan_net_specs


def test_specs_match_the_live_registry():
    specs = gan_net_specs()
    assert sorted(specs) == list_gan_nets()
    for name, spec in specs.items():
        info, params = gan_net_info(name), inspect.signature(_GAN_NETS[name][0]).parameters
        assert (spec.kind, spec.pixels, spec.default_size, spec.weights) == \
            (info.kind, info.pixels, info.default_size, info.weights)
        assert spec.kwargs == tuple(p for p in params if p != "weights_file")
        assert spec.var_kwargs is any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_reading_the_specs_imports_no_torch():
    code = ("import sys; from deepfake_detection.gan_specs import gan_net_specs; gan_net_specs(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_check_gan_net_messages():
    assert check_gan_net("dcgan64_discriminator", {"norm": "none"}, "discriminator", "gans.wgan_gp.d") is None
    assert check_gan_net("dcgan64_generator", {}, "discriminator", "gans.x.d") == (
        "gans.x.d.builder: unknown discriminator 'dcgan64_generator'; registered: ['dcgan224_discriminator', "
        "'dcgan64_discriminator', 'hybrid_resnet34_discriminator']")
    assert check_gan_net("hybrid_resnet34_discriminator", {"weights_file": "w.pth", "depth": 2}, "discriminator",
                         "gans.h.d") == (
        "gans.h.d.kwargs: hybrid_resnet34_discriminator takes no argument(s) ['depth', 'weights_file']; it accepts "
        "['dropout', 'reduction'] (weights_file comes from the pipeline)")
