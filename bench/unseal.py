"""Read the PrivateTest of `--tune` runs once their recipe is committed: the last step of a choice.

    python bench/unseal.py RUN [RUN ...] [--data H5] [--device DEV]

A run trained with `mainpro_FER.py --tune` never scored PrivateTest, so a setting can be chosen on
PublicTest alone (bench/ingredients.py). Once the choice is written down and committed, this scores
each run's selected checkpoint (best.pth: the epoch PublicTest chose) on PrivateTest with 10 crops
in the run's own precision, as the training loop would have, and on PrivateTest without the images
that also occur in Training; both go into the run's summary.json ("honest", beside PublicTest) with
the time they were read, so bench/seed_table.py reads the run like any other. A run whose summary
already holds PrivateTest is refused: a test split is read once.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from common import ROOT  # noqa: F401  (puts the repository root on sys.path)

import inference
from dataset import DEDUP, data_of
from data_io import DataError
from utils import check_classes, load_checkpoint, pick_device, write_json


def unseal(run, data=None, device="cpu"):
    """The run's PrivateTest and PrivateTest_dedup at its selected epoch, written into summary.json."""
    summary_path, best = os.path.join(run, "summary.json"), os.path.join(run, "best.pth")
    for f in (summary_path, best):
        if not os.path.isfile(f):
            sys.exit(f"unseal: {f} not found (a finished mainpro_FER.py --tune run has both)")
    with open(summary_path) as f:
        summary = json.load(f)
    if "PrivateTest" in summary.get("honest", {}):
        sys.exit(f"unseal: {summary_path} already holds PrivateTest; a test split is read once")
    ck = load_checkpoint(best)
    ds = data_of(ck, data)
    check_classes(ck["class_names"], best, ds.class_names, ds.path)
    x, y = ds.load("PrivateTest", device)  # (N, 1, 48, 48) uint8, (N,)
    model, dtype, precision, nhwc = inference.scoring_model(ck, best, device)
    pred = inference.evaluate(model, x, y, dtype=dtype, channels_last=nhwc)["pred"].numpy()
    right = pred == y.cpu().numpy()
    unseen = ~ds.seen_in("PrivateTest")
    scores = {"PrivateTest": 100.0 * float(right.mean()), DEDUP: 100.0 * float(right[unseen].mean())}
    summary["honest"] = {**summary["honest"], **scores}
    summary["unsealed"] = {"at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "epoch": ck.get("epoch"),
                           "precision": precision, "data": os.path.abspath(ds.path)}
    write_json(summary, summary_path)
    return scores, int(np.count_nonzero(unseen))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN", help="folders of finished mainpro_FER.py --tune runs")
    ap.add_argument("--data", metavar="H5", help="(default: the file each run trained on)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="(default: auto)")
    args = ap.parse_args()
    device = pick_device(args.device)
    for run in args.runs:
        try:
            scores, n = unseal(run, args.data, device)
        except DataError as e:
            sys.exit(f"unseal: {e}")
        print(f"{run}: PrivateTest {scores['PrivateTest']:.3f}, without Training's duplicates "
              f"{scores[DEDUP]:.3f} ({n} images)")


if __name__ == "__main__":
    main()
