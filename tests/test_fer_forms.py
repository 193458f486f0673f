"""FER2013 as people have it on disk: icml_face_data.csv, the competition zip, the image folders."""
import io
import json
import os
import tarfile
import zipfile

import h5py
import numpy as np
import pytest
from PIL import Image

import preprocess_fer2013 as pre
from conftest import REAL_DATA, fer_rows, run_script, write_csv
from data_io import FER_CLASSES, FER_SPLITS, duplicate_summary, row_digests
from dataset import H5Dataset

SCRIPT = os.path.abspath("preprocess_fer2013.py")


def split_arrays(path):
    with h5py.File(path, "r") as h5:
        return {s: (h5[f"{s}_pixel"][()], h5[f"{s}_label"][()]) for s in FER_SPLITS}


def assert_same_arrays(a, b):
    a, b = split_arrays(a), split_arrays(b)
    for s in FER_SPLITS:
        np.testing.assert_array_equal(a[s][0], b[s][0])
        np.testing.assert_array_equal(a[s][1], b[s][1])


def write_icml(path, rows, pixel_sep=","):
    """icml_face_data.csv: header 'emotion, Usage, pixels' (spaces, another column order)."""
    with open(path, "w", newline="") as f:
        f.write("emotion, Usage, pixels\n")
        for label, px, usage in rows:
            f.write(f"{label},{usage}{pixel_sep}{' '.join(map(str, px))}\n")
    return path


def expect_refusal(tmp_path, *args, must=()):
    """Run the script; it must print one error line containing ``must`` and write nothing."""
    out = tmp_path / "refused.h5"
    r = run_script(SCRIPT, *args, "--out", str(out), cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for m in must:
        assert m in lines[0], lines[0]
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    return lines[0]


@pytest.fixture(scope="module")
def rows():
    return fer_rows(40, seed=5)


@pytest.fixture(scope="module")
def reference(rows, tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    csv = write_csv(d / "fer2013.csv", rows)
    pre.convert(str(csv), str(d / "ref.h5"))
    return d


@pytest.mark.parametrize("pixel_sep", [",", ", "])
def test_icml_face_data_gives_the_same_arrays(tmp_path, rows, reference, pixel_sep):
    src = write_icml(tmp_path / "icml_face_data.csv", rows, pixel_sep)
    counts, _ = pre.convert(str(src), str(tmp_path / "icml.h5"), chunk_bytes=3000)
    assert counts == {s: sum(r[2] == s for r in rows) for s in FER_SPLITS}
    assert_same_arrays(tmp_path / "icml.h5", reference / "ref.h5")


def test_any_column_order_and_spaced_label(tmp_path, rows, reference):
    with open(tmp_path / "mine.csv", "w") as f:
        f.write(" Usage ,pixels, Emotion\n")
        for label, px, usage in rows:
            f.write(f"{usage},{' '.join(map(str, px))}, {label}\n")
    pre.convert(str(tmp_path / "mine.csv"), str(tmp_path / "mine.h5"))
    assert_same_arrays(tmp_path / "mine.h5", reference / "ref.h5")


def competition_zip(path, rows, reference, members=("fer2013.tar.gz", "icml_face_data.csv", "train.csv",
                                                    "test.csv", "example_submission.csv")):
    """The Kaggle competition download, with whichever of its files ``members`` names."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for m in members:
            if m == "fer2013.tar.gz":
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                    tar.add(reference / "fer2013.csv", arcname="fer2013/fer2013.csv")
                z.writestr(m, buf.getvalue())
            elif m == "icml_face_data.csv":
                z.writestr(m, write_icml(path.parent / "_icml.csv", rows).read_bytes())
            elif m == "train.csv":
                z.writestr(m, "emotion,pixels\n" + "".join(f"{r[0]},{' '.join(map(str, r[1]))}\n" for r in rows))
            elif m == "test.csv":
                z.writestr(m, "pixels\n" + "".join(f"{' '.join(map(str, r[1]))}\n" for r in rows))
            else:
                z.writestr(m, "emotion\n0\n")
    return path


@pytest.mark.parametrize("members", [
    ("fer2013.tar.gz", "icml_face_data.csv", "train.csv", "test.csv", "example_submission.csv"),
    ("icml_face_data.csv", "train.csv"),
    ("fer2013.tar.gz", "test.csv"),  # the CSV only inside the tar inside the zip
], ids=["full", "icml-only", "nested-tar"])
def test_competition_zip(tmp_path, rows, reference, members):
    z = competition_zip(tmp_path / "challenge.zip", rows, reference, members)
    r = run_script(SCRIPT, "--csv", str(z), "--out", str(tmp_path / "z.h5"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "duplicates (identical pixels)" in r.stdout
    assert_same_arrays(tmp_path / "z.h5", reference / "ref.h5")


def test_zip_without_a_usable_csv(tmp_path, rows, reference):
    z = competition_zip(tmp_path / "challenge.zip", rows, reference, ("train.csv", "test.csv"))
    line = expect_refusal(tmp_path, "--csv", str(z), must=(str(z), "fer2013.csv or icml_face_data.csv", "train.csv"))
    assert "Traceback" not in line


def test_zip_whose_tar_holds_no_csv(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("fer2013/README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with zipfile.ZipFile(tmp_path / "challenge.zip", "w") as z:
        z.writestr("fer2013.tar.gz", buf.getvalue())
    expect_refusal(tmp_path, "--csv", str(tmp_path / "challenge.zip"), must=("fer2013.tar.gz", "README", "icml_face_data.csv"))


def test_zip_of_image_folders_points_to_images(tmp_path):
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as z:
        z.writestr("train/angry/im0.png", b"x")
        z.writestr("test/angry/im0.png", b"x")
    expect_refusal(tmp_path, "--csv", str(tmp_path / "archive.zip"), must=("archive.zip", "image-folder", "--images"))


@pytest.mark.parametrize("name,header,what", [
    ("train.csv", "emotion,pixels", "only the Training rows"),
    ("test.csv", "pixels", "without labels"),
    ("example_submission.csv", "emotion", "submission template"),
])
def test_partial_competition_files_name_the_one_that_works(tmp_path, name, header, what):
    (tmp_path / name).write_text(header + "\n" + "0\n")
    expect_refusal(tmp_path, "--csv", str(tmp_path / name), must=(name, what, "icml_face_data.csv"))


def test_duplicates_counted_on_pixels_across_splits(tmp_path):
    rows = fer_rows(30, seed=2)
    train = [i for i, r in enumerate(rows) if r[2] == "Training"]
    public = [i for i, r in enumerate(rows) if r[2] == "PublicTest"]
    private = [i for i, r in enumerate(rows) if r[2] == "PrivateTest"]
    rows[train[1]] = (rows[train[0]][0], rows[train[0]][1].copy(), "Training")  # a copy inside Training
    rows[public[0]] = ((rows[train[0]][0] + 1) % 7, rows[train[0]][1].copy(), "PublicTest")  # and in PublicTest, relabelled
    rows[private[0]] = (rows[public[1]][0], rows[public[1]][1].copy(), "PrivateTest")
    src = write_csv(tmp_path / "fer2013.csv", rows)
    r = run_script(SCRIPT, "--csv", str(src), "--out", str(tmp_path / "d.h5"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "d.h5") as h5:
        dups = json.loads(h5.attrs["duplicates"])
    assert dups == {"images": 30, "copies": 3, "groups": 2, "label_conflicts": 1,
                    "across": {"Training+PublicTest": 1, "Training+PrivateTest": 0, "PublicTest+PrivateTest": 1}}
    assert "3 of 30 images repeat another" in r.stdout


def test_duplicate_summary_by_hand():
    x = np.zeros((5, 4), np.uint8)
    x[1, 0] = x[3, 0] = 1  # rows 0, 2, 4 are one image, rows 1, 3 another
    digests = row_digests(x)
    assert digests.dtype == np.uint64 and len(set(digests.tolist())) == 2
    d = duplicate_summary({"a": digests[:2], "b": digests[2:]}, {"a": np.array([0, 1]), "b": np.array([0, 1, 2])})
    assert d == {"images": 5, "copies": 3, "groups": 2, "label_conflicts": 1, "across": {"a+b": 2}}


# ----------------------------------------------------------------------------------------
# The image-folder FER2013

FOLDER_NAMES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def image_folders(root, n_train=6, n_test=3, seed=0):
    """train/<class>/*.png and test/<class>/*.jpg|png: returns {split: [(label, pixels)]} as written."""
    rng = np.random.default_rng(seed)
    written = {"train": [], "test": []}
    for split, n in (("train", n_train), ("test", n_test)):
        for label, cls in enumerate(FOLDER_NAMES):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                px = rng.integers(0, 256, (48, 48)).astype(np.uint8)
                Image.fromarray(px).save(d / f"{split[:2]}_{i:05d}.png")  # PNG: lossless, so arrays compare
                written[split].append((label, px))
    return written


def test_image_folders_become_a_fer_layout_file(tmp_path):
    written = image_folders(tmp_path / "fer")
    (tmp_path / "fer" / "train" / "happy").rename(tmp_path / "fer" / "train" / "HAPPY")  # case does not matter
    r = run_script(SCRIPT, "--images", str(tmp_path / "fer"), "--val-fraction", "0.25", "--seed", "3",
                   "--out", str(tmp_path / "f.h5"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "NOT comparable" in r.stdout and "duplicates (identical pixels): 0 of 63" in r.stdout
    ds = H5Dataset(tmp_path / "f.h5")
    assert ds.name == "FER2013-folders" and ds.class_names == FER_CLASSES and not ds.synthetic
    assert set(ds.split_roles) == set(FER_SPLITS) and "seed 3" in ds.split_roles["PublicTest"]
    (xt, yt), (xv, yv), (xp, yp) = ds.arrays("Training"), ds.arrays("PublicTest"), ds.arrays("PrivateTest")
    # the validation split is stratified (6 per class x 0.25 -> 1-2 per class, 11 in all) and seeded
    assert len(yv) == 11 and set(yv.tolist()) == set(range(7)) and len(yt) == 42 - 11
    # every train/ image is in exactly one of Training / PublicTest, with its label; test/ is PrivateTest whole
    train_px = {w[1].tobytes(): w[0] for w in written["train"]}
    got = [(x.tobytes(), y) for x, y in zip(np.concatenate([xt, xv]), np.concatenate([yt, yv]))]
    assert sorted(got) == sorted(train_px.items())
    test_px = sorted((w[1].tobytes(), w[0]) for w in written["test"])
    assert sorted((x.tobytes(), y) for x, y in zip(xp, yp)) == test_px
    with h5py.File(tmp_path / "f.h5") as h5:
        assert h5.attrs["val_seed"] == 3 and h5.attrs["val_fraction"] == 0.25
        assert all(f.startswith(b"train/") for f in h5["PublicTest_file"][()])
    # the same seed gives the same split; another seed another one
    pre.convert_folders(str(tmp_path / "fer"), str(tmp_path / "g.h5"), 0.25, seed=3)
    pre.convert_folders(str(tmp_path / "fer"), str(tmp_path / "h.h5"), 0.25, seed=4)
    with h5py.File(tmp_path / "f.h5") as f, h5py.File(tmp_path / "g.h5") as g, h5py.File(tmp_path / "h.h5") as h:
        assert list(f["PublicTest_file"][()]) == list(g["PublicTest_file"][()])
        assert list(f["PublicTest_file"][()]) != list(h["PublicTest_file"][()])


def test_image_folder_duplicates_and_resize(tmp_path):
    image_folders(tmp_path / "fer", n_train=4, n_test=2)
    src = tmp_path / "fer" / "train" / "angry" / "tr_00000.png"
    Image.open(src).save(tmp_path / "fer" / "test" / "sad" / "copy.png")  # a train face in test, relabelled
    Image.fromarray(np.full((64, 64, 3), 80, np.uint8)).save(tmp_path / "fer" / "test" / "fear" / "big.jpg")
    expect_refusal(tmp_path, "--images", str(tmp_path / "fer"), must=("big.jpg", "64x64", "--resize"))
    counts, dups, resized = pre.convert_folders(str(tmp_path / "fer"), str(tmp_path / "f.h5"), 0.25, resize=True)
    assert resized == 1 and counts["PrivateTest"] == 16
    assert dups["copies"] == 1 and dups["label_conflicts"] == 1
    assert dups["across"]["Training+PrivateTest"] + dups["across"]["PublicTest+PrivateTest"] == 1


@pytest.mark.parametrize("case", ["unknown class", "empty class", "unreadable", "wrong size", "missing class",
                                  "no test folder", "bad fraction"])
def test_image_folder_bad_input(tmp_path, case):
    root = tmp_path / "fer"
    image_folders(root, n_train=3, n_test=2)
    args, must = ["--images", str(root)], []
    if case == "unknown class":
        (root / "test" / "contempt").mkdir()
        must = [str(root / "test" / "contempt"), "unknown class folder 'contempt'"]
    elif case == "empty class":
        for f in (root / "train" / "fear").iterdir():
            f.unlink()
        must = [str(root / "train" / "fear"), "empty"]
    elif case == "unreadable":
        (root / "train" / "sad" / "broken.jpg").write_bytes(b"not an image")
        must = [str(root / "train" / "sad" / "broken.jpg"), "unreadable"]
    elif case == "wrong size":
        Image.new("L", (40, 48)).save(root / "test" / "happy" / "small.png")
        must = [str(root / "test" / "happy" / "small.png"), "40x48", "48x48"]
    elif case == "missing class":
        for f in (root / "test" / "neutral").iterdir():
            f.unlink()
        (root / "test" / "neutral").rmdir()
        must = [str(root / "test"), "'neutral' is missing"]
    elif case == "no test folder":
        import shutil
        shutil.rmtree(root / "test")
        must = [str(root / "test"), "not found"]
    else:
        args += ["--val-fraction", "1.5"]
        must = ["--val-fraction 1.5"]
    expect_refusal(tmp_path, *args, must=must)


def test_training_on_folders_says_the_splits_are_not_fer2013s(tmp_path):
    image_folders(tmp_path / "fer", n_train=5, n_test=2)
    pre.convert_folders(str(tmp_path / "fer"), str(tmp_path / "f.h5"), 0.2)
    r = run_script(os.path.abspath("mainpro_FER.py"), "--data", str(tmp_path / "f.h5"), "--model", "VGG11",
                   "--width", "0.125", "--epochs", "1", "--bs", "16", "--amp", "none", "--out", str(tmp_path / "run"),
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "image-folder FER2013" in r.stdout and "not comparable with FER2013's own PrivateTest" in r.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset"] == "FER2013-folders" and "test/" in summary["split_roles"]["PrivateTest"]


# ----------------------------------------------------------------------------------------
# The real FER2013 in the other forms

@pytest.mark.skipif(not os.path.exists(os.path.join(REAL_DATA, "fer2013.med.xz")),
                    reason="real FER2013 not available (set FER_REAL_DATA to the folder with fer2013.med.xz)")
def test_real_fer2013_as_icml_and_as_image_folders(tmp_path, real_fer_h5):
    ref = split_arrays(real_fer_h5)
    rows = [(int(y), x, s) for s in FER_SPLITS for x, y in zip(ref[s][0], ref[s][1])]
    # icml_face_data.csv holds the rows in file order; split-grouped order gives the same split arrays
    write_icml(tmp_path / "icml_face_data.csv", rows)
    counts, dups = pre.convert(str(tmp_path / "icml_face_data.csv"), str(tmp_path / "icml.h5"))
    assert counts == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert_same_arrays(tmp_path / "icml.h5", real_fer_h5)
    os.remove(tmp_path / "icml_face_data.csv")
    # the image-folder layout: train/ = Training, test/ = PublicTest + PrivateTest
    for k, (label, px, s) in enumerate(rows):
        d = tmp_path / "fer" / ("train" if s == "Training" else "test") / FOLDER_NAMES[label]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(px.reshape(48, 48)).save(d / f"{k:05d}.png")
    counts, fdups, _ = pre.convert_folders(str(tmp_path / "fer"), str(tmp_path / "f.h5"), 0.1)
    assert counts == {"Training": 25838, "PublicTest": 2871, "PrivateTest": 7178}
    got = split_arrays(tmp_path / "f.h5")

    def bag(*pairs):  # images with labels, as a sorted multiset
        return sorted((x.tobytes(), int(y)) for p in pairs for x, y in zip(p[0].reshape(len(p[0]), -1), p[1]))
    assert bag(got["Training"], got["PublicTest"]) == bag(ref["Training"])
    assert bag(got["PrivateTest"]) == bag(ref["PublicTest"], ref["PrivateTest"])
    assert fdups["copies"] == dups["copies"] and fdups["label_conflicts"] == dups["label_conflicts"]


def locate_in(tmp_path, *files):
    """`preprocess_fer2013.py --locate` run where data/ holds ``files`` (name -> writer)."""
    r = run_script(SCRIPT, "--locate", cwd=tmp_path)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


@pytest.mark.parametrize("form", ["fer2013.csv", "icml_face_data.csv", "fer2013.csv.gz", "fer2013.tar.gz",
                                  "renamed competition zip", "renamed csv", "image folders", "nested image folders"])
def test_any_form_in_data_is_found_and_read_without_arguments(tmp_path, rows, reference, form):
    """No --csv: the script takes what is in data/, says which, and gives the same arrays; run.sh
    asks the same question (--locate)."""
    import gzip
    import shutil
    data = tmp_path / "data"
    data.mkdir()
    (data / "README.md").write_text("data goes here\n")
    (data / "fer2013new.csv").write_text("Usage,Image name,neutral\n")  # FER+ votes: never a source
    kind, expect = "csv", None
    if form == "fer2013.csv":
        expect = shutil.copy(reference / "fer2013.csv", data / "fer2013.csv")
    elif form == "icml_face_data.csv":
        expect = write_icml(data / "icml_face_data.csv", rows)
    elif form == "fer2013.csv.gz":
        expect = data / "fer2013.csv.gz"
        expect.write_bytes(gzip.compress((reference / "fer2013.csv").read_bytes()))
    elif form == "fer2013.tar.gz":
        expect = data / "fer2013.tar.gz"
        with tarfile.open(expect, "w:gz") as tar:
            tar.add(reference / "fer2013.csv", arcname="fer2013/fer2013.csv")
    elif form == "renamed competition zip":  # a browser's "(1)" suffix; found by its members
        expect = data / "challenges-in-representation-learning (1).zip"
        os.replace(competition_zip(tmp_path / "c.zip", rows, reference), expect)
    elif form == "renamed csv":
        expect = shutil.copy(reference / "fer2013.csv", data / "faces_download.csv")
    else:
        kind = "images"
        expect = data if form == "image folders" else data / "fer2013"
        image_folders(expect, n_train=10, n_test=2)
    rc, out, err = locate_in(tmp_path)
    assert rc == 0 and out == f"{kind} {os.path.relpath(expect, tmp_path)}", (out, err)
    r = run_script(SCRIPT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"found FER2013 as {'the image-folder tree' if kind == 'images' else 'a CSV source'}: " in r.stdout
    h5 = tmp_path / ("data/data_folders.h5" if kind == "images" else "data/data.h5")
    assert h5.exists() and not (tmp_path / "data" / ("data.h5" if kind == "images" else "data_folders.h5")).exists()
    if kind == "csv":
        assert_same_arrays(h5, reference / "ref.h5")


def test_no_fer2013_in_data_says_what_it_looked_for_and_an_unreadable_one_stops(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "fer2013new.csv").write_text("Usage,Image name,neutral\n")
    rc, out, err = locate_in(tmp_path)
    assert rc == 1 and out == "" and "no FER2013 in data/" in err and "icml_face_data.csv" in err
    r = run_script(SCRIPT, cwd=tmp_path)
    assert r.returncode == 2 and "looked for" in r.stderr and r.stderr.strip().count("\n") == 0
    (data / "download.zip").write_bytes(b"PK\x03\x04 truncated")  # looks like a source, cannot be read
    rc, out, err = locate_in(tmp_path)
    assert rc == 2 and err.count("\n") == 0 and "download.zip" in err and "none could be read" in err
