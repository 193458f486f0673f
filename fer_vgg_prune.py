"""Fine-tune a network-slimmed model (pruned.pth from prune_vgg.py / prune_resnet.py) on FER2013.

    python fer_vgg_prune.py --checkpoint checkpoints/FER2013_VGG19_pruned/pruned.pth --teacher checkpoints/FER2013_VGG19/best.pth
    python fer_vgg_prune.py --checkpoint .../pruned.pth --recipe finetune-published     # the original fork's 60 epochs

Same loop, 10-crop evaluation and honest selection as mainpro_FER.py (best.pth = best
PublicTest epoch). Writes best.pth, last.pth, metrics.csv beside pruned.pth (or --out), then
prints the unpruned / pruned / fine-tuned comparison.
"""
import argparse
import json
import os

import config
import engine
import models
from data_io import DataError, cli_error
from dataset import H5Dataset, data_of
from utils import check_classes, load_checkpoint, pick_device, seed_everything

# "slim": what the slimming protocol and every recorded slimmed row used; "finetune-published": the
# original fork's 60 epochs from lr 0.01 (this script's default before, named "finetune" in the
# config.json of those runs; a resumed run keeps its saved settings whatever the name)
RECIPES = {"slim": config.SLIM_FINETUNE, "finetune-published": config.FINETUNE_PUBLISHED}


def comparison(report, summary):
    """The before/after table: unpruned, pruned before fine-tuning, fine-tuned (honest selection)."""
    acc = report.get("accuracy_10crop", {})
    splits = list(summary["honest"])
    head = f"{'model':28s} {'params':>11s} {'MACs/img':>13s} {'MB':>7s} " + " ".join(f"{s:>11s}" for s in splits)
    rows = [head]
    for tag, name, size in (("unpruned", "unpruned", report["unpruned"]), ("pruned", "pruned, before fine-tune",
                                                                          report["pruned"])):
        accs = " ".join(f"{acc[tag][s]:11.3f}" if tag in acc and s in acc[tag] else f"{'-':>11s}" for s in splits)
        rows.append(f"{name:28s} {size['params']:11,d} {size['macs']:13,d} {size['weights_mb']:7.2f} {accs}")
    p = report["pruned"]
    rows.append(f"{'pruned + fine-tuned':28s} {p['params']:11,d} {p['macs']:13,d} {p['weights_mb']:7.2f} "
                + " ".join(f"{summary['honest'][s]:11.3f}" for s in splits))
    q = report["ratios"]
    rows.append(f"\n{report['arch']} at {report['percent']:.2f}: {q['params']:.1f}x fewer parameters, "
                f"{q['macs']:.1f}x fewer multiply-adds, {q['weights_mb']:.1f}x smaller file. "
                "Accuracies: 10-crop, fine-tuned row at the best-PublicTest epoch.")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", "--model", dest="checkpoint", required=True, metavar="CKPT",
                    help="pruned.pth written by prune_vgg.py (--model: the original spelling)")
    config.add_train_args(ap, RECIPES, "slim", out_default="the folder of --checkpoint")
    ap.add_argument("--tune", action="store_true",
                    help="evaluate PublicTest only, so choosing a setting never reads PrivateTest")
    config.add_distill_args(ap)
    args = config.parse_args(ap, argv)
    try:
        pruned = load_checkpoint(args.checkpoint)
        if "pruned_from" not in pruned:
            print(f"note: {args.checkpoint} is not a pruned checkpoint; fine-tuning it as it is")
        data = data_of(pruned, args.data)
        out = args.out or os.path.dirname(os.path.abspath(args.checkpoint))
        args = config.resolve_args(args, RECIPES, out, data=data.path)
        if not config.same_file(args.data, data.path):  # resumed: the run's own file
            data = H5Dataset(args.data)
        device = pick_device(args.device)
        seed_everything(args.seed)
        model = models.model_from_checkpoint(pruned, args.checkpoint).to(device)
        check_classes(pruned["class_names"], args.checkpoint, data.class_names, data.path)
        teacher = config.load_teacher(args, pruned["class_names"], device)
        train = data.load("Training", device)
        evals, subsets = data.eval_sets(device, tune=args.tune)
        info = config.model_info(model, pruned["arch"], data, pruned_from=pruned.get("pruned_from", ""))
        print(f"fine-tuning {pruned['arch']} cfg {model.cfg} on {data.name} | out {out}")
        summary = engine.fit(model, train, evals, args, info, select="PublicTest" if "PublicTest" in evals else None,
                             subsets=subsets,
                             teacher=teacher)
        print(engine.format_summary(summary))
        report_path = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "prune_report.json")
        if os.path.exists(report_path):
            with open(report_path) as f:
                print("\n" + comparison(json.load(f), summary))
    except (DataError, engine.TrainingDiverged) as e:
        cli_error(str(e), code=3 if isinstance(e, engine.TrainingDiverged) else 2)


if __name__ == "__main__":
    main()
