"""torchrun with 2 CPU processes (gloo): one set of outputs, exact gathered evaluation."""
import csv
import glob
import os
import subprocess
import sys

import pytest
import torch

import inference
import k_fold_train
import models
import preprocess_fer2013
from conftest import ROOT
from dataset import H5Dataset
from utils import load_checkpoint


@pytest.fixture(scope="module")
def odd_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("odd") / "s.h5"
    preprocess_fer2013.write_synthetic(str(path), 710, seed=1)  # 71-image test splits: uneven shards
    return str(path)


def test_torchrun_two_processes(odd_h5, tmp_path):
    out = tmp_path / "ddp"
    torchrun(["mainpro_FER.py", "--data", odd_h5, "--out", str(out), "--model", "VGG11", "--width", "0.125",
              "--device", "cpu", "--epochs", "2", "--recipe", "fast"], tmp_path / "logs")
    reports = [open(p).read().count("by PublicTest") for p in glob.glob(str(tmp_path / "logs" / "**" / "stdout.log"),
                                                                       recursive=True)]
    assert sorted(reports) == [0, 1]  # only rank 0 reports
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # the gathered 10-crop evaluation equals a single-process evaluation of the saved weights
    ck = load_checkpoint(out / "last.pth")
    assert ck["epoch"] == 2
    model = models.model_from_checkpoint(ck)
    for split in ("PublicTest", "PrivateTest"):
        x, y = H5Dataset(odd_h5).load(split)
        ev = inference.evaluate(model, x, y)
        if rows[-1][f"{split}_acc"] == "":  # PrivateTest is scored only when PublicTest improves
            continue
        assert abs(ev["acc"] - float(rows[-1][f"{split}_acc"])) < 1e-3
        assert torch.equal(ev["pred"], ck["predictions"][split])
    assert not any(k.startswith("module.") for k in ck["net"])


def torchrun(args, logs, timeout=600):
    """Run torchrun with 2 CPU processes; on failure the message carries every rank's own output
    (torchrun --log-dir/--tee) with Python's faulthandler traceback of the rank that crashed."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "--log-dir", str(logs), "--tee", "3", *args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, PYTHONFAULTHANDLER="1", TQDM_DISABLE="1"))
    if r.returncode != 0:
        per_rank = [f"--- {p} ---\n" + open(p, errors="replace").read()[-2500:]
                    for p in sorted(glob.glob(os.path.join(logs, "**", "std*.log"), recursive=True))]
        raise AssertionError(f"torchrun exit {r.returncode}\n" + "\n".join(per_rank) + "\n--- torchrun ---\n"
                             + r.stderr[-1500:])
    return r


def test_torchrun_resume_equals_uninterrupted(odd_h5, tmp_path):
    """Each process gets its own random streams back on resume (not rank 0's), so a resumed
    two-process run is the uninterrupted one, bit for bit."""
    def run(out, epochs, *extra):
        torchrun(["mainpro_FER.py", "--data", odd_h5, "--out", str(out), "--model", "VGG11", "--width", "0.125",
                  "--device", "cpu", "--epochs", str(epochs), "--erase", "0.5", *extra],  # step lr: no stretch
                 tmp_path / f"logs_{out.name}_{epochs}")
        return load_checkpoint(out / "last.pth")
    a = run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    b = run(tmp_path / "b", 2, "--resume")
    assert len(b["rng_per_rank"]) == 2
    assert not torch.equal(b["rng_per_rank"][0]["augment"], b["rng_per_rank"][1]["augment"])
    for k in a["net"]:
        assert torch.equal(a["net"][k], b["net"][k]), k


def test_k_fold_spreads_folds_over_devices(tmp_path):
    from test_ckplus import make_ck_folder
    import preprocess_ckplus
    folder = make_ck_folder(tmp_path / "CK+48")
    preprocess_ckplus.convert(str(folder), str(tmp_path / "ck.h5"))
    k_fold_train.main(["--data", str(tmp_path / "ck.h5"), "--out", str(tmp_path / "out"), "--model", "VGG11",
                       "--width", "0.125", "--epochs", "1", "--folds", "1,2", "--gpus", "cpu,cpu"])
    for k in (1, 2):
        assert os.path.exists(tmp_path / "out" / f"fold{k}" / "predictions.csv")
    assert os.path.exists(tmp_path / "out" / "summary.json")


def test_gpus_argument_errors():
    with pytest.raises(Exception, match="--gpus"):
        k_fold_train.parse_gpus("a,b")
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="does not exist"):
            k_fold_train.parse_gpus("0")
