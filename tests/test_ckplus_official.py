"""The official CK+ distribution (cohn-kanade-images/ + Emotion/) read into the CK+48 form."""
import os

import cv2
import h5py
import numpy as np
import pytest
from PIL import Image

import ckplus
import preprocess_ckplus as pre
from conftest import run_script
from data_io import synthetic_faces

SCRIPT = os.path.abspath("preprocess_ckplus.py")
# official code -> the FER expression drawn for it (contempt borrows Neutral's face)
DRAWN = {1: 0, 2: 6, 3: 1, 4: 2, 5: 3, 6: 4, 7: 5}


def frame(face, x0, y0, colour):
    """A 640x490 studio frame with the face pasted at (x0, y0), 192 px wide; some are colour."""
    canvas = np.full((490, 640), 90, np.uint8)
    canvas[y0:y0 + 192, x0:x0 + 192] = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
    return np.stack([canvas, canvas // 2 + 40, canvas], -1) if colour else canvas


def make_official(root, subjects=12, seed=0, blank_last=None):
    """cohn-kanade-images/S<s>/<q>/S<s>_<q>_<frame>.png (5 frames) and Emotion/S<s>/<q>/*_emotion.txt
    for the labelled sequences; returns {(subject, sequence): (code, face box)} of the labelled ones."""
    rng = np.random.default_rng(seed)
    faces, labels = synthetic_faces(600, seed=seed)
    labelled = {}
    for s in range(1, subjects + 1):
        for q in (1, 2, 3):
            code = int(rng.integers(1, 8))
            face = faces[np.flatnonzero(labels == DRAWN[code])[s * 3 + q]]
            x0, y0 = int(rng.integers(150, 300)), int(rng.integers(60, 200))
            d = root / "cohn-kanade-images" / f"S{s:03d}" / f"{q:03d}"
            d.mkdir(parents=True)
            for k in range(1, 6):
                img = frame(face, x0, y0, colour=(s % 3 == 0))
                if blank_last == (s, q) and k == 5:
                    img = np.full_like(img, 90)  # the face left the picture: no detection here
                Image.fromarray(img).save(d / f"S{s:03d}_{q:03d}_{k:08d}.png")
            if q == 3:
                continue  # unlabelled sequence, as 266 of the real 593 are
            e = root / "Emotion" / f"S{s:03d}" / f"{q:03d}"
            e.mkdir(parents=True)
            (e / f"S{s:03d}_{q:03d}_00000005_emotion.txt").write_text(f"   {code:.7e}\n")
            labelled[(s, q)] = (code, face, (x0, y0))
    return labelled


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckoff") / "CK+"
    return root, make_official(root, blank_last=(2, 1))


def test_official_layout_becomes_ck48_form(official, tmp_path):
    root, labelled = official
    r = run_script(SCRIPT, "--src", str(root), "--out", str(tmp_path / "ck.h5"), "--save-crops",
                   str(tmp_path / "CK+48"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"official CK+: {len(labelled)} labelled sequences" in r.stdout
    with h5py.File(tmp_path / "ck.h5") as h5:
        x, y = h5["data_pixel"][()], h5["data_label"][()]
        subj, seq = h5["data_subject"][()], h5["data_sequence"][()]
        files = [f.decode() for f in h5["data_file"][()]]
    assert x.shape == (3 * len(labelled), 48, 48) and x.dtype == np.uint8 and (np.diff(y) >= 0).all()
    for i, name in enumerate(files):
        s, q, k = (int(v) for v in os.path.basename(name)[1:-4].split("_"))
        code, face, _ = labelled[(s, q)]
        assert k in (3, 4, 5) and (subj[i], seq[i]) == (s, q)  # the last three of five frames
        assert pre.CK_CLASSES[y[i]] == pre.OFFICIAL_CODES[code] and name.startswith(pre.OFFICIAL_CODES[code] + "/")
        if "S002_001_00000005" not in name:  # the blank frame: checked below
            assert x[i].std() > 10, name  # a face, not the plain background
    # the frame without a face took its sequence's box: still a face crop, not the grey background
    blank = files.index(next(f for f in files if "S002_001_00000005" in f))
    assert x[blank].std() < 1  # the blank frame cropped at the face's place is uniform grey...
    assert x[files.index(next(f for f in files if "S002_001_00000004" in f))].std() > 10  # ...its neighbour a face
    # the saved crops are a CK+48 folder that reads back to the same arrays
    labels2, _, _, none = pre.convert(str(tmp_path / "CK+48"), str(tmp_path / "again.h5"))
    assert none is None
    with h5py.File(tmp_path / "again.h5") as h5:
        np.testing.assert_array_equal(h5["data_pixel"][()], x)
        assert [f.decode() for f in h5["data_file"][()]] == files
    folds = ckplus.make_folds(y, subj, "subject")  # subject folds work on it
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))


def oracle(grey):
    """A detector that knows where the face was pasted: the box of the non-background pixels."""
    ys, xs = np.nonzero(grey != grey[0, 0])  # the studio background is one flat value
    if len(ys) < 100:
        return []
    return [(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))]


def test_crops_are_the_faces_at_the_box_found(official, tmp_path):
    """With the box known exactly, each crop must be the pasted face itself, frame by frame."""
    root, labelled = official
    labels, subjects, _, n = pre.convert(str(root), str(tmp_path / "ck.h5"), detector=oracle)
    assert n == len(labelled)
    with h5py.File(tmp_path / "ck.h5") as h5:
        x, files = h5["data_pixel"][()], [f.decode() for f in h5["data_file"][()]]
    for img, name in zip(x, files):
        s, q, _ = (int(v) for v in os.path.basename(name)[1:-4].split("_"))
        face = labelled[(s, q)][1].astype(float)
        if "S002_001_00000005" in name:  # no face in this frame: its sequence's box, so plain background
            assert img.std() < 1
            continue
        corr = np.corrcoef(face.ravel(), img.astype(float).ravel())[0, 1]
        assert corr > 0.9, (name, corr)


def break_tree(root, case):
    first = root / "Emotion" / "S001" / "001"
    if case == "code 9":
        next(first.iterdir()).write_text("   9.0000000e+00\n")
        return [str(first), "9.0000000e+00", "1-7"]
    if case == "text code":
        next(first.iterdir()).write_text("happy\n")
        return [str(first), "'happy'"]
    if case == "two emotion files":
        (first / "S001_001_00000004_emotion.txt").write_text("1\n")
        return [str(first), "2 emotion files"]
    if case == "no frames":
        for f in (root / "cohn-kanade-images" / "S004" / "002").iterdir():
            f.unlink()
        return [str(root / "cohn-kanade-images" / "S004" / "002"), "no frames"]
    if case == "no face":
        for f in sorted((root / "cohn-kanade-images" / "S005" / "001").iterdir())[-3:]:
            Image.fromarray(np.full((490, 640), 90, np.uint8)).save(f)
        return ["S005_001_00000005.png", "no face found"]
    if case == "no Emotion folder":
        import shutil
        shutil.rmtree(root / "Emotion")
        return ["cohn-kanade-images", "no Emotion/"]
    if case == "unreadable frame":
        (root / "cohn-kanade-images" / "S003" / "001" / "S003_001_00000005.png").write_bytes(b"junk")
        return ["S003_001_00000005.png", "unreadable"]
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["code 9", "text code", "two emotion files", "no frames", "no face",
                                  "no Emotion folder", "unreadable frame"])
def test_official_bad_input(tmp_path, case):
    root = tmp_path / "CK+"
    make_official(root, subjects=5, seed=1)
    must = break_tree(root, case)
    out = tmp_path / "ck.h5"
    r = run_script(SCRIPT, "--src", str(root), "--out", str(out), "--save-crops", str(tmp_path / "crops"), cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for m in must:
        assert m in lines[0], lines[0]
    assert not out.exists() and not (tmp_path / "crops").exists()
