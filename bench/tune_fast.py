"""Tune a FER2013 recipe on PublicTest only; read PrivateTest once for the final choices.

    python bench/tune_fast.py [--width 0.125] [--epochs 12] [--write]        # the PublicTest table
    python bench/tune_fast.py --final fast,ema --write                        # then PrivateTest, once
    python bench/tune_fast.py --set cpu-length --width 0.25 --write           # how short can --recipe cpu be?

Every variant is a recipe plus a few flags (``SETS``), trained with `mainpro_FER.py --tune`
(which evaluates PublicTest alone) into bench/out/tune/<variant>/, resumable: rerun the same
command to continue. The table gives PublicTest at the epoch PublicTest selected and the seconds
per epoch. `--final` scores the selected checkpoints of the named variants on PrivateTest
(10-crop) - the only place PrivateTest is read. On a CPU the variants are narrow and short, so
differences below the seed-to-seed spread (the `fast` / `fast-seed1` pair) say nothing.
"""
import argparse
import json
import os
import statistics

from common import DATA, ROOT, machine, private_test_scores, record

import mainpro_FER  # noqa: E402
from utils import read_metrics, wall_seconds  # noqa: E402

# set -> (recipe, {variant: flags added to the recipe}); flags typed later win, so a variant
# may set --epochs itself
SETS = {
    "fast": ("fast", {
        "fast": [],
        "fast-seed1": ["--seed", "1"],
        "ema": ["--ema", "0.998"],
        "affine": ["--affine", "10"],
        "erase": ["--erase", "0.25"],
        "no-smoothing": ["--label-smoothing", "0"],
        "lr0.03": ["--lr", "0.03", "--warmup", "1"],
    }),
    # the CPU recipe's one-cycle schedule squeezed into fewer epochs, only the last 4 selectable
    "cpu-length": ("cpu", {f"cpu-e{n}": ["--epochs", str(n), "--select-last", "4"] for n in (30, 20, 15, 10)}),
}

TITLES = {"fast": "Fast-recipe tuning", "cpu-length": "CPU recipe length"}


def run_dir(args, name):
    return os.path.join(args.out, name)


def train(args, name):
    out = run_dir(args, name)
    if os.path.exists(os.path.join(out, "summary.json")):
        return
    recipe, variants = SETS[args.set]
    print(f"== {name}: {' '.join(variants[name]) or '(recipe as is)'}", flush=True)
    mainpro_FER.main(["--data", args.data, "--out", out, "--model", args.model, "--width", str(args.width),
                      "--recipe", recipe, "--epochs", str(args.epochs), "--eval-every", str(args.eval_every),
                      "--device", args.device, "--seed", str(args.seed), "--tune", "--resume", *variants[name]])


def public_table(args, names):
    recipe, variants = SETS[args.set]
    lines = [f"{args.model} width {args.width}, {args.epochs} epochs unless a variant says otherwise, `--recipe "
             f"{recipe}` + flags, seed {args.seed}; PublicTest (10-crop) at the epoch PublicTest selected; "
             "PrivateTest not read.", "",
             "| variant | flags | PublicTest | selected epoch | s/epoch (train) | wall min |", "|---|---|---|---|---|---|"]
    for name in names:
        out = run_dir(args, name)
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
        rows = read_metrics(os.path.join(out, "metrics.csv"))
        secs = statistics.median(float(r["train_s"]) for r in rows)
        lines.append(f"| {name} | `{' '.join(variants[name]) or '-'}` | {s['honest']['PublicTest']:.3f} | "
                     f"{s['best_epoch']} | {secs:.1f} | {wall_seconds(rows) / 60:.1f} |")
    return "\n".join(lines)


def private_table(args, names):
    lines = ["PrivateTest (10-crop) of each final variant's PublicTest-selected checkpoint, read once:", "",
             "| variant | PublicTest | PrivateTest |", "|---|---|---|"]
    scores = private_test_scores(args.data, [run_dir(args, n) for n in names], args.device)
    for name, (ck, acc) in zip(names, scores):
        lines.append(f"| {name} | {ck['metrics']['at_best']['PublicTest']:.3f} | {acc:.3f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, metavar="FILE",
                    help="FER2013 h5 (default: data/data.h5)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "tune"), metavar="DIR",
                    help="(default: bench/out/tune)")
    ap.add_argument("--model", default="VGG19", metavar="NAME", help="(default: VGG19)")
    ap.add_argument("--width", type=float, default=0.125, metavar="W", help="(default: 0.125)")
    ap.add_argument("--epochs", type=int, default=12, metavar="N", help="(default: 12)")
    ap.add_argument("--eval-every", type=int, default=2, metavar="K", help="(default: 2)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="(default: auto)")
    ap.add_argument("--set", default="fast", choices=sorted(SETS), help="which recipe's variants (default: fast)")
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="(default: 0)")
    ap.add_argument("--variants", metavar="LIST", help="(default: all of the set)")
    ap.add_argument("--final", metavar="LIST", help="score these variants on PrivateTest (and train nothing)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    variants = SETS[args.set][1]
    names = (args.final or args.variants or ",".join(variants)).split(",")
    unknown = [n for n in names if n not in variants]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)} of --set {args.set}; choose from {', '.join(variants)}")
    if args.final:
        text = private_table(args, names)
        title = f"{TITLES[args.set]}, PrivateTest of the final choices"
    else:
        for name in names:
            train(args, name)
        text = public_table(args, names)
        title = f"{TITLES[args.set]} on PublicTest"
    print(text)
    if args.write:
        record(title, text, "accuracy", where=machine())


if __name__ == "__main__":
    main()
