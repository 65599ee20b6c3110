import pytest
import torch

from deepfake_detection.models.blocks import CBAM, SqueezeExcitation
from deepfake_detection.models.registry import create_model, fake_probability, list_models, model_info


@pytest.mark.parametrize("name", list_models())
def test_every_registered_builder_runs_forward_and_backward(name):
    torch.manual_seed(0)
    model = create_model(name, input_size=64)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, model_info(name).num_outputs)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unknown_builder_and_bad_kwargs_are_clear():
    with pytest.raises(ValueError, match="unknown model builder 'nope'"):
        create_model("nope", input_size=64)
    with pytest.raises(ValueError, match="custom_cnn.*bad kwargs"):
        create_model("custom_cnn", input_size=64, colour=True)


def test_custom_cnn_matches_report_shape_at_224():
    model = create_model("custom_cnn", input_size=224)
    fc = [m for m in model if isinstance(m, torch.nn.Linear)][0]
    assert fc.in_features == 128 * 28 * 28 and fc.out_features == 512


def test_resnet18_variants_structure():
    m = create_model("resnet18", input_size=64, cbam=True, dropout=0.5)
    assert isinstance(m.layer4[-1], CBAM)
    assert isinstance(m.fc[0], torch.nn.Dropout) and m.fc[1].in_features == 512


def test_attention_blocks_keep_shape_and_gate_in_unit_range():
    x = torch.randn(2, 32, 8, 8)
    assert CBAM(32)(x).shape == x.shape
    assert SqueezeExcitation(32)(x).shape == x.shape
    pos = torch.rand(2, 32, 8, 8)
    assert (CBAM(32)(pos) <= pos + 1e-6).all()   # gates are sigmoids in (0, 1)


def test_fake_probability_softmax_and_sigmoid():
    two = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert torch.allclose(fake_probability(two, "softmax2"), torch.tensor([0.5, torch.sigmoid(torch.tensor(2.0))]))
    one = torch.tensor([[0.0], [-1.0]])
    assert torch.allclose(fake_probability(one, "logit"), torch.sigmoid(one[:, 0]))
