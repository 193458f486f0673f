"""CK+ folds and the per-fold training shared by mainpro_CK+.py and k_fold_train.py.

Protocols
    legacy   the original repo's rule, reproduced exactly: per class a fixed block of consecutive
             images is the test fold (12, 18, 9, 21, 9, 24, 6 images of anger..contempt); fold 10
             takes each class's last images. Subjects appear in training and test of every fold,
             fold 10 overlaps fold 9, fear's block of fold 9 runs into the first happy images, and
             some images are never tested: kept only to compare with published numbers.
    subject  (default) 10 folds split by subject with scikit-learn's StratifiedGroupKFold: no
             person in both training and test, classes as even as subjects allow, every image
             tested exactly once.
No test-set selection: a fold's accuracy is its last epoch's.
"""
import argparse
import csv
import os

import numpy as np

import config
import engine
from data_io import DataError
from dataset import H5Dataset, to_tensors
from utils import load_checkpoint, pick_device, seed_everything

N_FOLDS = 10
LEGACY_TEST_PER_CLASS = [12, 18, 9, 21, 9, 24, 6]  # anger, disgust, fear, happy, sadness, surprise, contempt
PUBLISHED_CK = dict(config.PUBLISHED_FER, epochs=60, decay_start=20, decay_every=1, decay_rate=0.8)
RECIPES = {"published": PUBLISHED_CK}
PROTOCOLS = ("subject", "legacy")


def make_folds(labels, subjects, protocol="subject", seed=0):
    """List of 10 sorted arrays of test indices into data_pixel."""
    labels = np.asarray(labels)
    if protocol == "legacy":
        counts = np.bincount(labels, minlength=len(LEGACY_TEST_PER_CLASS))
        if (np.diff(labels) < 0).any():
            raise DataError("legacy folds need class-ordered data (as preprocess_ckplus.py writes)")
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        folds = []
        for fold in range(1, N_FOLDS + 1):
            idx = []
            for c, t in enumerate(LEGACY_TEST_PER_CLASS):
                if fold != N_FOLDS:
                    idx += range(starts[c] + (fold - 1) * t, starts[c] + fold * t)
                else:  # the original takes the last t images of the class for fold 10
                    idx += range(starts[c] + counts[c] - t, starts[c] + counts[c])
            folds.append(np.array(sorted(idx)))
        if max(f.max() for f in folds) >= len(labels):
            raise DataError(f"legacy folds index past the {len(labels)} images: the rule only fits the real "
                            "CK+48 class sizes (use --protocol subject)")
        return folds
    if protocol == "subject":
        from sklearn.model_selection import StratifiedGroupKFold
        if len(np.unique(subjects)) < N_FOLDS:
            raise DataError(f"subject folds need at least {N_FOLDS} subjects, found {len(np.unique(subjects))}")
        sgkf = StratifiedGroupKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
        return [np.sort(test) for _, test in sgkf.split(np.zeros(len(labels)), labels, groups=subjects)]
    raise DataError(f"--protocol {protocol}: choose from {', '.join(PROTOCOLS)}")


def folds_record(data, protocol, seed=0):
    x, y = data.arrays("data")
    subjects = data.extra.get("data_subject")
    if subjects is None:
        if protocol == "subject":
            raise DataError(f"{data.path} has no data_subject ids (an original-repo file?); rerun "
                            "preprocess_ckplus.py, or use --protocol legacy")
        subjects = np.full(len(y), -1)
    folds = make_folds(y, subjects, protocol, seed)
    return {"protocol": protocol, "seed": seed, "n_images": int(len(y)),
            "folds": [{"fold": k + 1, "test": f.tolist(), "subjects": sorted(set(subjects[f].tolist()))}
                      for k, f in enumerate(folds)]}


def parse_folds(text):
    try:
        folds = sorted({int(s) for s in str(text).split(",") if s.strip()})
    except ValueError:
        raise DataError(f"--folds {text!r}: expected comma-separated fold numbers like 1,2,3") from None
    bad = [f for f in folds if not 1 <= f <= N_FOLDS]
    if bad or not folds:
        raise DataError(f"--folds {text!r}: fold numbers must be 1-{N_FOLDS}")
    return folds


def out_root(args):
    return args.out or config.default_out("CK+", args.model, args.protocol)


def train_fold(data, record, fold, args, log=print):
    """Train and test one fold in ``<root>/fold<k>``; returns the fold's summary."""
    root = out_root(args)
    fold_dir = os.path.join(root, f"fold{fold}")
    run = config.resolve_args(args, RECIPES, fold_dir)  # a new namespace: the fold's own record
    arch = run.model  # a resumed fold's own architecture
    run = argparse.Namespace(**{**vars(run), "fold": fold})
    if run.data and not config.same_file(run.data, data.path):
        raise DataError(f"{fold_dir} was trained on {run.data}, not {data.path}; resume with that file "
                        "or start a new --out")
    device = pick_device(run.device)
    seed_everything(run.seed + fold)
    x, y = data.arrays("data")
    test = np.asarray(record["folds"][fold - 1]["test"])
    train = np.setdiff1d(np.arange(len(y)), test)
    model = config.build_model_from_args(run, data.num_classes).to(device)
    info = config.model_info(model, arch, data, fold=fold, protocol=record["protocol"])
    log(f"CK+ {record['protocol']} fold {fold}: train {len(train)}, test {len(test)} | {arch} on "
        f"{engine.describe_device(device)} | out {fold_dir}")
    summary = engine.fit(model, to_tensors(x[train], y[train], device), {"test": to_tensors(x[test], y[test], device)},
                         run, info, select=None, log=log)
    pred = load_checkpoint(os.path.join(fold_dir, "best.pth"))["predictions"]["test"].numpy()
    with open(os.path.join(fold_dir, "predictions.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "pred"])
        w.writerows(zip(test.tolist(), y[test].tolist(), pred.tolist()))
    return summary


def load_data(path):
    return H5Dataset(path or "data/CK_data.h5", kind="CK+")
