"""Data files without torch: the HDF5 layout, atomic writes, CLI errors, the synthetic set.

Preprocessing imports only this module (numpy + h5py), so it starts fast and stays small
in memory; ``dataset.py`` builds the torch side on top of it.

HDF5 layout (the original repo's keys, so its files still load):
    FER-style:  <Split>_pixel uint8 [N, 2304], <Split>_label int64 [N]   for each split
    CK+-style:  data_pixel uint8 [N, 48, 48], data_label int64 [N] (+ data_subject, data_sequence)
    attrs (ours, optional): dataset, class_names (JSON), synthetic (bool), source, duplicates (JSON),
                            split_roles (JSON, the image-folder FER2013: which split is what)
"""
import contextlib
import hashlib
import json
import os
import sys
import tempfile

import numpy as np

# what preprocess_fer2013.py writes and every FER2013 script reads by default
DEFAULT_FER = "data/data.h5"

FER_CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
FERPLUS_CLASSES = ["Neutral", "Happiness", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Contempt"]
FER_SPLITS = ("Training", "PublicTest", "PrivateTest")


class DataError(Exception):
    """Bad input data; the message is one line that names the file (and line) at fault."""


def cli_error(msg, code=2):
    """Print one clear error line and exit non-zero: how every script reports bad input."""
    msg = " ".join(str(msg).split())  # nested library messages can span lines; keep one
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(code)


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    Any exception (or a kill) leaves the old ``path`` untouched and removes the temporary
    file, so readers never see a half-written output.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def read_meta(h5):
    """Dataset name, class names and synthetic flag of an open h5py.File (defaults: FER2013)."""
    names = h5.attrs.get("class_names")
    if names is not None:
        names = json.loads(names)
    elif "data_pixel" in h5:
        names = ["anger", "disgust", "fear", "happy", "sadness", "surprise", "contempt"]
    else:
        names = list(FER_CLASSES)
    default_name = "CK+" if "data_pixel" in h5 else "FER2013"
    return {
        "dataset": str(h5.attrs.get("dataset", default_name)),
        "class_names": names,
        "synthetic": bool(h5.attrs.get("synthetic", False)),
        # what each split stands for when it is not FER2013's own (the image-folder layout)
        "split_roles": json.loads(h5.attrs["split_roles"]) if "split_roles" in h5.attrs else None,
    }


def write_meta(h5, dataset, class_names, synthetic=False, source=""):
    h5.attrs["dataset"] = dataset
    h5.attrs["class_names"] = json.dumps(list(class_names))
    h5.attrs["synthetic"] = bool(synthetic)
    h5.attrs["source"] = str(source)


# ----------------------------------------------------------------------------------------
# Duplicate images: FER2013 holds the same face under several rows, some across the splits

def row_digests(pixels):
    """uint8 images (N, ...) -> uint64 [N], a 64-bit BLAKE2 digest of each image's bytes.

    Equal images have equal digests; at 64 bits two different FER2013-sized images collide with
    probability about 1e-10 for the whole data set, so counting digests counts identical pixels.
    """
    rows = np.ascontiguousarray(pixels).reshape(len(pixels), -1)
    return np.frombuffer(b"".join(hashlib.blake2b(r.tobytes(), digest_size=8).digest() for r in rows),
                         dtype="<u8").copy()


def duplicate_summary(digests, labels):
    """Identical images, counted on pixels: {split: uint64 digests}, {split: labels} -> a JSON-able dict.

    copies: images identical to an earlier one (all splits together); groups: distinct images
    that occur more than once; label_conflicts: such groups whose copies carry different labels;
    across: for each pair of splits, how many distinct images appear in both.
    """
    names = list(digests)
    d = np.concatenate([digests[s] for s in names])
    y = np.concatenate([labels[s] for s in names]).astype(np.int64)
    split = np.concatenate([np.full(len(digests[s]), i) for i, s in enumerate(names)])
    uniq, inv, count = np.unique(d, return_inverse=True, return_counts=True)
    present = np.zeros((len(uniq), len(names)), bool)
    present[inv, split] = True
    lo = np.full(len(uniq), np.iinfo(np.int64).max)
    hi = np.full(len(uniq), np.iinfo(np.int64).min)
    np.minimum.at(lo, inv, y)
    np.maximum.at(hi, inv, y)
    return {"images": int(len(d)), "copies": int(len(d) - len(uniq)), "groups": int((count > 1).sum()),
            "label_conflicts": int(((count > 1) & (lo != hi)).sum()),
            "across": {f"{a}+{b}": int((present[:, i] & present[:, j]).sum())
                       for i, a in enumerate(names) for j, b in enumerate(names) if i < j}}


def format_duplicates(dups):
    across = ", ".join(f"{k} {v}" for k, v in dups["across"].items())
    return (f"duplicates (identical pixels): {dups['copies']} of {dups['images']} images repeat another "
            f"({dups['groups']} images occur more than once, {dups['label_conflicts']} of them with different "
            f"labels); images in two splits: {across}")


# ----------------------------------------------------------------------------------------
# Synthetic faces: a stand-in for FER2013 in smoke runs and tests (never reported as FER).

# per class: brow tilt (+ = inner ends down), brow height, eye open, mouth curve (+ = smile),
# mouth open, mouth width, nose wrinkle
_EXPRESSIONS = np.array([
    # tilt  brow  eye  curve  open  width  wrinkle
    [0.9, -1.0, 0.6, -0.3, 0.0, 1.0, 0.0],   # Angry
    [0.5, -0.6, 0.5, -0.8, 0.2, 0.8, 1.0],   # Disgust
    [-0.7, 1.0, 1.4, -0.2, 0.6, 0.8, 0.0],   # Fear
    [0.0, 0.0, 0.8, 1.0, 0.3, 1.3, 0.0],     # Happy
    [-0.9, 0.3, 0.7, -1.0, 0.0, 0.9, 0.0],   # Sad
    [0.0, 1.5, 1.5, 0.0, 1.3, 0.7, 0.0],     # Surprise
    [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0],     # Neutral
], dtype=np.float32)


def synthetic_faces(n, seed=0, size=48):
    """Draw ``n`` grey ``size`` x ``size`` cartoon faces, labels uniform over the 7 FER classes.

    Each expression is a parameter vector (brows, eyes, mouth) perturbed per image, with
    random pose, scale, lighting and noise, so the task is learnable but not trivial.
    Returns (pixels uint8 [n, size, size], labels int64 [n]). Vectorised over images.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    p = _EXPRESSIONS[labels] + rng.normal(0, 0.25, (n, 7)).astype(np.float32)
    tilt, brow, eye, curve, mopen, mwidth, wrinkle = [p[:, i, None, None] for i in range(7)]

    def r(lo, hi):  # one random scalar per image, broadcastable over (n, H, W)
        return rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)

    s = r(0.85, 1.1) * size / 48.0
    cx, cy = size / 2 + r(-3, 3), size / 2 + r(-2, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    X, Y = (xx[None] - cx) / s, (yy[None] - cy) / s  # face coordinates, (n, H, W)

    img = np.broadcast_to(r(20, 120), (n, size, size)).copy()  # background
    skin = r(130, 220)
    head = (X / 17) ** 2 + (Y / 21) ** 2 < 1
    img = np.where(head, skin, img)
    dark = skin - r(70, 120)

    def stroke(mask, level):
        nonlocal img
        img = np.where(mask, level, img)

    for side in (-1, 1):  # eyes and brows
        ex, ey = side * 7.0, -4.0
        stroke(((X - ex) / 3.2) ** 2 + ((Y - ey) / (1.3 * eye)) ** 2 < 1, dark)
        # brow: a thick segment whose inner end moves down by `tilt`
        t = np.clip((X - ex) * side / 4.5, -1, 1)  # position along the brow, -1 inner .. 1 outer
        by = ey - 4.5 - 1.5 * brow + tilt * 1.8 * (-t)
        stroke((np.abs(Y - by) < 1.0) & (np.abs(X - ex) < 4.5), dark)
    # nose, with optional wrinkle lines for disgust
    stroke((np.abs(X) < 0.8) & (Y > -2) & (Y < 5), skin - 40)
    stroke((wrinkle > 0.5) & (np.abs(Y - 1.0) < 0.6) & (np.abs(X) > 1.5) & (np.abs(X) < 4.5), dark)
    # mouth: a parabola y = my - curve * k * x^2, opened as an ellipse underneath
    mw = 6.0 * mwidth
    my = 10.0 + 0.8 * curve
    inside = np.abs(X) < mw
    lip = my - curve * 2.8 * (1 - (X / np.maximum(mw, 1)) ** 2) * -1
    stroke(inside & (np.abs(Y - lip) < 1.0), dark)
    stroke((X / np.maximum(mw * 0.8, 1)) ** 2 + ((Y - my - 1.5 * mopen) / np.maximum(2.5 * mopen, 0.1)) ** 2 < 1,
           dark * 0.6)

    img = img * r(0.7, 1.2) + r(-25, 25) + rng.normal(0, 10, (n, size, size)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), labels.astype(np.int64)
