"""Confusion matrix and per-class report of a trained model (10-crop, as in training).

    python plot_confusion_matrix.py --model VGG19 --split PrivateTest     # checkpoints/FER2013_VGG19/best.pth
    python plot_confusion_matrix.py --checkpoint checkpoints/FER2013_VGG19_pruned/best.pth --split PublicTest
    python plot_confusion_matrix.py --dataset CK+ --model VGG19           # 10 folds pooled, saved predictions

Saves <name>_confusion.png (row-normalised, with counts) and <name>_report.json (scikit-learn
precision/recall/F1 per class and macro-F1) next to the checkpoint and prints the report.
"""
import argparse
import csv
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import classification_report, confusion_matrix  # noqa: E402

import config  # noqa: E402
import inference  # noqa: E402
from data_io import DataError, cli_error  # noqa: E402


def fer_predictions(args):
    import models
    from dataset import DEFAULT_FER, H5Dataset, data_of
    from utils import check_classes, load_checkpoint, pick_device
    path = args.checkpoint
    if not path:  # the training script's default folder, named after the data set (FER2013, FER2013+, ...)
        name = H5Dataset(args.data or DEFAULT_FER).name
        path = os.path.join(config.default_out(name, models.canonical_name(args.model)), "best.pth")
    ck = load_checkpoint(path)
    data = data_of(ck, args.data)
    check_classes(ck["class_names"], path, data.class_names, data.path)
    device = pick_device(args.device)
    x, y = data.load(args.split, device)
    model, dtype, precision, nhwc = inference.scoring_model(ck, path, device)  # as the run evaluated in training
    logits = inference.predict_logits(model, x, config.eval_batch_size(args.eval_bs, x.device), "tencrop", dtype, nhwc)
    pred = logits.argmax(1).cpu().numpy()
    title = f"{ck['arch']} on {data.name} {args.split} (10-crop {precision}, epoch {ck.get('epoch')})"
    stem = os.path.join(os.path.dirname(os.path.abspath(path)), f"{args.split}")
    return y.cpu().numpy(), pred, ck["class_names"], title, stem


def ck_predictions(args):
    import models
    from ckplus import N_FOLDS
    from preprocess_ckplus import CK_CLASSES
    root = args.checkpoint or config.default_out("CK+", models.canonical_name(args.model), args.protocol)
    y, p = [], []
    for k in range(1, N_FOLDS + 1):
        f = os.path.join(root, f"fold{k}", "predictions.csv")
        if not os.path.exists(f):
            raise DataError(f"{f} not found: run `python k_fold_train.py --protocol {args.protocol}` first "
                            "(all 10 folds are needed for the pooled matrix)")
        with open(f) as fh:
            rows = list(csv.DictReader(fh))
        y += [int(r["label"]) for r in rows]
        p += [int(r["pred"]) for r in rows]
    with open(os.path.join(root, "fold1", "config.json")) as fh:  # what was trained, for the title
        run = json.load(fh)["args"]
    title = (f"CK+ {run['model']} width {run.get('width', 1.0):g}, {run['protocol']} folds, "
             f"pooled (10-crop, last epoch)")
    return np.array(y), np.array(p), CK_CLASSES, title, os.path.join(root, "pooled")


def plot(y, pred, names, title, png):
    labels = list(range(len(names)))
    cm = confusion_matrix(y, pred, labels=labels)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    acc = 100.0 * np.trace(cm) / max(cm.sum(), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in labels:
        for j in labels:
            ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(labels, names, rotation=45, ha="right")
    ax.set_yticks(labels, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {acc:.2f}%", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return cm, acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="FER2013", choices=("FER2013", "CK+"), help="(default: FER2013)")
    ap.add_argument("--model", default="VGG19", metavar="NAME", help="finds the default checkpoint (default: VGG19)")
    ap.add_argument("--checkpoint", metavar="PATH", help="FER: a .pth file; CK+: the protocol folder")
    ap.add_argument("--split", default="PrivateTest", metavar="NAME", help="FER split (default: PrivateTest)")
    ap.add_argument("--protocol", default="subject", choices=("subject", "legacy"), help="CK+ folds (default: subject)")
    ap.add_argument("--data", metavar="FILE", help="HDF5 file (default: the one the model trained on)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="(default: auto)")
    config.add_eval_bs_arg(ap)
    args = ap.parse_args(argv)
    try:
        y, pred, names, title, stem = (ck_predictions if args.dataset == "CK+" else fer_predictions)(args)
        png, js = stem + "_confusion.png", stem + "_report.json"
        cm, acc = plot(y, pred, names, title, png)
        report = classification_report(y, pred, labels=list(range(len(names))), target_names=names,
                                       output_dict=True, zero_division=0)
        with open(js, "w") as f:
            json.dump({"title": title, "accuracy": acc, "n": int(len(y)), "confusion": cm.tolist(),
                       "report": report}, f, indent=2)
        print(classification_report(y, pred, labels=list(range(len(names))), target_names=names, digits=3,
                                    zero_division=0))
        print(f"accuracy {acc:.2f}% over {len(y)} images | macro-F1 {report['macro avg']['f1-score']:.3f}")
        print(f"wrote {png}\nwrote {js}")
    except (DataError, ValueError) as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
