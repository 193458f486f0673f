"""The accuracy and cost of an ensemble (the mean logits of several checkpoints) beside its members.

    python bench/ensemble_score.py runs/seed0/best.pth runs/seed1/best.pth runs/seed2/best.pth \
        [--data data/data.h5] [--write TITLE]

10-crop PublicTest, PrivateTest and PrivateTest without the images also in Training, for each
member and for models.Ensemble of them all (what `--teacher A B C` distils from), each in fp32;
the CPU milliseconds of one face x 10 crops, every network timed in turn (round after round),
so the ensemble's cost is read as a ratio to its first member.
"""
import argparse
import os

import torch
from common import machine, record

import config
import inference
import models
from dataset import DEDUP, data_of
from utils import face_latency_fn, interleaved_latency_ms, load_checkpoint


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+", metavar="CKPT")
    ap.add_argument("--data", metavar="H5", help="(default: the first checkpoint's own, else data/data.h5)")
    ap.add_argument("--write", metavar="TITLE", help="record the table in BENCHMARKS.md under this title")
    args = ap.parse_args()
    if len(args.checkpoints) < 2:
        raise SystemExit("ensemble_score: give at least two checkpoints")
    first = load_checkpoint(args.checkpoints[0])
    data = data_of(first, args.data)
    ensemble, cks = models.teacher_from_checkpoints(args.checkpoints, data.class_names)
    evals, subsets = data.eval_sets()
    nets = {os.path.relpath(p): m for p, m in zip(args.checkpoints, ensemble.nets)}
    nets[f"ensemble of {len(cks)}"] = ensemble
    bs = config.eval_batch_size("auto", "cpu")
    lines = ["| network | PublicTest | PrivateTest | PrivateTest w/o Training's duplicates | ms, 1 face x 10 crops |",
             "|---|---|---|---|---|"]
    ms = interleaved_latency_ms({k: face_latency_fn(m) for k, m in nets.items()}, rounds=5)
    base = ms[next(iter(nets))]
    for name, net in nets.items():
        acc = {}
        for split, (x, y) in evals.items():
            ev = inference.evaluate(net, x, y, bs)
            acc[split] = ev["acc"]
            for sub, (parent, idx) in subsets.items():
                if parent == split:
                    acc[sub] = 100.0 * (ev["pred"][idx] == y[idx]).float().mean().item()
        lines.append(f"| {name} | {acc['PublicTest']:.3f} | {acc['PrivateTest']:.3f} | "
                     f"{acc.get(DEDUP, float('nan')):.3f} | {ms[name]:.2f} ({ms[name] / base:.2f}x) |")
    text = "\n".join(lines) + (f"\n\n10-crop, fp32; latency: median of 5 interleaved rounds, {torch.get_num_threads()} "
                               f"threads, {machine()}. Data: {data.path}.")
    print(text)
    if args.write:
        record(args.write, text, "accuracy")


if __name__ == "__main__":
    main()
