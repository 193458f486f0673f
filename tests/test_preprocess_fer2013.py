import gzip
import io
import os
import tarfile

import h5py
import numpy as np
import pytest

import preprocess_fer2013 as pre
from conftest import REAL_DATA, fer_rows, run_script, write_csv
from data_io import FER_SPLITS


def check_h5(path, rows):
    with h5py.File(path, "r") as h5:
        for s in FER_SPLITS:
            sel = [r for r in rows if r[2] == s]
            assert h5[f"{s}_pixel"].shape == (len(sel), 2304) and h5[f"{s}_pixel"].dtype == np.uint8
            assert h5[f"{s}_label"].dtype == np.int64
            np.testing.assert_array_equal(h5[f"{s}_pixel"][()], np.stack([r[1] for r in sel]))
            np.testing.assert_array_equal(h5[f"{s}_label"][()], [r[0] for r in sel])


def test_csv_roundtrip_in_small_chunks(tmp_path):
    rows = fer_rows(40)
    rows[0][1][:3] = [0, 255, 7]  # extremes and a one-digit value
    csv = write_csv(tmp_path / "fer2013.csv", rows)
    # tiny chunks force lines to straddle read boundaries
    counts, dups = pre.convert(str(csv), str(tmp_path / "data.h5"), chunk_bytes=5000)
    assert counts == {s: sum(r[2] == s for r in rows) for s in FER_SPLITS}
    check_h5(tmp_path / "data.h5", rows)


def test_crlf_and_gzip_and_tar(tmp_path):
    rows = fer_rows(12, seed=1)
    csv = write_csv(tmp_path / "fer2013.csv", rows, newline="\r\n")
    pre.convert(str(csv), str(tmp_path / "a.h5"))
    check_h5(tmp_path / "a.h5", rows)
    raw = open(csv, "rb").read()
    with gzip.open(tmp_path / "fer2013.csv.gz", "wb") as f:
        f.write(raw)
    pre.convert(str(tmp_path / "fer2013.csv.gz"), str(tmp_path / "b.h5"))
    check_h5(tmp_path / "b.h5", rows)
    with tarfile.open(tmp_path / "fer2013.tar.gz", "w:gz") as tar:  # the Kaggle archive layout
        info = tarfile.TarInfo("fer2013/README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
        tar.add(csv, arcname="fer2013/fer2013.csv")
    pre.convert(str(tmp_path / "fer2013.tar.gz"), str(tmp_path / "c.h5"))
    check_h5(tmp_path / "c.h5", rows)


def test_cli_default_paths_and_attrs(tmp_path):
    rows = fer_rows(10)
    write_csv(tmp_path / "in.csv", rows)
    r = run_script(os.path.abspath("preprocess_fer2013.py"), "--csv", "in.csv", "--out", "out/data.h5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "out/data.h5") as h5:
        assert h5.attrs["dataset"] == "FER2013" and not h5.attrs["synthetic"]


def corrupt(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


def good_line(label="3", pixels=None, usage="Training"):
    pixels = pixels if pixels is not None else " ".join(["12"] * 2304)
    return f"{label},{pixels},{usage}\n"


HEAD = "emotion,pixels,Usage\n"
BAD_INPUTS = {
    "missing": (None, "not found", "Kaggle"),
    "empty": (b"", "is empty", None),
    "header only": (HEAD, "no data rows", None),
    "wrong header": ("label,image,split\n" + good_line(), "line 1", "header"),
    "short row": (HEAD + good_line() + good_line(pixels=" ".join(["1"] * 2303)), "line 3", "2304 pixels, found 2303"),
    "long row": (HEAD + good_line(pixels=" ".join(["1"] * 2305)), "line 2", "found 2305"),
    "non-integer pixel": (HEAD + good_line() * 2 + good_line(pixels="1.5 " + " ".join(["1"] * 2303)), "line 4", "'1.5'"),
    "negative pixel": (HEAD + good_line(pixels="-3 " + " ".join(["1"] * 2303)), "line 2", "'-3'"),
    "pixel 256": (HEAD + good_line(pixels=" ".join(["1"] * 2303) + " 256"), "line 2", "out of range"),
    "pixel 1000": (HEAD + good_line(pixels="1000 " + " ".join(["1"] * 2303)), "line 2", "out of range"),
    "label 7": (HEAD + good_line() + good_line(label="7"), "line 3", "label 7"),
    "label text": (HEAD + good_line(label="happy"), "line 2", "'happy'"),
    "unknown usage": (HEAD + good_line(usage="Validation"), "line 2", "'Validation'"),
    "missing field": (HEAD + "3," + " ".join(["1"] * 2304) + "\n", "line 2", "3 fields"),
    "no PrivateTest rows": (HEAD + good_line() + good_line(usage="PublicTest"), "no PrivateTest rows", "Usage"),
    "corrupt gzip": (gzip.compress((HEAD + good_line() * 50).encode())[:300], "corrupt", None),
    "corrupt tar": (b"\x1f\x8b" + b"not really a tar at all" * 10, "corrupt", None),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_nonzero_no_output(tmp_path, case):
    content, must, also = BAD_INPUTS[case]
    name = {"corrupt gzip": "fer2013.csv.gz", "corrupt tar": "fer2013.tar.gz"}.get(case, "fer2013.csv")
    src = tmp_path / name if content is None else corrupt(tmp_path, name, content)
    out = tmp_path / "data.h5"
    out.write_bytes(b"previous good file")  # an existing output must survive a failed run
    r = run_script(os.path.abspath("preprocess_fer2013.py"), "--csv", str(src), "--out", str(out), cwd=tmp_path)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert str(src) in lines[0] and must in lines[0], lines[0]
    if also:
        assert also in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert out.read_bytes() == b"previous good file"
    assert sorted(os.listdir(tmp_path)) == sorted({name, "data.h5"} if content is not None else {"data.h5"})


def test_ferplus_majority_labels(tmp_path):
    rows = fer_rows(18, seed=3)
    csv = write_csv(tmp_path / "fer2013.csv", rows)
    votes = [[10, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral
             [0, 2, 0, 0, 0, 0, 0, 8, 0, 0],   # contempt
             [0, 0, 0, 0, 0, 0, 0, 0, 9, 1],   # unknown -> dropped
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face -> dropped
             [1, 6, 3, 0, 0, 0, 0, 0, 0, 0],   # happiness
             [0, 0, 0, 0, 7, 3, 0, 0, 0, 0]] * 3  # anger
    with open(tmp_path / "fer2013new.csv", "w") as f:
        f.write(",".join(pre.FERPLUS_HEADER) + "\n")
        for (_, _, usage), v in zip(rows, votes):
            f.write(f"{usage},fer{0:07d}.png," + ",".join(map(str, v)) + "\n")
    pre.convert(str(csv), str(tmp_path / "plus.h5"), ferplus=str(tmp_path / "fer2013new.csv"))
    expect = [0, 7, None, None, 1, 4] * 3
    from dataset import H5Dataset
    ds = H5Dataset(tmp_path / "plus.h5")
    assert ds.num_classes == 8 and ds.class_names[7] == "Contempt" and ds.name == "FER2013+"
    for s in FER_SPLITS:
        want = [e for e, r in zip(expect, rows) if r[2] == s and e is not None]
        px = [r[1] for e, r in zip(expect, rows) if r[2] == s and e is not None]
        x, y = ds.arrays(s) if want else (np.zeros((0, 48, 48)), np.zeros(0))
        assert list(y) == want
        if want:
            np.testing.assert_array_equal(x.reshape(len(want), -1), np.stack(px))


def test_synthetic_is_labelled_and_learnable_format(tmp_path):
    r = run_script(os.path.abspath("preprocess_fer2013.py"), "--synthetic", "100", "--out", "s.h5", cwd=tmp_path)
    assert r.returncode == 0 and "SYNTHETIC" in r.stdout
    with h5py.File(tmp_path / "s.h5") as h5:
        assert h5.attrs["synthetic"] and h5.attrs["dataset"] == "SYNTHETIC"
        assert h5["Training_pixel"].shape == (80, 2304)
        y = h5["Training_label"][()]
        assert set(y) <= set(range(7)) and len(set(y)) == 7


@pytest.mark.skipif(not os.path.exists(os.path.join(REAL_DATA, "fer2013.med.xz")),
                    reason="real FER2013 not available (set FER_REAL_DATA to the folder with fer2013.med.xz)")
def test_real_fer2013(tmp_path):
    tool = os.path.join(REAL_DATA, "..", "tools", "fer2013_pack.py")
    r = run_script(tool, "unpack", os.path.join(REAL_DATA, "fer2013.med.xz"), str(tmp_path / "fer2013.csv"))
    assert r.returncode == 0, r.stderr
    counts, dups = pre.convert(str(tmp_path / "fer2013.csv"), str(tmp_path / "data.h5"))
    assert counts == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    with h5py.File(tmp_path / "data.h5") as h5:
        y = h5["Training_label"][()]
        assert np.bincount(y, minlength=7).tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
