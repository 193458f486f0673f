"""Training curves from metrics.csv, and the pruning comparison figure.

    python plot_curves.py checkpoints/FER2013_VGG19 [more run folders]      # -> <run>/curves.png
    python plot_curves.py --prune checkpoints/FER2013_VGG19_pruned [...]    # -> pruning_comparison.png

Curves: training loss and every test loss per epoch; train and test accuracies with the lr on a
second axis. Pruning: accuracy (fine-tuned if available, else before fine-tuning) against
parameters and against CPU latency (1 face x 10 crops, measured now) for the unpruned model and
each pruned folder; and the histogram of the parent's prunable |gamma| with each pruning
threshold marked (sparsity training should leave a clear mass near zero).
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from data_io import DataError, cli_error  # noqa: E402
from utils import read_metrics  # noqa: E402


def num(rows, key):
    pts = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_run(run):
    path = os.path.join(run, "metrics.csv")
    if not os.path.exists(path):
        raise DataError(f"{path} not found: is {run} a training output folder?")
    rows = read_metrics(path)
    if not rows:
        raise DataError(f"{path} has no epochs yet")
    splits = [k[:-4] for k in rows[0] if k.endswith("_acc") and k != "train_acc"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    # the training loss is the optimised one (label smoothing, distillation if any); the test
    # losses are plain cross-entropy of the 10-crop averaged logits, so the two are not comparable
    a.plot(*num(rows, "train_loss"), label="train (optimised loss)")
    for s in splits:
        a.plot(*num(rows, f"{s}_loss"), marker=".", label=f"{s} (cross-entropy, 10-crop)")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(*num(rows, "train_acc"), label="train")
    for s in splits:
        b.plot(*num(rows, f"{s}_acc"), marker=".", label=f"{s} (10-crop)")
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy %")
    b.legend(loc="lower right")
    lr = b.twinx()
    lr.plot(*num(rows, "lr"), color="grey", ls="--", lw=1)
    lr.set_ylabel("lr", color="grey")
    fig.suptitle(os.path.basename(os.path.abspath(run)))
    fig.tight_layout()
    out = os.path.join(run, "curves.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_prune(folders, split="PrivateTest"):
    import models
    from utils import face_latency_fn, latency_ms, load_checkpoint
    points, gammas, thresholds = [], None, []
    for d in folders:
        rp = os.path.join(d, "prune_report.json")
        if not os.path.exists(rp):
            raise DataError(f"{rp} not found: run prune_vgg.py/prune_resnet.py with --save {d} first")
        with open(rp) as f:
            r = json.load(f)
        if r.get("threshold") is not None:  # --target-macs prunes without one global threshold
            thresholds.append((r["percent"], r["threshold"]))
        if gammas is None and r.get("abs_gamma"):
            gammas = [v for layer in r["abs_gamma"] for v in layer]
        if not points:  # the unpruned source, once
            src = load_checkpoint(r["source"])
            acc = src["metrics"].get("at_best", {}).get(split) or r["accuracy_10crop"].get("unpruned", {}).get(split)
            ms = latency_ms(face_latency_fn(models.model_from_checkpoint(src)))
            points.append(("unpruned", r["unpruned"]["params"], ms, acc))
        best = os.path.join(d, "best.pth")
        ck = load_checkpoint(best if os.path.exists(best) else os.path.join(d, "pruned.pth"))
        acc = ck["metrics"].get("at_best", {}).get(split) or r["accuracy_10crop"].get("pruned", {}).get(split)
        ms = latency_ms(face_latency_fn(models.model_from_checkpoint(ck)))
        points.append((f"pruned {r['percent']:.1f}", r["pruned"]["params"], ms, acc))
    fig, axes = plt.subplots(1, 3 if gammas else 2, figsize=(16.5 if gammas else 11, 4.2))
    for ax, idx, xlabel in ((axes[0], 1, "parameters"), (axes[1], 2, "CPU ms, 1 face x 10 crops")):
        for name, *vals in points:
            if vals[2] is not None:
                ax.scatter(vals[idx - 1], vals[2])
                ax.annotate(name, (vals[idx - 1], vals[2]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{split} accuracy % (10-crop)")
        if idx == 1:
            ax.set_xscale("log")
    if gammas:
        import numpy as np
        ax = axes[2]
        floor = 1e-4  # |gamma| at or below this is drawn in the first bin
        g = np.maximum(np.asarray(gammas), floor)
        ax.hist(g, bins=np.logspace(np.log10(floor), np.log10(max(g.max(), 2 * floor)), 50), color="tab:blue")
        ax.set_xscale("log")
        for pct, thr in thresholds:
            ax.axvline(max(thr, floor), color="tab:red", ls="--", lw=1)
            ax.annotate(f"prune {pct:.1f}", (max(thr, floor), ax.get_ylim()[1] * 0.9), rotation=90, fontsize=8,
                        color="tab:red", ha="right")
        ax.set_xlabel(f"|gamma| of the {len(g)} prunable BatchNorm scales\n(<= {floor:g} in the first bin)")
        ax.set_ylabel("channels")
    fig.suptitle("network slimming: accuracy vs size and latency; BatchNorm scales before pruning")
    fig.tight_layout()
    out = os.path.join(folders[0], "pruning_comparison.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out, points


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="DIR", help="training output folders (or pruned folders with --prune)")
    ap.add_argument("--prune", action="store_true", help="draw the pruning comparison of these pruned folders")
    ap.add_argument("--split", default="PrivateTest", metavar="NAME", help="accuracy shown (default: PrivateTest)")
    args = ap.parse_args(argv)
    try:
        if args.prune:
            out, points = plot_prune(args.runs, args.split)
            for name, params, ms, acc in points:
                print(f"{name:12s} {params:12,d} params  {ms:8.2f} ms  {args.split} "
                      f"{f'{acc:.3f}' if acc is not None else '-'}")
            print(f"wrote {out}")
        else:
            for run in args.runs:
                print(f"wrote {plot_run(run)}")
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
