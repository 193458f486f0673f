import json
import os

import numpy as np
import torch

import inference
import mainpro_FER
import models
import plot_confusion_matrix
from conftest import run_script
from data_io import FER_CLASSES
from dataset import H5Dataset
from utils import load_checkpoint


def test_confusion_png_and_report_match_a_direct_computation(synthetic_h5, tmp_path):
    mainpro_FER.main(["--data", synthetic_h5, "--out", str(tmp_path), "--model", "VGG11", "--width", "0.125",
                      "--device", "cpu", "--epochs", "2", "--eval-every", "2"])
    plot_confusion_matrix.main(["--checkpoint", str(tmp_path / "best.pth"), "--split", "PublicTest", "--device", "cpu"])
    png, js = tmp_path / "PublicTest_confusion.png", tmp_path / "PublicTest_report.json"
    assert png.stat().st_size > 20_000 and open(png, "rb").read(4) == b"\x89PNG"
    rep = json.load(open(js))
    x, y = H5Dataset(synthetic_h5).load("PublicTest")
    cm = np.array(rep["confusion"])
    assert cm.sum() == len(y) == rep["n"]
    model = models.model_from_checkpoint(load_checkpoint(tmp_path / "best.pth"))
    pred = inference.predict_logits(model, x).argmax(1)
    direct = np.zeros_like(cm)
    np.add.at(direct, (y.numpy(), pred.numpy()), 1)
    assert (cm == direct).all()
    assert abs(rep["accuracy"] - 100 * (pred == y).double().mean().item()) < 1e-9
    assert "macro avg" in rep["report"]


def test_bad_inputs_are_one_line(tmp_path, synthetic_h5):
    r = run_script("plot_confusion_matrix.py", "--checkpoint", str(tmp_path / "none.pth"))
    assert r.returncode == 2 and "not found" in r.stderr and r.stderr.strip().count("\n") == 0
    m = models.build_model("VGG11", cfg=[8, "M", 8, "M", 8, "M", 8, "M", 8, "M"])
    torch.save({"arch": "VGG11", "cfg": m.cfg, "num_classes": 7, "net": m.state_dict(), "class_names": FER_CLASSES,
                "args": {"data": synthetic_h5}}, tmp_path / "m.pth")
    r = run_script("plot_confusion_matrix.py", "--checkpoint", str(tmp_path / "m.pth"), "--split", "Validation")
    assert r.returncode == 2 and "no split 'Validation'" in r.stderr and "Traceback" not in r.stderr
    r = run_script("plot_confusion_matrix.py", "--dataset", "CK+", "--checkpoint", str(tmp_path))
    assert r.returncode == 2 and "fold1" in r.stderr and "k_fold_train.py" in r.stderr
    assert not os.path.exists(tmp_path / "pooled_confusion.png")


def test_ck_pooled_matrix_reads_every_fold(tmp_path):
    """The CK+ figure pools the ten folds' saved predictions and names the run that made them."""
    rng = np.random.default_rng(0)
    ys, ps = [], []
    for k in range(1, 11):
        d = tmp_path / f"fold{k}"
        d.mkdir()
        y, p = rng.integers(0, 7, 9), rng.integers(0, 7, 9)
        ys.append(y)
        ps.append(p)
        (d / "predictions.csv").write_text("index,label,pred\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in enumerate(zip(y, p))))
        (d / "config.json").write_text(json.dumps({"args": {"model": "Resnet18", "width": 0.25, "protocol": "legacy"}}))
    plot_confusion_matrix.main(["--dataset", "CK+", "--checkpoint", str(tmp_path)])
    rep = json.load(open(tmp_path / "pooled_report.json"))
    y, p = np.concatenate(ys), np.concatenate(ps)
    assert rep["n"] == 90 and abs(rep["accuracy"] - 100 * (y == p).mean()) < 1e-9
    assert np.array(rep["confusion"]).sum() == 90 and np.trace(rep["confusion"]) == (y == p).sum()
    assert "Resnet18 width 0.25, legacy folds" in rep["title"]
    assert os.path.exists(tmp_path / "pooled_confusion.png")


def ck_classed_copy(checkpoint, path):
    """The checkpoint relabelled with CK+'s classes: 7 outputs, other meanings."""
    from preprocess_ckplus import CK_CLASSES
    from utils import save_checkpoint
    ck = load_checkpoint(checkpoint)
    ck["class_names"] = list(CK_CLASSES)
    save_checkpoint(ck, path)
    return str(path)


def test_a_checkpoint_of_other_classes_is_refused_naming_both(tiny_checkpoint, synthetic_h5, tmp_path):
    other = ck_classed_copy(tiny_checkpoint, tmp_path / "ck" / "best.pth")
    r = run_script("plot_confusion_matrix.py", "--checkpoint", other, "--data", synthetic_h5, "--device", "cpu")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "'anger'" in r.stderr and "'Angry'" in r.stderr
    assert not any(f.endswith((".png", ".json")) for f in os.listdir(tmp_path / "ck"))


def test_a_teacher_of_other_classes_is_refused(tiny_checkpoint, synthetic_h5, tmp_path):
    teacher = ck_classed_copy(tiny_checkpoint, tmp_path / "teacher.pth")
    r = run_script("fer_vgg_prune.py", "--checkpoint", tiny_checkpoint, "--teacher", teacher, "--data", synthetic_h5,
                   "--out", str(tmp_path / "ft"), "--epochs", "1", "--device", "cpu")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--teacher" in r.stderr and "'anger'" in r.stderr and "'Angry'" in r.stderr
    assert not os.path.exists(tmp_path / "ft")
