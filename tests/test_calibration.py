"""calibration.py's measures on hand-checked cases, and calibrate.py end to end."""
import json
import os

import numpy as np
import pytest
import torch

import calibration as C
from conftest import run_script
from utils import load_checkpoint


def test_ece_nll_brier_on_hand_computed_cases():
    # two faces at confidence 0.9 (one right), two at 0.6 (both right): bins (0.53,0.6] and (0.87,0.93]
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    # |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4
    assert C.ece(probs, labels) == pytest.approx(0.4)
    assert C.nll(probs, labels) == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.6])))
    # Brier: (0.01+0.01) + (0.81+0.81) + (0.16+0.16) + (0.16+0.16) over 4
    assert C.brier(probs, labels) == pytest.approx((0.02 + 1.62 + 0.32 + 0.32) / 4)
    perfect = np.eye(3)[[0, 1, 2, 1]]
    assert C.ece(perfect, np.array([0, 1, 2, 1])) == 0 and C.brier(perfect, np.array([0, 1, 2, 1])) == 0
    lo, hi = C.bootstrap_interval(C.ece, probs, labels, n=200)
    assert 0 <= lo <= hi <= 1


def test_temperature_recovers_a_known_miscalibration():
    """Labels drawn from softmax(z); a model reporting 3 z is over-confident by exactly 3: T = 3."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 7, generator=g) * 1.5
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    t = C.fit_temperature(3 * z, labels)
    assert t == pytest.approx(3.0, rel=0.05)
    y = labels.numpy()
    before, after = C.scores(C.probabilities(3 * z, 1.0), y), C.scores(C.probabilities(3 * z, t), y)
    assert after["ece"] < 0.02 < before["ece"] and after["nll"] < before["nll"]
    assert after["acc"] == before["acc"]  # dividing by T never changes the predicted class


def test_calibrate_stores_t_and_every_consumer_applies_it(tiny_checkpoint, synthetic_h5, tmp_path):
    import shutil

    import export_onnx
    import predict
    ck_path = tmp_path / "best.pth"
    shutil.copy(tiny_checkpoint, ck_path)
    onnx_path = tmp_path / "m.onnx"
    export_onnx.export(load_checkpoint(ck_path), str(onnx_path))
    fig = tmp_path / "rel.png"
    r = run_script("calibrate.py", "--checkpoint", str(ck_path), "--data", synthetic_h5, "--onnx", str(onnx_path),
                   "--figure", str(fig), "--bootstrap", "50")
    assert r.returncode == 0, r.stderr[-2000:]
    cal = load_checkpoint(ck_path)["calibration"]
    t = cal["temperature"]
    assert t > 0 and cal["fitted_on"] == "PublicTest" and fig.exists()
    assert "| before | 1.000 |" in r.stdout and f"| after | {t:.3f} |" in r.stdout
    # the logits, the weights' contract, are untouched
    old, new = load_checkpoint(tiny_checkpoint), load_checkpoint(ck_path)
    assert all(torch.equal(old["net"][k], new["net"][k]) for k in old["net"])
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    for clf in (predict.Classifier(str(ck_path)), predict.Classifier(onnx=str(onnx_path))):
        assert clf.temperature == pytest.approx(t)
        x = torch.from_numpy(faces).unsqueeze(1)
        import inference
        model = clf.model if clf.model is not None else predict.OrtModule(clf.session)
        logits = inference.predict_logits(model, x, 16, "tencrop", getattr(clf, "dtype", None),
                                          getattr(clf, "channels_last", False))
        np.testing.assert_allclose(clf(faces), torch.softmax(logits / t, 1).numpy(), atol=1e-5)
    # an export made after calibration carries T too
    again = tmp_path / "again.onnx"
    export_onnx.export(load_checkpoint(ck_path), str(again))
    assert predict.Classifier(onnx=str(again)).temperature == pytest.approx(t)
    # a bad --onnx stops before anything is written
    before = os.path.getmtime(ck_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    r = run_script("calibrate.py", "--checkpoint", str(ck_path), "--data", synthetic_h5, "--onnx", str(bad),
                   "--bootstrap", "10")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "bad.onnx" in r.stderr
    assert os.path.getmtime(ck_path) == before
    assert json.loads(json.dumps(cal))  # plain values only: loadable with weights_only
