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
    cfg = models.scale_cfg(models.default_cfg(arch), 0.25)
    m = models.build_model(arch, cfg=cfg, num_classes=8)
    ck = {"arch": arch, "cfg": m.cfg, "num_classes": 8, "in_channels": 1, "net": m.state_dict()}
    m2 = models.model_from_checkpoint(ck).eval()
    x = torch.randn(3, 1, 44, 44)
    assert torch.equal(m.eval()(x), m2(x))
    convs = [l for l in m2.modules() if isinstance(l, torch.nn.Conv2d)]
    assert convs[0].out_channels == (16 if arch == "VGG19" else 64)


def test_names_and_errors():
    assert models.canonical_name("vgg19") == "VGG19" and models.canonical_name("ResNet18") == "Resnet18"
    with pytest.raises(ValueError, match="unknown model"):
        models.canonical_name("AlexNet")
    assert models.build_model("VGG11", cfg=SMALL_VGG)(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
