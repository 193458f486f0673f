"""Network-slimming benchmark: unpruned VGG19 vs pruned at 0.3 / 0.5 / 0.7, side by side.

    python bench/bench_prune.py [--checkpoint checkpoints/FER2013_VGG19/best.pth] [--write]

Reports parameters, multiply-adds, weights file size and CPU latency (batch 1 x 10 crops, as
predict.py runs; and batch 256) of every model in one run, latencies interleaved so machine
noise hits all models alike. With --checkpoint the BatchNorm scales of a real (sparsity-trained)
model decide the widths; without one, the scales are random, so every layer loses about the
same share of channels - the sizes are real, the per-layer widths are not those of a trained net.
"""
import argparse

import torch

from common import machine, record

import models  # noqa: E402
import prune
from utils import face_latency_fn, interleaved_latency_ms, load_checkpoint


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", metavar="CKPT", help="trained VGG checkpoint (default: random BN scales)")
    ap.add_argument("--percents", default="0.3,0.5,0.7", metavar="LIST", help="(default: 0.3,0.5,0.7)")
    ap.add_argument("--rounds", type=int, default=5, metavar="N", help="interleaved timing rounds (default: 5)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.checkpoint:
        base, source = models.model_from_checkpoint(load_checkpoint(args.checkpoint)), args.checkpoint
    else:
        base, source = models.build_model("VGG19"), "VGG19 with random BatchNorm scales (untrained)"
        for bn in prune.prunable_bns(base):
            bn.weight.data.uniform_(0, 1)
    base.eval()
    nets = {"unpruned": base}
    for p in [float(v) for v in args.percents.split(",")]:
        masks, _ = prune.channel_masks(base, p)
        nets[f"pruned {p:.1f}"] = prune.compact_model(base, masks).eval()
    x256 = torch.randn(256, 1, 44, 44)

    def batch256(net):
        def run():
            with torch.no_grad():
                net(x256)
        return run
    b1 = interleaved_latency_ms({k: face_latency_fn(net) for k, net in nets.items()}, args.rounds, 10)
    b256 = interleaved_latency_ms({k: batch256(net) for k, net in nets.items()}, args.rounds, 1)
    rows = []
    ref = None
    for k, net in nets.items():
        size = {"params": prune.n_params(net), "macs": prune.count_macs(net), "mb": prune.weights_mb(net),
                "b1": b1[k], "b256": b256[k]}
        ref = ref or size
        r = {q: ref[q] / size[q] for q in size}
        rows.append(f"| {k} | {size['params']:,} ({r['params']:.1f}x) | {size['macs'] / 1e6:,.0f}M ({r['macs']:.1f}x) | "
                    f"{size['mb']:.1f} ({r['mb']:.1f}x) | {size['b1']:.1f} ({r['b1']:.1f}x) | "
                    f"{size['b256']:.0f} ({r['b256']:.1f}x) |")
    table = ("| model | params | MACs / image | weights MB | CPU ms, 1 face x 10 crops | CPU ms, batch 256 |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(rows) +
             f"\n\nSource: {source}. Ratios are to the unpruned model, measured in the same run (median of "
             f"{args.rounds} interleaved rounds, {torch.get_num_threads()} threads). MACs = multiply-accumulates "
             "per 44x44 crop (FLOPs = 2x).")
    print(table)
    if args.write:
        kind = "trained checkpoint" if args.checkpoint else "random BatchNorm scales"
        record(f"Network slimming, VGG19 ({kind}), on {machine()}", table)


if __name__ == "__main__":
    main()
