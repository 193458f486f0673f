"""What a distilled fine-tuning step costs: the pruned student alone, with its teacher as the
parent was saved, and with the teacher in channels_last (as fit() now puts it).

    python bench/bench_finetune.py --teacher runs/VGG19_sr/best.pth \
        --students runs/VGG19_sr_pruned0.5/pruned.pth,runs/VGG19_sr_m0.5r8/pruned.pth [--rounds 3] [--write]

Each setting trains --images random images in batches of 128 through engine.train_one_epoch
(augmentation, forward, backward, SGD) in the run precision of the student checkpoint
(inference.run_precision: bf16 autocast + channels_last where the CPU has native bf16). Settings
are interleaved round by round; the table gives medians and the ratio to the parent's own step
(the teacher trained alone, what one epoch of the parent costs).
"""
import argparse
import os
import statistics

import torch

from common import cpu_flags, machine, record, train_pass_seconds

import inference  # noqa: E402  (path set up by common)
import models
from utils import load_checkpoint


def build(ck, channels_last):
    model = models.model_from_checkpoint(ck)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", required=True, metavar="CKPT", help="the parent (best.pth of the --sr run)")
    ap.add_argument("--students", required=True, metavar="A,B", help="pruned.pth files, comma-separated")
    ap.add_argument("--images", type=int, default=1024, metavar="N", help="per setting and round (default: 1024)")
    ap.add_argument("--rounds", type=int, default=3, metavar="R", help="interleaved rounds (default: 3)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.images, 1, 48, 48), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 7, (args.images,), generator=g)
    tck = load_checkpoint(args.teacher)
    dtype, prec, cl = inference.run_precision(tck, torch.device("cpu"))
    print(f"{machine()}; precision {prec}")
    sck = {p: load_checkpoint(p) for p in args.students.split(",")}
    settings = [("parent trained alone", None, None)]
    for p in sck:
        name = os.path.basename(os.path.dirname(p))
        settings += [(f"{name}: student alone", p, None), (f"{name}: + teacher as saved", p, False),
                     (f"{name}: + teacher channels_last", p, True)]
    got = {s[0]: [] for s in settings}
    for r in range(args.rounds):
        for name, student, teacher_cl in settings:
            torch.manual_seed(0)
            if student is None:
                secs = train_pass_seconds(build(tck, cl), x, y, dtype, cl)
            else:
                teacher = None
                if teacher_cl is not None:
                    teacher = build(tck, teacher_cl).eval().requires_grad_(False)
                secs = train_pass_seconds(build(sck[student], cl), x, y, dtype, cl, teacher)
            got[name].append(secs)
            print(f"  round {r + 1} {name:55s} {secs:6.2f} s")
    base = statistics.median(got[settings[0][0]])
    rows = []
    for name, student, _ in settings:
        med = statistics.median(got[name])
        cfg = "" if student is None else " ".join(map(str, sck[student]["cfg"]))
        rows.append(f"| {name} | {med:.2f} | {med / base:.2f}x | {cfg} |")
    table = ("| setting | s per pass | vs the parent's step | student cfg |\n|---|---|---|---|\n" + "\n".join(rows)
             + f"\n\nMedians of {args.rounds} interleaved rounds, {args.images} random images in batches of 128, "
             f"{torch.get_num_threads()} threads, precision {prec}; teacher {args.teacher}. {cpu_flags()}.")
    print(table)
    if args.write:
        record("Cost of a distilled fine-tuning step", table, "slimming", where=machine())


if __name__ == "__main__":
    main()
