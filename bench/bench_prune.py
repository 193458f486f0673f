"""Network-slimming benchmark: the unpruned VGG19 against its pruned versions, side by side.

    python bench/bench_prune.py [--checkpoint runs/seed0/VGG19_sr/best.pth] [--rules p0.5,p0.5r8,m0.5r8] [--write]

A rule is p<fraction> (one global |gamma| threshold removing that fraction of the channels) or
m<fraction> (keep that fraction of the multiply-adds, channels removed by |gamma| per MAC freed),
optionally r<N> (channel counts rounded up to multiples of N). Reports parameters, multiply-adds
and CPU latency in three settings (fp32 contiguous, fp32 channels_last, bf16 autocast +
channels_last) at 10 crops (one face, as predict.py runs) and 160 crops (an evaluation batch),
every model and setting timed in turn round after round, so machine noise hits all alike. With
--checkpoint the BatchNorm scales of a real (sparsity-trained) model decide the widths; without
one the scales are random. No fine-tuning: the latencies and sizes are what pruning buys.
--cfg NAME=64,64,M,128,... adds a VGG19 given by its layer widths (random weights time the same),
e.g. a pruned net whose checkpoint stayed on the GPU machine that trained it (BENCHMARKS.md).
--onnx adds ONNX Runtime fp32 and static int8 (export_onnx.write_int8) at 10 crops, timed after
the PyTorch settings (one runtime at a time, as bench/pareto.py does), with the int8 ratio to the
unpruned model in ONNX Runtime fp32; int8 calibrates on random faces, or on --data's Training faces.
"""
import argparse
import copy
import os
import re

import torch

from common import cpu_flags, machine, record

import models  # noqa: E402
import prune
from utils import face_latency_fn, interleaved_latency_ms, load_checkpoint

SETTINGS = {"fp32": (None, False), "fp32 + channels_last": (None, True),
            "bf16 + channels_last": (torch.bfloat16, True)}


def pruned(base, rule):
    m = re.fullmatch(r"([pm])([0-9.]+)(?:r(\d+))?", rule)
    if not m:
        raise SystemExit(f"error: --rules: {rule!r} is not p<fraction>[r<N>] or m<fraction>[r<N>]")
    kind, value, round_to = m.group(1), float(m.group(2)), int(m.group(3) or 1)
    if kind == "p":
        masks, _ = prune.channel_masks(base, value, round_to=round_to)
    else:
        masks, _ = prune.macs_target_masks(base, value, round_to=round_to)
    return prune.compact_model(base, masks).eval()


def distinct_biases(net, seed=0):
    """A copy whose BatchNorm shifts and statistics are random, as a trained net's are. An untrained
    net folds to all-zero conv biases; the exporter then stores one zero vector for all layers of a
    width, the quantiser routes the shared bias through an Identity node, and ONNX Runtime leaves
    those convolutions in fp32 (seen: 2 of 16 convs of a random full-width p0.5r8, ~half its int8
    time). Trained checkpoints never share a bias and quantise fully."""
    net = copy.deepcopy(net)
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.bias.data = 0.1 * torch.randn(c, generator=g)
            m.running_mean = 0.1 * torch.randn(c, generator=g)
            m.running_var = 0.5 + torch.rand(c, generator=g)
    return net


def onnx_latencies(nets, args, ms):
    """Export every net, quantise it, and add ONNX Runtime fp32 / int8 medians to ``ms``."""
    import tempfile

    import export_onnx
    from pareto import ort_latency_fn, ort_session
    if args.data:
        from dataset import H5Dataset
        faces = export_onnx.calibration_faces(H5Dataset(args.data), 200)
    else:
        faces = torch.randint(0, 256, (200, 1, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cols = ("ONNX Runtime fp32", "ONNX Runtime int8")
    fns = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, net in nets.items():
            f32 = os.path.join(tmp, f"{len(fns)}.onnx")
            net = distinct_biases(net)
            export_onnx.export({"arch": "VGG19", "cfg": net.cfg, "model_args": net.model_args, "net": net.state_dict(),
                                "num_classes": 7, "class_names": [str(i) for i in range(7)]}, f32)
            i8 = export_onnx.write_int8(f32, export_onnx.int8_path(f32), faces)
            fns[(k, cols[0], 10)] = ort_latency_fn(ort_session(f32))
            fns[(k, cols[1], 10)] = ort_latency_fn(ort_session(i8))
        ms.update(interleaved_latency_ms(fns, args.rounds, 5))
    return cols


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", metavar="CKPT", help="trained VGG checkpoint (default: random BN scales)")
    ap.add_argument("--rules", default="p0.3,p0.5,p0.7", metavar="LIST", help="(default: p0.3,p0.5,p0.7)")
    ap.add_argument("--cfg", action="append", default=[], metavar="NAME=CFG",
                    help="also time a VGG19 of these layer widths, e.g. p0.5=64,64,M,128,120,M,... (repeatable)")
    ap.add_argument("--onnx", action="store_true", help="also ONNX Runtime fp32 and int8 at 10 crops")
    ap.add_argument("--data", metavar="H5", help="with --onnx: Training faces calibrate int8 (default: random faces)")
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
    for rule in filter(None, args.rules.split(",")):
        nets[rule] = pruned(base, rule)
    for spec in args.cfg:
        name, _, widths = spec.partition("=")
        try:
            cfg = [v if v == "M" else int(v) for v in widths.replace(" ", "").split(",")]
            nets[name] = models.build_model("VGG19", cfg=cfg).eval()
        except (ValueError, TypeError, RuntimeError) as e:
            raise SystemExit(f"error: --cfg {spec!r}: not NAME=width,width,M,...: {e}") from None
    fns = {(k, s, crops): face_latency_fn(net, *SETTINGS[s], crops=crops)
           for k, net in nets.items() for s in SETTINGS for crops in (10, 160)}
    ms = interleaved_latency_ms(fns, args.rounds, 5)
    ort_cols = onnx_latencies(nets, args, ms) if args.onnx else []
    head = "| model | cfg | params | MACs / crop | " + " | ".join(f"{s}, {c} crops" for s in SETTINGS for c in (10, 160))
    head += "".join(f" | {c}, 10 crops" for c in ort_cols)
    rows = [head + " |", "|" + "---|" * (4 + 2 * len(SETTINGS) + len(ort_cols))]
    macs0, params0 = prune.count_macs(base), prune.n_params(base)
    for k, net in nets.items():
        cells = []
        for s in SETTINGS:
            for c in (10, 160):
                t, t0 = ms[(k, s, c)], ms[("unpruned", "fp32", c)]
                cells.append(f"{t:.2f} ({t0 / t:.2f}x)")
        for c in ort_cols:  # ratios to the unpruned model in ONNX Runtime fp32
            t, t0 = ms[(k, c, 10)], ms[("unpruned", ort_cols[0], 10)]
            cells.append(f"{t:.2f} ({t0 / t:.2f}x)")
        conv = [v for v in net.cfg if v != "M"]
        rows.append(f"| {k} | {','.join(map(str, conv))} | {prune.n_params(net):,} ({params0 / prune.n_params(net):.1f}x) | "
                    f"{prune.count_macs(net) / 1e6:.1f}M ({macs0 / prune.count_macs(net):.2f}x) | " + " | ".join(cells) + " |")
    calib = "Training faces" if args.data else "random faces"
    ort_note = (f"; ONNX Runtime columns to the unpruned model in ONNX Runtime fp32 (int8: static QDQ, per-channel "
                f"weights, calibrated on 200 {calib})") if ort_cols else ""
    table = ("\n".join(rows) + f"\n\nSource: {source}. CPU ms per call, median of {args.rounds} interleaved rounds, "
             f"{torch.get_num_threads()} threads; ratios in brackets are to the unpruned model in fp32 contiguous at "
             f"the same number of crops{ort_note}. Rules: p = global |gamma| threshold removing that share of channels, "
             f"m = keep that share of the multiply-adds (|gamma| per MAC freed), r = channel counts rounded up to "
             f"multiples. No fine-tuning. {cpu_flags()}.")
    print(table)
    if args.write:
        kind = "trained checkpoint" if args.checkpoint else "random BatchNorm scales"
        record(f"Size and speed of slimmed VGG19s ({kind})", table, "slimming", where=machine())


if __name__ == "__main__":
    main()
