"""Classifier registry and builders: every builder forward + backward, metadata, exact parameter counts.

Heavy models are built once per module (``_built``); reference counts come from torchvision's
weight metadata (``meta["num_params"]``) or are worked out by hand in the test.
"""

import functools

import pytest
import torch
from torch import nn

from deepfake_detection.models.blocks import CBAM, BackboneHead, SqueezeExcitation
from deepfake_detection.models.registry import (ModelInfo, create_model, fake_probability, gradcam_target,
                                                list_models, model_info)

ALL = ["custom_cnn", "dcgan_realness", "efficientnetv2_s", "hybrid_resnet34", "keras_cnn", "mobilenet_v2", "resnet18",
       "resnet50_frozen", "xception"]


@functools.cache
def _built(name: str, size: int = 64, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, input_size=size, **kwargs)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _frozen_params(model: nn.Module, info: ModelInfo) -> set[int]:
    return {id(p) for path in info.frozen for p in model.get_submodule(path).parameters()}


def test_every_builder_is_registered():
    assert list_models() == ALL


# (builder, input side): every builder at 64 px, the cheap ones also at their report's side.
CASES = [(name, 64) for name in ALL] + [("custom_cnn", 224), ("keras_cnn", 200), ("resnet18", 224)]


@pytest.mark.parametrize("name, size", CASES)
def test_builder_forward_backward_grads_and_gradcam_layer(name, size):
    info = model_info(name)
    model = _built(name, size).train()
    model.zero_grad(set_to_none=True)
    target = gradcam_target(model, info)
    seen = []
    handle = target.register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    try:
        out = model(torch.randn(2, 3, size, size))
    finally:
        handle.remove()
    assert out.shape == (2, info.num_outputs) and out.dtype == torch.float32
    out.sum().backward()
    frozen = _frozen_params(model, info)
    for pname, p in model.named_parameters():
        if id(p) in frozen:
            assert not p.requires_grad and p.grad is None, pname
        else:
            assert p.requires_grad and p.grad is not None, pname
    assert len(seen) == 1 and len(seen[0]) == 4 and seen[0][0] == 2   # a (N, C, h, w) feature map


# The Grad-CAM layer each builder declares resolves to this module type.
GRADCAM_TYPES = {"custom_cnn": nn.Conv2d, "efficientnetv2_s": nn.Conv2d, "keras_cnn": nn.Conv2d,
                 "mobilenet_v2": "Conv2dNormActivation", "resnet18": nn.Conv2d, "resnet50_frozen": nn.Conv2d,
                 "xception": nn.ReLU, "dcgan_realness": nn.LeakyReLU, "hybrid_resnet34": nn.Sequential}


@pytest.mark.parametrize("name", ALL)
def test_gradcam_layer_type(name):
    target = gradcam_target(_built(name), model_info(name))
    want = GRADCAM_TYPES[name]
    assert (type(target).__name__ == want) if isinstance(want, str) else (type(target) is want)


def test_gradcam_paths_resolve_as_declared():
    r18 = _built("resnet18")
    assert gradcam_target(r18, model_info("resnet18")) is r18.layer4[1].conv2
    cbam = create_model("resnet18", input_size=64, cbam=True)
    assert gradcam_target(cbam, model_info("resnet18")) is cbam.layer4[1].conv2   # CBAM skipped
    r50 = _built("resnet50_frozen")
    assert gradcam_target(r50, model_info("resnet50_frozen")) is r50.backbone.layer4[2].conv3
    mnv2 = _built("mobilenet_v2")
    assert gradcam_target(mnv2, model_info("mobilenet_v2")) is mnv2.features[18]
    cnn = _built("custom_cnn")
    assert gradcam_target(cnn, model_info("custom_cnn")) is cnn[8]   # the third block's conv
    keras = _built("keras_cnn")
    assert gradcam_target(keras, model_info("keras_cnn")) is keras[4]   # the second block's conv
    eff = _built("efficientnetv2_s")
    assert gradcam_target(eff, model_info("efficientnetv2_s")) is eff.backbone.conv_head
    xcp = _built("xception")   # act4: the ReLU after the last separable conv (timm's last feature level)
    assert gradcam_target(xcp, model_info("xception")) is xcp.act4
    assert [n for n, _ in xcp.named_children()][-5:] == ["conv4", "bn4", "act4", "global_pool", "fc"]
    anomaly = _built("dcgan_realness")   # net.-3: the last LeakyReLU, before the conv to one logit
    assert gradcam_target(anomaly, model_info("dcgan_realness")) is anomaly.net[-3]
    assert isinstance(anomaly.net[-2], nn.Conv2d) and anomaly.net[-2].out_channels == 1
    hybrid = _built("hybrid_resnet34")   # the extra convs after the SE-gated ResNet-34 features
    assert gradcam_target(hybrid, model_info("hybrid_resnet34")) is hybrid.extra
    with pytest.raises(ValueError, match=r"gradcam layer 'layer9.0': ResNet has no child 'layer9'"):
        gradcam_target(r18, ModelInfo("x", "softmax2", "half", "layer9.0", 224))


def test_metadata_of_every_builder():
    got = {n: (i.head, i.num_outputs, i.normalize, i.default_size, i.frozen, i.weights)
           for n in ALL for i in [model_info(n)]}
    assert got == {
        "custom_cnn": ("softmax2", 2, "half", 224, (), None),
        "efficientnetv2_s": ("logit", 1, "imagenet", 224, (), "tf_efficientnetv2_s"),
        "keras_cnn": ("logit", 1, "unit", 200, (), None),
        "mobilenet_v2": ("softmax2", 2, "imagenet", 224, (), "mobilenet_v2"),
        "resnet18": ("softmax2", 2, "half", 224, (), "resnet18"),
        "resnet50_frozen": ("logit", 1, "imagenet", 224, ("backbone",), "resnet50"),
        "xception": ("softmax2", 2, "half", 224, (), "legacy_xception"),
        "dcgan_realness": ("logit", 1, "half", 224, (), None),
        "hybrid_resnet34": ("logit", 1, "unit", 64, (), "resnet34"),
    }


def test_unknown_builder_and_bad_kwargs_are_clear():
    with pytest.raises(ValueError, match=r"unknown model builder 'nope'; registered: \['custom_cnn', "):
        create_model("nope", input_size=64)
    with pytest.raises(ValueError, match=r"model builder 'custom_cnn': bad kwargs \['colour'\]"):
        create_model("custom_cnn", input_size=64, colour=True)
    with pytest.raises(ValueError, match=r"model builder 'resnet18': bad kwargs \['num_outputs'\]"):
        create_model("resnet18", input_size=64, num_outputs=1)
    with pytest.raises(ValueError, match=r"model builder 'resnet18': bad kwargs \['pretrained'\]"):
        create_model("resnet18", input_size=64, pretrained=True)
    with pytest.raises(ValueError, match="model builder 'custom_cnn' has no pretrained weights"):
        create_model("custom_cnn", input_size=64, weights_file="w.pth")
    with pytest.raises(ValueError, match="unknown model builder 'nope'"):
        model_info("nope")


# ------------------------------------------------------------------ exact parameter counts


def test_torchvision_builders_count_their_reference_parameters():
    from torchvision.models import MobileNet_V2_Weights, ResNet18_Weights

    # torchvision's published count with the 1000-class layer replaced by the 2-class one
    r18 = ResNet18_Weights.IMAGENET1K_V1.meta["num_params"]   # 11,689,512
    assert _trainable(_built("resnet18")) == r18 - (512 * 1000 + 1000) + (512 * 2 + 2)
    mnv2 = MobileNet_V2_Weights.IMAGENET1K_V1.meta["num_params"]   # 3,504,872
    assert _trainable(_built("mobilenet_v2")) == mnv2 - (1280 * 1000 + 1000) + (1280 * 2 + 2)
    m = _built("mobilenet_v2")
    assert isinstance(m.classifier[1], nn.Linear) and (m.classifier[1].in_features, m.classifier[1].out_features) \
        == (1280, 2)


def test_resnet50_frozen_trains_only_its_head():
    from torchvision.models import ResNet50_Weights

    model = _built("resnet50_frozen")
    assert _trainable(model) == 2048 * 256 + 256 + 256 + 1   # Dense256 + the logit
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert backbone == ResNet50_Weights.IMAGENET1K_V1.meta["num_params"] - (2048 * 1000 + 1000)
    assert [n for n, _ in model.backbone.named_children()] == ["conv1", "bn1", "relu", "maxpool", "layer1",
                                                                "layer2", "layer3", "layer4"]


def test_resnet50_frozen_backbone_batchnorm_stays_in_inference_mode():
    model = create_model("resnet50_frozen", input_size=64).train()
    assert model.training and model.head.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    stats = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(torch.randn(4, 3, 64, 64) * 3 + 1).sum()
    loss.backward()
    opt.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(stats[k], after[k]) for k in stats)   # running mean/var/num_batches untouched
    assert not all(torch.equal(head[k], v) for k, v in model.head.state_dict().items())   # the head trained
    model.eval().train()
    assert not model.backbone.training   # train() after eval() keeps the backbone frozen


def test_keras_cnn_m1_at_200_has_the_keras_parameter_count():
    model = _built("keras_cnn", 200)
    # 200 -> conv 198 -> pool 99 -> conv 97 -> pool 48: Flatten 48*48*64 = 147,456
    conv1 = 3 * 3 * 3 * 32 + 32            # 896
    bn1 = 2 * 32                           # gamma, beta (Keras' moving mean/var are non-trainable)
    conv2 = 3 * 3 * 32 * 64 + 64           # 18,496
    bn2 = 2 * 64
    dense = 48 * 48 * 64 * 128 + 128       # 18,874,496
    out = 128 + 1
    assert _trainable(model) == conv1 + bn1 + conv2 + bn2 + dense + out == 18_894_209
    assert sum(b.numel() for b in model.buffers() if b.dtype.is_floating_point) == 2 * 32 + 2 * 64
    bns = [m for m in model if isinstance(m, nn.BatchNorm2d)]
    assert [(b.eps, b.momentum) for b in bns] == [(1e-3, 0.01)] * 2   # Keras' BatchNormalization defaults


def test_keras_cnn_m3_layout_and_too_small_input():
    m3 = create_model("keras_cnn", input_size=224, widths=(32, 64, 128), dense=(128, 64), conv_dropout=0.25)
    kinds = [type(m).__name__ for m in m3]
    assert kinds == ["Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d"] * 3 + [
        "Dropout", "Flatten", "Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear"]
    # 224 -> 222/111 -> 109/54 -> 52/26: 26*26*128 features
    linears = [(m.in_features, m.out_features) for m in m3 if isinstance(m, nn.Linear)]
    assert linears == [(26 * 26 * 128, 128), (128, 64), (64, 1)]
    assert [m.p for m in m3 if isinstance(m, nn.Dropout)] == [0.25, 0.5]
    with pytest.raises(ValueError, match="keras_cnn: input size 12 is too small for 3 conv blocks "
                                         r"\(nothing left after block 3\); use at least 22 px"):   # 22: 20/10, 8/4, 2/1
        create_model("keras_cnn", input_size=12, widths=(32, 64, 128))


def test_custom_cnn_matches_report_shape_at_224():
    model = _built("custom_cnn", 224)
    fc = [m for m in model if isinstance(m, nn.Linear)][0]
    assert fc.in_features == 128 * 28 * 28 and fc.out_features == 512


def test_resnet18_variants_structure():
    m = create_model("resnet18", input_size=64, cbam=True, dropout=0.5)
    assert isinstance(m.layer4[-1], CBAM) and len(m.layer4) == 3
    assert isinstance(m.fc[0], nn.Dropout) and m.fc[0].p == 0.5 and m.fc[1].in_features == 512
    assert isinstance(_built("resnet18").fc, nn.Linear)


def test_efficientnet_and_xception_heads():
    eff = _built("efficientnetv2_s")
    assert isinstance(eff, BackboneHead) and eff.backbone.num_classes == 0
    assert [type(m).__name__ for m in eff.head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert (eff.head[0].in_features, eff.head[0].out_features, eff.head[2].p, eff.head[3].out_features) \
        == (1280, 512, 0.3, 1)
    xcp = _built("xception")
    assert (xcp.fc.in_features, xcp.fc.out_features) == (2048, 2)


# ------------------------------------------------------------------ heads and blocks


def test_fake_probability_softmax_and_sigmoid():
    two = torch.tensor([[0.0, 0.0], [0.0, 2.0]], dtype=torch.float16)
    p2 = fake_probability(two, "softmax2")
    assert p2.dtype == torch.float32
    assert torch.allclose(p2, torch.tensor([0.5, 1 / (1 + torch.e ** -2)]))
    one = torch.tensor([[0.0], [-1.0]])
    assert torch.allclose(fake_probability(one, "logit"), torch.tensor([0.5, 1 / (1 + torch.e)]))


def test_fake_probability_checks_the_head_instead_of_guessing():
    with pytest.raises(ValueError, match=r"head 'logit' expects logits of shape \(N, 1\), got \(2, 2\)"):
        fake_probability(torch.zeros(2, 2), "logit")
    with pytest.raises(ValueError, match=r"head 'softmax2' expects logits of shape \(N, 2\), got \(2, 1\)"):
        fake_probability(torch.zeros(2, 1), "softmax2")
    with pytest.raises(ValueError, match=r"head 'sigmoid' is not one of \['logit', 'softmax2'\]"):
        fake_probability(torch.zeros(2, 1), "sigmoid")


def test_attention_blocks_keep_shape_and_gate_in_unit_range():
    x = torch.randn(2, 32, 8, 8)
    assert CBAM(32)(x).shape == x.shape
    assert SqueezeExcitation(32)(x).shape == x.shape
    pos = torch.rand(2, 32, 8, 8)
    assert (CBAM(32)(pos) <= pos + 1e-6).all()   # gates are sigmoids in (0, 1)


def test_dfd_models_lists_the_declared_metadata(capsys):
    from deepfake_detection.cli import main

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ALL
    assert lines[ALL.index("resnet50_frozen")] == (
        "resnet50_frozen: head=logit normalize=imagenet default_size=224 weights=resnet50 frozen=backbone "
        "gradcam=backbone.layer4.-1.conv3 kwargs=hidden,dropout")
