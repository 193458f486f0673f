"""The shipped weights still compute what they computed when released."""
import json
import os
import sys

import pytest
import torch

import inference
import models
from conftest import ROOT
from utils import load_checkpoint

WEIGHTS = os.path.join(ROOT, "weights", "fer2013_vgg19_slim.pth")
REFERENCE = os.path.join(ROOT, "weights", "reference_outputs.json")
pytestmark = pytest.mark.skipif(not os.path.exists(WEIGHTS), reason="no released weights in weights/")


def test_released_weights_reproduce_reference_outputs():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from release_weights import reference_input
    ck = load_checkpoint(WEIGHTS)
    assert os.path.getsize(WEIGHTS) <= 8 * 2**20
    assert ck["metrics"]["selected_by"] == "PublicTest" and "command" in ck
    model = models.model_from_checkpoint(ck).eval()
    ref = json.load(open(REFERENCE))
    logits = inference.predict_logits(model, reference_input())
    assert torch.allclose(logits, torch.tensor(ref["logits"]), atol=1e-4, rtol=0)


def test_predict_works_out_of_the_box(tmp_path):
    from test_predict_export import photo
    from PIL import Image
    import subprocess
    Image.fromarray(photo()).save(tmp_path / "p.png")
    r = subprocess.run([sys.executable, "predict.py", str(tmp_path / "p.png"), "--json", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["label"] in load_checkpoint(WEIGHTS)["class_names"]


def test_released_weights_call_real_happy_faces_happy(real_fer_h5, tmp_path):
    """predict.py with the shipped weights, out of the box, on the first 20 PrivateTest faces
    labelled Happy (saved as PNG, as a user's cropped faces would be): most are called Happy."""
    from PIL import Image
    import subprocess
    from dataset import H5Dataset
    x, y = H5Dataset(real_fer_h5).arrays("PrivateTest")
    happy = x[y == 3][:20]
    files = []
    for i, face in enumerate(happy):
        files.append(str(tmp_path / f"happy{i}.png"))
        Image.fromarray(face).save(files[-1])
    r = subprocess.run([sys.executable, "predict.py", *files, "--no-detect", "--json", "--no-figures"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    labels = [json.loads(l)["label"] for l in r.stdout.splitlines()]
    assert len(labels) == 20 and labels.count("Happy") >= 16, labels
