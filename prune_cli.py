"""The command line and report of network slimming, shared by prune_vgg.py and prune_resnet.py.

prune.py is the library (it knows nothing of data or training); this module loads a checkpoint,
prunes it, checks the compact model against the masked one, scores both in the run's own
precision, and writes pruned.pth and prune_report.json/.txt.
"""
import argparse
import os

import torch

import config
import inference
import models
from data_io import DataError, cli_error
from dataset import data_of
from prune import (DEFAULT_RULE, RULES, compact_model, count_macs, layer_table, masked_model, max_output_difference,
                   n_params, prunable_bns, weights_mb)
from utils import CHECKPOINT_FORMAT, check_classes, load_checkpoint, pick_device, save_checkpoint, write_json


def main(argv=None, family="VGG", doc=""):
    ap = argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", "--model", dest="checkpoint", required=True, metavar="CKPT",
                    help="trained (ideally --sr) checkpoint, e.g. best.pth (--model: the original spelling)")
    how = ap.add_mutually_exclusive_group()  # one flag per pruning rule of prune.RULES
    for name, rule in RULES.items():
        default = f" (default: {DEFAULT_RULE[1]:g})" if name == DEFAULT_RULE[0] else ""
        how.add_argument(rule.flag, type=float, metavar=rule.metavar, help=rule.help + default)
    ap.add_argument("--round-to", type=int, default=8, metavar="N",
                    help="keep each layer's channels at a multiple of N, rounded up: odd counts fall off oneDNN's "
                         "fast kernels (bench/bench_prune.py); 1 = Liu et al.'s exact counts (default: 8)")
    ap.add_argument("--min-channels", type=int, default=8, metavar="N",
                    help="never keep fewer channels in a layer (default: 8)")
    ap.add_argument("--out", "--save", dest="out", metavar="DIR",
                    help="output folder (default: <checkpoint folder>_pruned; --save: the original spelling)")
    ap.add_argument("--data", metavar="FILE", help="HDF5 to evaluate on (default: the one the model trained on)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda (default: auto)")
    config.add_eval_bs_arg(ap)
    ap.add_argument("--no-eval", action="store_true", help="skip the 10-crop evaluation of both models")
    args = ap.parse_args(argv)
    try:
        given = [(n, getattr(args, r.dest)) for n, r in RULES.items() if getattr(args, r.dest) is not None]
        rule_name, value = given[0] if given else DEFAULT_RULE
        rule = RULES[rule_name]
        rule.check(value)  # a bad value stops us before anything is read or written
        if args.min_channels < 1:
            raise DataError(f"--min-channels {args.min_channels}: must be at least 1")
        if args.round_to < 1:
            raise DataError(f"--round-to {args.round_to}: must be at least 1")
        ck = load_checkpoint(args.checkpoint)
        arch = ck["arch"]
        other = {"VGG": "Resnet", "Resnet": "VGG"}.get(family)
        if other and arch.startswith(other):  # any other registered architecture prunes with either script
            raise DataError(f"{args.checkpoint} holds a {arch}, not a {family}: use prune_{other.lower()}.py")
        device = pick_device(args.device)
        model = models.model_from_checkpoint(ck, args.checkpoint)
        data = None
        if not args.no_eval:  # bad data stops us before anything is written
            data = data_of(ck, args.data)
            check_classes(ck["class_names"], args.checkpoint, data.class_names, data.path)
        masks, facts = rule.select(model, value, args.min_channels, args.round_to)
        compact = compact_model(model, masks)
        diff = max_output_difference(masked_model(model, masks), compact)
        if diff > 1e-3:
            raise RuntimeError(f"compact model differs from the masked model by {diff:g}: a bug, please report")
        save = args.out or os.path.dirname(os.path.abspath(args.checkpoint)).rstrip("/") + "_pruned"
        os.makedirs(save, exist_ok=True)
        acc = {}
        if data is not None:
            splits = [s for s in ("PublicTest", "PrivateTest") if s in data.splits]
            dtype, precision, nhwc = inference.run_precision(ck, device)  # the precision the parent was scored in
            for tag, net in (("unpruned", model), ("pruned", compact)):
                net = net.to(device, memory_format=torch.channels_last if nhwc else torch.preserve_format)
                acc[tag] = {s: inference.evaluate(net, *data.load(s, device), config.eval_batch_size(args.eval_bs, device),
                                               dtype=dtype, channels_last=nhwc)["acc"] for s in splits}
        before = {"params": n_params(model), "macs": count_macs(model), "weights_mb": weights_mb(model)}
        after = {"params": n_params(compact), "macs": count_macs(compact), "weights_mb": weights_mb(compact)}
        report = {
            "source": os.path.abspath(args.checkpoint), "arch": arch, "threshold": facts.get("threshold"),
            "rule": rule.describe(value), "rule_name": rule_name, "rule_value": value,
            # the share of prunable channels removed (what --percent asks for; measured under another rule)
            "percent": value if rule_name == "percent" else
            1 - sum(int(k.sum()) for k in masks) / sum(len(k) for k in masks), "target_macs": facts.get("target_macs"),
            "achieved_macs_fraction": facts.get("achieved_macs_fraction"), "round_to": args.round_to,
            "min_channels": args.min_channels, "cfg_before": model.cfg, "cfg_after": compact.cfg,
            "layers": layer_table(model, masks, compact),
            "unpruned": before, "pruned": after,
            "ratios": {k: before[k] / max(after[k], 1e-12) for k in before},
            "macs_note": "multiply-accumulates per 44x44 image (FLOPs = 2x)",
            "max_abs_diff_masked_vs_compact": diff,
            "accuracy_10crop": acc, "accuracy_precision": precision if acc else None,
            # every prunable |gamma| before pruning, per layer: plot_curves.py --prune draws them
            "abs_gamma": [bn.weight.detach().abs().cpu().tolist() for bn in prunable_bns(model)],
            "sparsity": ck.get("args", {}).get("sparsity"),
        }
        info = {k: ck[k] for k in ("num_classes", "in_channels", "class_names", "dataset", "synthetic") if k in ck}
        save_checkpoint({"format": CHECKPOINT_FORMAT, "arch": arch, "cfg": compact.cfg,
                         "model_args": compact.model_args, **info,
                         "net": compact.cpu().state_dict(), "epoch": 0, "pruned_from": os.path.abspath(args.checkpoint),
                         "percent": report["percent"], "metrics": {"prune": report}, "args": {"data": args.data or
                                                                                          ck.get("args", {}).get("data")}},
                        os.path.join(save, "pruned.pth"))
        write_json(report, os.path.join(save, "prune_report.json"))
        text = format_report(report)
        with open(os.path.join(save, "prune_report.txt"), "w") as f:
            f.write(text)
        print(text)
        print(f"wrote {os.path.join(save, 'pruned.pth')}, prune_report.json, prune_report.txt")
        return report
    except (DataError, ValueError) as e:  # bad input: one line, nothing written
        cli_error(str(e))


def format_report(r):
    if r.get("target_macs") is not None:
        how = (f"to {r['target_macs']:g} of the multiply-adds (|gamma| per MAC freed; achieved "
               f"{r['achieved_macs_fraction']:.3f}), {r['percent']:.2f} of the channels")
    else:
        how = f"at {r['percent']:.2f} (global |gamma| threshold {r['threshold']:.4g})"
    lines = [f"Network slimming of {r['arch']} {how}, min {r['min_channels']} channels/layer, "
             f"multiples of {r.get('round_to', 1)}", "",
             f"{'layer':14s} {'kept':>6s} / total  {'median |gamma|':>14s}  {'MACs before':>11s}  {'after':>11s}"]
    total = max(r["unpruned"]["macs"], 1)
    for l in r["layers"]:
        after = f"{l['macs_pruned']:11,d}" if l.get("macs_pruned") is not None else f"{'':11s}"
        lines.append(f"{l['layer']:14s} {l['kept']:6d} / {l['total']:<5d}  {l['median_abs_gamma']:14.3f}  "
                     f"{l['macs']:11,d}  {after}  ({100 * l['macs'] / total:4.1f}% of all)")
    b, a, q = r["unpruned"], r["pruned"], r["ratios"]
    lines += ["", f"{'':14s} {'unpruned':>12s} {'pruned':>12s} {'ratio':>8s}",
              f"{'params':14s} {b['params']:12,d} {a['params']:12,d} {q['params']:7.2f}x",
              f"{'MACs/image':14s} {b['macs']:12,d} {a['macs']:12,d} {q['macs']:7.2f}x",
              f"{'weights MB':14s} {b['weights_mb']:12.2f} {a['weights_mb']:12.2f} {q['weights_mb']:7.2f}x"]
    for split in r["accuracy_10crop"].get("unpruned", {}):
        lines.append(f"{split + ' %':14s} {r['accuracy_10crop']['unpruned'][split]:12.3f} "
                     f"{r['accuracy_10crop']['pruned'][split]:12.3f}   (before fine-tuning)")
    g = torch.tensor([v for layer in r.get("abs_gamma", []) for v in layer])
    if len(g):
        lines.append(f"\n|gamma| of the {len(g)} prunable channels: median {g.median().item():.3g}; "
                     f"{(g < 1e-2).float().mean().item():.1%} below 0.01, {(g < 1e-3).float().mean().item():.1%} below 0.001")
        if (g < 1e-2).float().mean().item() < 0.01 and r["percent"] >= 0.1:
            # what the failed cpu-120 slimming looked like: scales that never met a real L1 pull rank nothing
            lines.append(f"warning: {r['percent']:.0%} of the channels removed but no scale is near zero: the parent "
                         "trained without --sr or with too weak an s (a long schedule's --s auto), so |gamma| does not "
                         "say which channels it can lose; expect a large drop (BENCHMARKS.md, \"Slimming cpu-120 "
                         "parents\")")
    lines.append(f"\nmasked model vs compact model: max |output difference| {r['max_abs_diff_masked_vs_compact']:.2e}")
    lines.append("MACs = multiply-accumulates per 44x44 image (FLOPs = 2x MACs)")
    return "\n".join(lines) + "\n"
