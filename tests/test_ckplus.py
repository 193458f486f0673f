import csv
import json
import os

import h5py
import numpy as np
import pytest
from PIL import Image

import ckplus
import k_fold_train
import preprocess_ckplus as pre
from conftest import REAL_DATA, run_script
from data_io import synthetic_faces

# CK+ label i draws FER expression FER_OF[i] (anger, disgust, fear, happy, sadness, surprise, neutral)
FER_OF = [0, 1, 2, 3, 4, 5, 6]


def make_ck_folder(root, subjects=14, seed=0):
    """A CK+48-style folder: S<subj>_<seq>_<frame>.png, three frames per sequence, drawn faces."""
    rng = np.random.default_rng(seed)
    faces, labels = synthetic_faces(4000, seed=seed)
    by_class = {c: list(faces[labels == FER_OF[c]]) for c in range(7)}
    for cls in pre.CK_CLASSES:
        os.makedirs(root / cls)
    for s in range(1, subjects + 1):
        for seq, c in enumerate(rng.choice(7, size=3, replace=False), start=1):
            for frame in range(3):
                img = by_class[c].pop()
                Image.fromarray(img).save(root / pre.CK_CLASSES[c] / f"S{s:03d}_{seq:03d}_{frame + 10:08d}.png")
    return root


@pytest.fixture(scope="module")
def ck_folder(tmp_path_factory):
    return make_ck_folder(tmp_path_factory.mktemp("ck") / "CK+48")


@pytest.fixture(scope="module")
def ck_h5(ck_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckh5") / "CK_data.h5"
    pre.convert(str(ck_folder), str(out))
    return str(out)


def test_preprocess_layout(ck_folder, ck_h5):
    with h5py.File(ck_h5) as h5:
        x, y = h5["data_pixel"][()], h5["data_label"][()]
        files = [f.decode() for f in h5["data_file"][()]]
        assert x.shape == (14 * 9, 48, 48) and x.dtype == np.uint8 and y.dtype == np.int64
        assert (np.diff(y) >= 0).all()  # class-ordered
        for c, cls in enumerate(pre.CK_CLASSES):
            names = [f for f, l in zip(files, y) if l == c]
            assert names == sorted(names) and all(n.startswith(cls + "/") for n in names)
        first = files[0]
        np.testing.assert_array_equal(x[0], np.asarray(Image.open(ck_folder / first)))
        subj = h5["data_subject"][()]
        assert subj[0] == int(first.split("/")[1][1:4]) and h5.attrs["dataset"] == "CK+"


def run_pre(tmp_path, src, *extra):
    out = tmp_path / "CK_data.h5"
    r = run_script(os.path.abspath("preprocess_ckplus.py"), "--src", str(src), "--out", str(out), *extra, cwd=tmp_path)
    return r, out


def copy_folder(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("case", ["missing", "unknown class", "wrong size", "rgb", "unreadable", "empty class",
                                  "bad name"])
def test_bad_inputs(tmp_path, ck_folder, case):
    src = tmp_path / "CK+48"
    if case != "missing":
        copy_folder(ck_folder, src)
    victim = src / "happy" / (sorted(os.listdir(ck_folder / "happy"))[0] if case != "missing" else "x")
    if case == "unknown class":
        os.makedirs(src / "neutral")
    elif case == "wrong size":
        Image.new("L", (64, 64)).save(victim)
    elif case == "rgb":
        Image.new("RGB", (48, 48)).save(victim)
    elif case == "unreadable":
        victim.write_bytes(b"not a png")
    elif case == "empty class":
        for f in os.listdir(src / "fear"):
            os.remove(src / "fear" / f)
    elif case == "bad name":
        os.rename(victim, src / "happy" / "face.png")
    r, out = run_pre(tmp_path, src)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error:")
    expect = {"missing": "not found", "unknown class": "'neutral'", "wrong size": "64x64",
              "rgb": "RGB", "unreadable": "unreadable", "empty class": "fear: class folder is empty",
              "bad name": "face.png"}[case]
    assert expect in line, line
    if case in ("wrong size", "rgb", "unreadable"):
        assert str(victim) in line
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_resize_converts_and_says_so(tmp_path, ck_folder):
    src = copy_folder(ck_folder, tmp_path / "CK+48")
    Image.new("RGB", (96, 96), (200, 100, 50)).save(src / "anger" / sorted(os.listdir(src / "anger"))[0])
    r, out = run_pre(tmp_path, src, "--resize")
    assert r.returncode == 0 and "1 image(s) were not 48x48 grey" in r.stdout
    with h5py.File(out) as h5:
        assert h5["data_pixel"].shape[1:] == (48, 48)


def test_subject_folds_disjoint_and_complete(ck_h5):
    data = ckplus.load_data(ck_h5)
    rec = ckplus.folds_record(data, "subject")
    subj = data.extra["data_subject"]
    tests = [np.array(f["test"]) for f in rec["folds"]]
    assert sorted(np.concatenate(tests).tolist()) == list(range(len(subj)))  # every image once
    for t in tests:
        train = np.setdiff1d(np.arange(len(subj)), t)
        assert not set(subj[t]) & set(subj[train])  # nobody in both


def test_legacy_fold_rule():
    labels = np.repeat(np.arange(7), [135, 177, 75, 207, 84, 249, 54])
    folds = ckplus.make_folds(labels, None, "legacy")
    assert [len(f) for f in folds] == [99] * 10
    assert folds[0][:12].tolist() == list(range(12))  # anger's first block
    assert folds[9][:12].tolist() == list(range(123, 135))  # fold 10: anger's last 12
    assert set(folds[8]) & set(folds[9])  # the overlap the README warns about


def test_k_fold_train_runs_resumes_and_summarises(ck_h5, tmp_path, capsys):
    args = ["--data", ck_h5, "--out", str(tmp_path), "--model", "VGG11", "--width", "0.125", "--device", "cpu",
            "--epochs", "2", "--folds", "1,2", "--lr", "0.05"]
    k_fold_train.main(args)
    s = json.load(open(tmp_path / "summary.json"))
    assert [f["fold"] for f in s["folds"]] == [1, 2] and s["protocol"] == "subject"
    pooled = []
    for k in (1, 2):
        rows = open(tmp_path / f"fold{k}" / "predictions.csv").read().splitlines()[1:]
        pooled += [r.split(",") for r in rows]
    assert s["pooled_n"] == len(pooled)
    assert s["pooled_acc"] == pytest.approx(100 * np.mean([r[1] == r[2] for r in pooled]))
    assert s["mean"] == pytest.approx(np.mean([f["acc"] for f in s["folds"]]))
    # the published statistic: each fold's best test epoch, averaged; it can only flatter the honest mean
    best = []
    for k in (1, 2):
        accs = [float(r["test_acc"]) for r in csv.DictReader(open(tmp_path / f"fold{k}" / "metrics.csv"))]
        best.append(max(accs))
        assert s["folds"][k - 1]["wall_s"] > 0
    assert s["test_selected_mean"] == pytest.approx(np.mean(best), abs=1e-3) and s["test_selected_mean"] >= s["mean"] - 1e-9
    assert s["width"] == 0.125 and s["epochs"] == 2 and s["device"].startswith("cpu")
    assert "test-selected" in open(tmp_path / "summary.md").read()
    assert os.path.exists(tmp_path / "summary.md") and os.path.exists(tmp_path / "folds.json")
    capsys.readouterr()
    k_fold_train.main(args)  # both folds finished: nothing retrained
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2


def test_dry_run_writes_folds_json(ck_h5, tmp_path):
    r = run_script("k_fold_train.py", "--dry-run", "--data", ck_h5, "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    rec = json.load(open(tmp_path / "folds.json"))
    assert rec["protocol"] == "subject" and len(rec["folds"]) == 10
    assert set(rec["folds"][0]) == {"fold", "test", "subjects"}
    assert not os.path.exists(tmp_path / "fold1")


def test_legacy_on_a_small_folder_is_a_clear_error(ck_h5, tmp_path):
    r = run_script("k_fold_train.py", "--dry-run", "--data", ck_h5, "--out", str(tmp_path), "--protocol", "legacy")
    assert r.returncode == 2 and "legacy folds index past" in r.stderr and "Traceback" not in r.stderr


def test_bad_folds_argument(ck_h5, tmp_path):
    r = run_script("k_fold_train.py", "--folds", "0,11", "--data", ck_h5, "--out", str(tmp_path))
    assert r.returncode == 2 and "--folds" in r.stderr and r.stderr.strip().count("\n") == 0


@pytest.mark.skipif(not os.path.isdir(os.path.join(REAL_DATA, "CK+48")),
                    reason="real CK+48 not available (set FER_REAL_DATA to the folder holding CK+48)")
def test_real_ckplus(tmp_path):
    labels, subjects, resized, _ = pre.convert(os.path.join(REAL_DATA, "CK+48"), str(tmp_path / "ck.h5"))
    assert len(labels) == 981 and resized == 0
    assert np.bincount(labels).tolist() == [135, 177, 75, 207, 84, 249, 54]  # label order of the original
    data = ckplus.load_data(str(tmp_path / "ck.h5"))
    legacy = ckplus.folds_record(data, "legacy")
    assert [len(f["test"]) for f in legacy["folds"]] == [99] * 10
    rec = ckplus.folds_record(data, "subject")
    tests = [np.array(f["test"]) for f in rec["folds"]]
    assert sorted(np.concatenate(tests).tolist()) == list(range(981))
    for t in tests:
        others = set(subjects[np.setdiff1d(np.arange(981), t)].tolist())
        assert not set(subjects[t].tolist()) & others
        assert 85 <= len(t) <= 115


def test_ck_table_compares_protocols(tmp_path):
    """bench/ck_table.py: one row per protocol and the legacy-minus-subject difference, from summaries."""
    def summary(protocol, accs, best, n):
        folds = [{"fold": k + 1, "acc": a, "test_selected_max": [b, 60]} for k, (a, b) in enumerate(zip(accs, best))]
        return {"arch": "VGG19", "width": 0.25, "epochs": 60, "protocol": protocol, "folds": folds,
                "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)), "pooled_acc": float(np.mean(accs)),
                "pooled_n": n, "test_selected_mean": float(np.mean(best)), "wall_s_per_fold": 390.0,
                "device": "cpu (2 cores, 1 threads)"}
    for protocol, base, n in (("subject", 85.0, 981), ("legacy", 92.0, 990)):
        (tmp_path / protocol).mkdir()
        accs = [base + k % 3 for k in range(10)]
        (tmp_path / protocol / "summary.json").write_text(json.dumps(summary(protocol, accs, [a + 1 for a in accs], n)))
    r = run_script("bench/ck_table.py", str(tmp_path / "subject"), str(tmp_path / "legacy"))
    assert r.returncode == 0, r.stderr
    assert "| subject | VGG19 | 0.25 | 60 | 85.90 +- 0.88 | 85.90 (981) | 86.90 | 6.5 |" in r.stdout
    assert "Legacy minus subject folds, VGG19 width 0.25, same recipe: +7.00 points (mean over folds)" in r.stdout
    r = run_script("bench/ck_table.py", str(tmp_path / "missing"))
    assert r.returncode != 0 and "summary.json not found" in r.stderr
