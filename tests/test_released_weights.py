"""The shipped weights still compute what they computed when released."""
import json
import os
import sys

import pytest
import torch

import inference
import models
from conftest import ROOT, run_script
from utils import load_checkpoint

WEIGHTS = os.path.join(ROOT, "weights", "fer2013_vgg19_slim.pth")
INT8 = os.path.join(ROOT, "weights", "fer2013_vgg19_slim.int8.onnx")
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


@pytest.mark.skipif(not os.path.exists(INT8), reason="no released int8 ONNX in weights/")
def test_released_int8_onnx_reproduces_reference_outputs():
    """int8 kernels may round differently on another CPU (VNNI or not): same classes, logits close."""
    import onnxruntime as ort
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from predict import OrtModule
    from release_weights import reference_input
    ref = json.load(open(REFERENCE))["int8_onnx"]
    assert ref["file"] == os.path.basename(INT8) and os.path.getsize(INT8) <= 2**20
    sess = ort.InferenceSession(INT8, providers=["CPUExecutionProvider"])
    logits = inference.predict_logits(OrtModule(sess), reference_input())
    want = torch.tensor(ref["logits"])
    assert (logits.argmax(1) == want.argmax(1)).all() and (logits - want).abs().max() < 0.1
    # and it is the shipped network, quantised: its classes agree with the fp32 weights
    fp32 = json.load(open(REFERENCE))["logits"]
    assert (want.argmax(1) == torch.tensor(fp32).argmax(1)).float().mean() >= 0.75


def test_predict_works_out_of_the_box(tmp_path):
    from test_predict_export import photo
    from PIL import Image
    Image.fromarray(photo()).save(tmp_path / "p.png")
    r = run_script("predict.py", str(tmp_path / "p.png"), "--json", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["label"] in load_checkpoint(WEIGHTS)["class_names"]


@pytest.mark.parametrize("runtime", ["pytorch", "int8 onnx"])
def test_released_weights_call_real_happy_faces_happy(real_fer_h5, tmp_path, runtime):
    """predict.py with the shipped weights (PyTorch, and the shipped int8 ONNX), out of the box, on
    the first 20 PrivateTest faces labelled Happy (saved as PNG, as a user's cropped faces would
    be): most are called Happy."""
    if runtime == "int8 onnx" and not os.path.exists(INT8):
        pytest.skip("no released int8 ONNX in weights/")
    extra = ["--onnx", INT8] if runtime == "int8 onnx" else []
    from PIL import Image
    from dataset import H5Dataset
    x, y = H5Dataset(real_fer_h5).arrays("PrivateTest")
    happy = x[y == 3][:20]
    files = []
    for i, face in enumerate(happy):
        files.append(str(tmp_path / f"happy{i}.png"))
        Image.fromarray(face).save(files[-1])
    r = run_script("predict.py", *files, "--no-detect", "--json", "--no-figures", *extra)
    assert r.returncode == 0, r.stderr
    labels = [json.loads(l)["label"] for l in r.stdout.splitlines()]
    assert len(labels) == 20 and labels.count("Happy") >= 16, labels
