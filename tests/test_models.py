import pytest
import torch

import models
from conftest import SMALL_VGG


@pytest.mark.parametrize("arch", list(models.MODELS))
def test_every_model_forward_backward(arch):
    torch.manual_seed(0)
    m = models.build_model(arch, num_classes=7)
    x = torch.randn(2, 1, 44, 44)
    out = m(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    assert any(isinstance(l, torch.nn.BatchNorm2d) for l in m.modules())


@pytest.mark.parametrize("arch", ["VGG19", "Resnet18"])
def test_rebuild_from_cfg_and_state_dict(arch):
    cfg, model_args = models.scaled(arch, 0.25)
    m = models.build_model(arch, cfg=cfg, num_classes=8, **model_args)
    ck = {"arch": arch, "cfg": m.cfg, "model_args": m.model_args, "num_classes": 8, "in_channels": 1,
          "net": m.state_dict()}
    m2 = models.model_from_checkpoint(ck).eval()
    x = torch.randn(3, 1, 44, 44)
    assert torch.equal(m.eval()(x), m2(x))
    convs = [l for l in m2.modules() if isinstance(l, torch.nn.Conv2d)]
    assert convs[0].out_channels == 16  # the stem narrows too (ResNet: 64 -> 16)


@pytest.mark.parametrize("arch", ["VGG19", "Resnet18"])
def test_width_scales_the_whole_network(arch):
    """--width 0.25 is about a sixteenth of the parameters for every architecture."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    full = count(models.build_model(arch))
    cfg, model_args = models.scaled(arch, 0.25)
    quarter = count(models.build_model(arch, cfg=cfg, **model_args))
    assert 12 < full / quarter < 17, (full, quarter)
    if arch == "Resnet18":
        m = models.build_model(arch, cfg=cfg, **model_args)
        assert m.planes == [16, 32, 64, 128] and m.classifier.in_features == 128
        shortcut = m.layers[2].shortcut[0]
        assert (shortcut.in_channels, shortcut.out_channels) == (16, 32)


def test_names_and_errors():
    assert models.canonical_name("vgg19") == "VGG19" and models.canonical_name("ResNet18") == "Resnet18"
    with pytest.raises(ValueError, match="unknown model"):
        models.canonical_name("AlexNet")
    assert models.build_model("VGG11", cfg=SMALL_VGG)(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
