"""HDF5-backed data sets: FER2013-style split files and the CK+ file, as uint8 tensors.

The whole split is small (28,709 x 48 x 48 bytes = 66 MB), so it is loaded once and kept on
the training device as uint8; batches are index slices of it and all augmentation is batched
tensor ops (``transforms/``). No DataLoader, no per-sample Python in the hot path.
"""
import functools
import os

import h5py
import numpy as np
import torch

from data_io import DEFAULT_FER, DataError, read_meta  # noqa: F401 (DEFAULT_FER: the scripts import it from here)


HINTS = {
    "FER": "run `python preprocess_fer2013.py` (needs data/fer2013.csv), or "
           "`python preprocess_fer2013.py --synthetic 3000 --out data/synthetic.h5` for drawn faces",
    "CK+": "run `python preprocess_ckplus.py` (needs the CK+48 folder in data/CK+48)",
}


class H5Dataset:
    """One of our HDF5 files: ``splits`` names its splits, ``arrays``/``load`` read them.

    FER-style files hold ``<Split>_pixel`` [N, 2304] / ``<Split>_label``; the CK+ file holds a
    single split ``data`` ([N, 48, 48]) that folds index into, plus subject/sequence ids.
    """

    def __init__(self, path, kind="FER"):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise DataError(f"{self.path} not found: {HINTS.get(kind, '')}")
        try:
            with h5py.File(self.path, "r") as h5:
                self.meta = read_meta(h5)
                self.splits = [k[:-len("_pixel")] for k in h5 if k.endswith("_pixel") and k[:-6] + "_label" in h5]
                self.extra = {k: h5[k][()] for k in ("data_subject", "data_sequence") if k in h5}
        except OSError as e:
            raise DataError(f"{self.path}: not a readable HDF5 file ({e})") from None
        if not self.splits:
            raise DataError(f"{self.path}: no <split>_pixel/<split>_label pairs; {HINTS.get(kind, '')}")
        self.class_names = self.meta["class_names"]
        self.num_classes = len(self.class_names)
        self.name = self.meta["dataset"]
        self.synthetic = self.meta["synthetic"]
        self.split_roles = self.meta["split_roles"]

    def arrays(self, split):
        """(pixels uint8 [N, 48, 48], labels int64 [N]) as numpy, checked."""
        if split not in self.splits:
            raise DataError(f"{self.path}: no split {split!r}; it has {', '.join(self.splits)}")
        with h5py.File(self.path, "r") as h5:
            x = np.asarray(h5[f"{split}_pixel"], dtype=np.uint8)
            y = np.asarray(h5[f"{split}_label"], dtype=np.int64)
        if x.ndim == 2:  # FER layout: flat rows of 2304
            side = int(round(x.shape[1] ** 0.5))
            x = x.reshape(len(x), side, side)
        if len(x) != len(y):
            raise DataError(f"{self.path}: {split} has {len(x)} images but {len(y)} labels")
        if len(y) == 0:
            raise DataError(f"{self.path}: split {split} has no images; re-create the file with rows of every split")
        if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            raise DataError(f"{self.path}: {split} labels outside 0-{self.num_classes - 1}")
        return x, y

    def load(self, split, device="cpu", indices=None):
        """(x uint8 tensor (N, 1, 48, 48), y int64 tensor (N,)) on ``device``, optionally a subset."""
        x, y = self.arrays(split)
        if indices is not None:
            x, y = x[indices], y[indices]
        return to_tensors(x, y, device)

    def seen_in(self, split, other="Training"):
        """bool numpy [N]: the rows of ``split`` whose pixels occur, byte for byte, in ``other``.

        FER2013 has 288 PrivateTest rows with an identical copy in Training; a model that
        memorises Training gains on them, so accuracy is also reported without them.
        """
        seen = {row.tobytes() for row in self.arrays(other)[0]}
        return np.array([row.tobytes() in seen for row in self.arrays(split)[0]], dtype=bool)

    def eval_sets(self, device="cpu", tune=False):
        """(evals, subsets) for ``engine.fit``: PublicTest and PrivateTest (PublicTest only with
        ``tune``, so choosing a setting never reads PrivateTest), and PrivateTest_dedup, the
        PrivateTest rows not seen in Training, scored from PrivateTest's own predictions."""
        splits = ("PublicTest",) if tune else ("PublicTest", "PrivateTest")
        evals = {s: self.load(s, device) for s in splits if s in self.splits}
        subsets = {}
        if "PrivateTest" in evals and "Training" in self.splits:
            keep = torch.from_numpy(np.flatnonzero(~self.seen_in("PrivateTest")))
            subsets[DEDUP] = ("PrivateTest", keep)
        return evals, subsets


# PrivateTest without the images that also occur in Training (identical pixels)
DEDUP = "PrivateTest_dedup"


@functools.lru_cache(maxsize=4)
def _unseen_private(path):
    data = H5Dataset(path)
    return data.arrays("PrivateTest")[1], np.flatnonzero(~data.seen_in("PrivateTest"))


def honest_scores(run_dir):
    """A finished run's accuracies at its selected epoch (summary.json's ``honest``), with
    PrivateTest_dedup added for runs that predate it: rescored from the PrivateTest predictions
    saved in best.pth against the run's own data file (None where either is missing)."""
    import json

    from utils import load_checkpoint
    with open(os.path.join(run_dir, "summary.json")) as f:
        honest = json.load(f)["honest"]
    if DEDUP in honest or "PrivateTest" not in honest:
        return honest
    honest = dict(honest, **{DEDUP: None})
    best = os.path.join(run_dir, "best.pth")
    if not os.path.exists(best):
        return honest
    ck = load_checkpoint(best)
    pred, path = (ck.get("predictions") or {}).get("PrivateTest"), ck.get("args", {}).get("data")
    if pred is None or not path or not os.path.isfile(path):
        return honest
    y, keep = _unseen_private(os.path.realpath(path))
    if len(pred) == len(y):
        honest[DEDUP] = 100.0 * float((pred.numpy()[keep] == y[keep]).mean())
    return honest


def data_of(ck, given=None):
    """The H5Dataset to score or fine-tune checkpoint ``ck`` on: ``given`` (a --data flag), else the
    file its run trained on, else DEFAULT_FER."""
    return H5Dataset(given or ck.get("args", {}).get("data") or DEFAULT_FER)


def to_tensors(x, y, device="cpu"):
    x = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1).to(device)  # (N, 1, 48, 48) uint8
    return x, torch.from_numpy(np.asarray(y, np.int64)).to(device)
