"""Choose the sparsity strength on PublicTest only; read PrivateTest once for the final rows.

    python bench/sparsity_sweep.py --data data/data.h5 [--zero-at none,0.9,0.7,0.5,0.3] [--write]
    python bench/sparsity_sweep.py --data data/data.h5 --final 0.5,none --write

For each value of --s-zero-at (``none`` = no sparsity), a parent is trained with
``mainpro_FER.py --tune`` (PublicTest only), pruned at --percent without evaluation, scored on
PublicTest before fine-tuning, and fine-tuned with ``fer_vgg_prune.py --tune`` (distilling from
its parent). Runs go to --out/<value>/, resumable: rerun the same command to continue. The
table gives, per value: s, the pull s*sum(lr), the prune threshold, the share of scales below
0.01, and PublicTest of the parent, of the pruned net before and after fine-tuning. ``--final``
scores the named rows' selected checkpoints on PrivateTest - the only place it is read.
"""
import argparse
import json
import os

from common import DATA, ROOT, machine, private_test_scores, record

import config  # noqa: E402
import inference  # noqa: E402
import fer_vgg_prune  # noqa: E402
import mainpro_FER  # noqa: E402
import models  # noqa: E402
import prune_cli  # noqa: E402
from dataset import H5Dataset  # noqa: E402
from utils import load_checkpoint, pick_device  # noqa: E402


def folders(args, value):
    root = os.path.join(args.out, value)
    return os.path.join(root, "parent"), os.path.join(root, f"pruned{args.percent:g}")


def run(args, value):
    parent, pruned = folders(args, value)
    sparsity = [] if value == "none" else ["--sr", "--s", "auto", "--s-zero-at", value]
    common = ["--data", args.data, "--device", args.device, "--eval-every", str(args.eval_every), "--tune", "--resume"]
    if not os.path.exists(os.path.join(parent, "summary.json")):
        print(f"== {value}: parent", flush=True)
        mainpro_FER.main([*common, "--out", parent, "--model", args.model, "--width", str(args.width),
                          "--recipe", args.recipe, "--epochs", str(args.epochs), *sparsity])
    if not os.path.exists(os.path.join(pruned, "pruned.pth")):
        # --round-to 1: Liu et al.'s exact counts, what the sweep's recorded rows used
        prune_cli.main(["--checkpoint", os.path.join(parent, "best.pth"), "--out", pruned, "--percent", str(args.percent),
                        "--round-to", "1", "--no-eval"], family="VGG" if args.model.startswith("VGG") else "Resnet")
    if not os.path.exists(os.path.join(pruned, "summary.json")):
        print(f"== {value}: fine-tune", flush=True)
        # fer_vgg_prune.py's own recipe (`slim`) is the protocol's fine-tuning
        fer_vgg_prune.main([*common, "--checkpoint", os.path.join(pruned, "pruned.pth"), "--epochs", str(args.ft_epochs),
                            "--teacher", os.path.join(parent, "best.pth")])


def public_before_finetune(args, value, device, data):
    _, pruned = folders(args, value)
    cache = os.path.join(pruned, "public_before_finetune.json")
    if not os.path.exists(cache):
        net = models.model_from_checkpoint(load_checkpoint(os.path.join(pruned, "pruned.pth"))).to(device)
        acc = inference.evaluate(net, *data.load("PublicTest", device), config.eval_batch_size("auto", device))["acc"]
        with open(cache, "w") as f:
            json.dump({"PublicTest": acc}, f)
    with open(cache) as f:
        return json.load(f)["PublicTest"]


def public_table(args, values):
    device = pick_device(args.device)
    data = H5Dataset(args.data, kind="FER")
    lines = [f"{args.model} width {args.width}, `--recipe {args.recipe}` {args.epochs} epochs, pruned at {args.percent}, "
             f"{args.ft_epochs} fine-tuning epochs with distillation; PublicTest (10-crop) only, PrivateTest not read.", "",
             "| --s-zero-at | s | pull s*sum(lr) | threshold | scales < 0.01 | parent | pruned | fine-tuned |",
             "|---|---|---|---|---|---|---|---|"]
    for value in values:
        parent, pruned = folders(args, value)
        with open(os.path.join(parent, "config.json")) as f:
            sp = json.load(f)["args"].get("sparsity") or {}
        with open(os.path.join(pruned, "prune_report.json")) as f:
            report = json.load(f)
        gammas = [g for layer in report["abs_gamma"] for g in layer]
        small = sum(g < 0.01 for g in gammas) / len(gammas)
        acc = {k: json.load(open(os.path.join(d, "summary.json")))["honest"]["PublicTest"]
               for k, d in (("parent", parent), ("ft", pruned))}
        lines.append(f"| {value} | {sp.get('s', 0):.3g} | {sp.get('l1_pull', 0):.3g} | {report['threshold']:.3g} | "
                     f"{small:.0%} | {acc['parent']:.3f} | {public_before_finetune(args, value, device, data):.3f} | "
                     f"{acc['ft']:.3f} |")
    return "\n".join(lines)


def private_table(args, values):
    lines = ["PrivateTest (10-crop) of the final rows' PublicTest-selected checkpoints, read once:", "",
             "| --s-zero-at | parent | fine-tuned |", "|---|---|---|"]
    # every value's (parent, fine-tuned) pair in one call, so PrivateTest is loaded once
    scores = private_test_scores(args.data, [d for v in values for d in folders(args, v)], args.device)
    for value, (_, parent), (_, tuned) in zip(values, scores[0::2], scores[1::2]):
        lines.append(f"| {value} | {parent:.3f} | {tuned:.3f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, metavar="FILE",
                    help="FER2013 h5 (default: data/data.h5)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "sparsity"), metavar="DIR",
                    help="(default: bench/out/sparsity)")
    ap.add_argument("--model", default="VGG19", metavar="NAME", help="(default: VGG19)")
    ap.add_argument("--width", type=float, default=0.125, metavar="W", help="(default: 0.125)")
    ap.add_argument("--recipe", default="cpu", metavar="NAME", help="(default: cpu)")
    ap.add_argument("--epochs", type=int, default=10, metavar="N", help="parent epochs (default: 10)")
    ap.add_argument("--ft-epochs", type=int, default=5, metavar="N", help="fine-tuning epochs (default: 5)")
    ap.add_argument("--percent", type=float, default=0.5, metavar="P", help="(default: 0.5)")
    ap.add_argument("--eval-every", type=int, default=1, metavar="K", help="(default: 1)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="(default: auto)")
    ap.add_argument("--zero-at", default="none,0.9,0.7,0.5,0.3", metavar="LIST",
                    help="values of --s-zero-at, 'none' = no sparsity (default: none,0.9,0.7,0.5,0.3)")
    ap.add_argument("--final", metavar="LIST", help="score these rows on PrivateTest (and train nothing)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    values = (args.final or args.zero_at).split(",")
    for v in values:
        if v != "none" and not 0 < float(v) <= 1:
            ap.error(f"--zero-at {v}: use 'none' or a fraction in (0, 1]")
    if args.final:
        text, title = private_table(args, values), "Sparsity sweep, PrivateTest of the final rows"
    else:
        for v in values:
            run(args, v)
        text, title = public_table(args, values), "Sparsity sweep on PublicTest"
    print(text)
    if args.write:
        record(title, text, "slimming", where=machine())


if __name__ == "__main__":
    main()
