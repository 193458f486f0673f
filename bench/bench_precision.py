"""Precision x memory format on this machine: fp32, channels_last, bf16 autocast, both.

    python bench/bench_precision.py [--width 0.25] [--rounds 3] [--write]

Training = batches of 128 through engine.train_one_epoch (augmentation, forward, backward, SGD);
evaluation = inference.evaluate with 10 crops of 16 images per batch (160 crops), no grad. The
four settings are interleaved round by round, so a slow spell of this shared machine hits them
alike; the table gives the median of the rounds and the ratio to fp32. It also prints what
``--amp auto`` resolves to here (inference.cpu_precision) so the table can be read against it.
"""
import argparse
import statistics

import torch

from common import cpu_flags, machine, now, record, train_pass_seconds

import inference  # noqa: E402  (path set up by common)
import models

SETTINGS = (("fp32", None, False), ("fp32 + channels_last", None, True),
            ("bf16 autocast", torch.bfloat16, False), ("bf16 autocast + channels_last", torch.bfloat16, True))


def measure(arch, width, dtype, channels_last, x, y, n_eval):
    """(train images/s, eval images/s) of one fresh model in one setting."""
    torch.manual_seed(0)
    cfg, margs = models.scaled(arch, width)
    model = models.build_model(arch, cfg=cfg, **margs)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train = len(x) / train_pass_seconds(model, x, y, dtype, channels_last)
    inference.evaluate(model, x[:32], y[:32], 16, "tencrop", dtype, channels_last)
    t = now()
    inference.evaluate(model, x[:n_eval], y[:n_eval], 16, "tencrop", dtype, channels_last)
    return train, n_eval / (now() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=float, default=0.25, metavar="W", help="model width (default: 0.25)")
    ap.add_argument("--models", default="VGG19,Resnet18", metavar="A,B", help="(default: VGG19,Resnet18)")
    ap.add_argument("--train-images", type=int, default=1024, metavar="N", help="per round (default: 1024)")
    ap.add_argument("--eval-images", type=int, default=256, metavar="N", help="x10 crops per round (default: 256)")
    ap.add_argument("--rounds", type=int, default=3, metavar="R", help="interleaved rounds (default: 3)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.train_images, 1, 48, 48), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 7, (args.train_images,), generator=g)
    auto = inference.cpu_precision()
    print(f"{machine()}; --amp auto here: {auto['name']} ({auto['why']})")
    rows = []
    for arch in args.models.split(","):
        got = {name: ([], []) for name, _, _ in SETTINGS}
        for r in range(args.rounds):
            for name, dtype, cl in SETTINGS:
                tr, ev = measure(arch, args.width, dtype, cl, x, y, args.eval_images)
                got[name][0].append(tr)
                got[name][1].append(ev)
                print(f"  {arch} round {r + 1} {name:30s} train {tr:7.0f} img/s  eval {10 * ev:7.0f} crops/s")
        base = {k: statistics.median(v) for k, v in zip(("tr", "ev"), got["fp32"])}
        for name, _, _ in SETTINGS:
            tr, ev = (statistics.median(v) for v in got[name])
            rows.append(f"| {arch} w{args.width:g} | {name} | {tr:,.0f} ({tr / base['tr']:.2f}x) | "
                        f"{10 * ev:,.0f} ({ev / base['ev']:.2f}x) |")
    table = ("| model | setting | train images/s (vs fp32) | 10-crop eval crops/s (vs fp32) |\n|---|---|---|---|\n"
             + "\n".join(rows) + f"\n\nMedians of {args.rounds} interleaved rounds, {torch.get_num_threads()} "
             f"threads; training {args.train_images} images in batches of 128 (augmentation, forward, backward, "
             f"SGD), evaluation {args.eval_images} images x 10 crops, 16 images per batch. `--amp auto` on this "
             f"machine: **{auto['name']}** ({auto['why']}). {cpu_flags()}.")
    print(table)
    if args.write:
        record("Precision and memory format", table, "latency", where=machine())


if __name__ == "__main__":
    main()
