"""One markdown table of a protocol folder (slim_protocol.sh, bench/gpu_run.sh, run.sh).

    python bench/protocol_table.py OUT_DIR [--write TITLE] [--rounds 5]

Per run folder (any folder with summary.json + metrics.csv below OUT_DIR): parameters,
multiply-accumulates per 44x44 crop, weights MB, latency of 1 face x 10 crops on this machine's
CPU (all models timed in turn, round after round, so the ratios hold on a noisy machine),
PublicTest / PrivateTest at the epoch chosen on PublicTest (honest), epochs, median seconds per
training epoch and the run's wall time (training + evaluation). Ratios are to the parent each
pruned model came from. Test-selected maxima appear only where the run scored every epoch.
"""
import argparse
import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402

import inference  # noqa: E402
import models  # noqa: E402
import prune  # noqa: E402
from dataset import DEDUP, honest_scores  # noqa: E402
from utils import face_latency_fn, interleaved_latency_ms, load_checkpoint, read_metrics, wall_seconds  # noqa: E402


def runs(root):
    for summ in sorted(glob.glob(os.path.join(root, "**", "summary.json"), recursive=True)):
        d = os.path.dirname(summ)
        if os.path.exists(os.path.join(d, "metrics.csv")) and os.path.exists(os.path.join(d, "best.pth")):
            yield d


def describe(d):
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    honest = honest_scores(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    rows = read_metrics(os.path.join(d, "metrics.csv"))
    ck = load_checkpoint(os.path.join(d, "best.pth"))
    net = models.model_from_checkpoint(ck).eval()
    args = cfg["args"]
    wall = wall_seconds(rows)
    parent, how = None, "with sparsity" if args.get("sr") else "no sparsity"
    rp = os.path.join(d, "prune_report.json")
    if os.path.exists(rp):
        with open(rp) as f:
            report = json.load(f)
        rule = (f"pruned to {report['achieved_macs_fraction']:.2f} of the MACs" if report.get("target_macs")
                else f"pruned {report['percent']:.1f}")
        parent, how = os.path.dirname(report["source"]), f"{rule} + fine-tune"
    if parent and args.get("teacher"):
        how += " (distilled)"
    dtype, prec, nhwc = inference.run_precision(ck, "cpu")
    return {"dir": d, "net": net, "how": how, "dtype": dtype, "nhwc": nhwc,
            "precision": prec + (" + channels_last" if nhwc else ""), "parent": parent, "arch": ck["arch"],
            "width": args.get("width"),
            "params": prune.n_params(net), "macs": prune.count_macs(net), "mb": prune.weights_mb(net),
            "public": honest.get("PublicTest"), "private": honest.get("PrivateTest"), "dedup": honest.get(DEDUP),
            "ts": s.get("test_selected_max", {}).get("PrivateTest"), "epochs": len(rows),
            "s_epoch": statistics.median(float(r["train_s"]) for r in rows), "wall_min": wall / 60,
            "device": cfg.get("device", "?"), "s": args.get("s") if args.get("sr") else None}


def table(root, rounds=5):
    entries = [describe(d) for d in runs(root)]
    if not entries:
        raise SystemExit(f"error: no finished runs (summary.json + best.pth) under {root}")
    # each model timed in the precision and memory format its run trained and was scored in
    ms = interleaved_latency_ms({e["dir"]: face_latency_fn(e["net"], e["dtype"], e["nhwc"]) for e in entries},
                                rounds=rounds)
    by_dir = {os.path.realpath(e["dir"]): e for e in entries}
    lines = ["| run | model | params | MACs / crop | weights MB | precision | CPU ms, 1 face x 10 crops | PublicTest | "
             "PrivateTest | PrivateTest w/o duplicates | epochs | s / train epoch | wall min | device |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        p = by_dir.get(os.path.realpath(e["parent"])) if e["parent"] else None
        width = e["width"] or (p or {}).get("width")  # a fine-tuned run has its parent's width

        def ratio(key, val, p=p):
            return f" ({p[key] / val:.1f}x fewer)" if p else ""
        lat = ms[e["dir"]]
        lat_ratio = f" ({ms[p['dir']] / lat:.2f}x faster)" if p else ""
        acc = lambda v: f"{v:.3f}" if v is not None else "-"  # noqa: E731
        lines.append(
            f"| {os.path.relpath(e['dir'], root)} | {e['arch']} w{width or '?'}, {e['how']} | "
            f"{e['params']:,}{ratio('params', e['params'])} | {e['macs'] / 1e6:.1f}M{ratio('macs', e['macs'])} | "
            f"{e['mb']:.2f} | {e['precision']} | {lat:.2f}{lat_ratio} | {acc(e['public'])} | {acc(e['private'])} | "
            f"{acc(e['dedup'])} | "
            f"{e['epochs']} | "
            f"{e['s_epoch']:.0f} | {e['wall_min']:.0f} | {e['device']} |")
    note = (f"\nAccuracies: 10-crop, %, at the epoch with the best PublicTest (honest; PrivateTest never chose "
            f"anything); w/o duplicates: PrivateTest without the images that also occur in Training. "
            f"Latency: median of {rounds} interleaved rounds, {torch.get_num_threads()} threads, in the "
            "precision and memory format of each run, measured when this table was made. Ratios: to the parent the "
            "model was pruned from.")
    return "\n".join(lines) + "\n" + note


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", metavar="OUT_DIR")
    ap.add_argument("--rounds", type=int, default=5, metavar="N", help="interleaved latency rounds (default: 5)")
    ap.add_argument("--write", metavar="TITLE", help="also record the table in BENCHMARKS.md under this title")
    args = ap.parse_args()
    text = table(args.root, args.rounds)
    print(text)
    if args.write:
        from common import machine, record
        record(args.write, text, "slimming", where=machine())


if __name__ == "__main__":
    main()
