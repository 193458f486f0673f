"""hubconf.py: torch.hub.load from a local clone, offline."""
import os

import pytest
import torch

import inference
from conftest import ROOT


def test_hub_gives_the_shipped_model_ready_for_inference():
    if not os.path.exists(os.path.join(ROOT, "weights", "fer2013_vgg19_slim.pth")):
        pytest.skip("no released weights")
    model = torch.hub.load(ROOT, "fer2013_vgg19_slim", source="local")
    assert not model.training and model.input_size == (1, 44, 44)
    assert model.class_names == ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
    faces = torch.randint(0, 256, (3, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(model.preprocess(faces)).view(3, 10, -1).mean(1)  # what the docstring tells a user
    assert torch.allclose(logits, inference.predict_logits(model, faces), atol=1e-5)


@pytest.mark.parametrize("entry", ["vgg19", "resnet18"])
def test_hub_architectures_are_untrained_networks(entry):
    model = torch.hub.load(ROOT, entry, source="local", width=0.25, num_classes=8)
    assert model.training and model.class_names == [f"class {i}" for i in range(8)]
    assert model(torch.zeros(2, *model.input_size)).shape == (2, 8)


def test_hub_probabilities_are_the_calibrated_ones():
    if not os.path.exists(os.path.join(ROOT, "weights", "fer2013_vgg19_slim.pth")):
        pytest.skip("no released weights")
    from utils import load_checkpoint
    ck = load_checkpoint(os.path.join(ROOT, "weights", "fer2013_vgg19_slim.pth"))
    model = torch.hub.load(ROOT, "fer2013_vgg19_slim", source="local")
    assert model.temperature == ck.get("calibration", {}).get("temperature", 1.0)
    faces = torch.randint(0, 256, (3, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    want = torch.softmax(inference.predict_logits(model, faces) / model.temperature, 1)
    assert torch.allclose(model.predict_proba(faces), want, atol=1e-5)
